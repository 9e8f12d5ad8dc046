"""HTTP for the Euler API client: the transport, its limits, and how a failed
exchange is classified.

HTTP itself is httpx's default transport (httpcore and h11), see ``api_transport``. The
edge is strict and bounded: answers are read up to ``MAX_BODY`` bytes and only as sent (no
``Content-Encoding`` but identity, so no decompression bomb), heads up to ``MAX_HEAD``;
header values are refused before sending when they hold anything but visible ASCII.
``Failed`` carries whether a request surely never reached Euler (``unsent``): only then
may a call that is not idempotent (a chat message) go again.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from typing import Literal, Self

import httpx

from modbot.errors import ApiError, BadResponse
from modbot.euler.answers import clean

# Connections to the API: as many as the executor has calls in flight on its busiest
# routes (32), all kept open between calls (httpx's default, 100 with 20 kept, closed and
# reopened connections in every burst).
MAX_CONNECTIONS = 32
POOL_SIZE = 4  # connections of one httpcore pool (see api_transport)
KEEPALIVE_SECONDS = 30.0  # an idle connection older than this is closed, not reused
MAX_BODY = 4 * 1024 * 1024  # bytes of one answer (the API's are a few kilobytes)
# Bytes of an answer's headers. h11 (under httpcore) stops reading a head at 100 KiB;
# the API's are under 2 KiB, so anything near that limit is refused as well.
MAX_HEAD = 32 * 1024


def api_ssl_context() -> ssl.SSLContext:
    """TLS for the API: certificates verified (certifi's bundle, or the one that
    ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` names), host names checked, TLS 1.2 at least."""
    context = httpx.create_ssl_context(verify=True, trust_env=True)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    context.minimum_version = max(context.minimum_version, ssl.TLSVersion.TLSv1_2)
    return context


def api_transport(
    max_connections: int = MAX_CONNECTIONS,
    pool_size: int = POOL_SIZE,
    library: Literal["httpcore", "aiohttp"] = "httpcore",
) -> httpx.AsyncBaseTransport:
    """The HTTP transport of the API client: httpx's own (httpcore's pool, h11's parser),
    as pools of at most ``pool_size`` connections (``max_connections`` in all); or, with
    ``library="aiohttp"`` (the ``http_transport`` setting), one aiohttp session of
    ``max_connections`` (``modbot.euler.aio``, an optional dependency).

    Why pools: httpcore's pool looks at every one of its connections, and every queued
    request, each time a request comes or an answer is closed (an idle connection's
    socket is polled each time, to see whether the server closed it). With 32 connections
    that scan was most of a call's CPU (bench/http_calls.py, 32 calls at a time: 1,670
    us of CPU a call in one pool of 32, 980 in pools of 4, 760 in pools of 2). Pools of
    four: a request goes to the pool with the fewest in flight, and when all 32 are
    busy it waits for one of its pool's four connections (smaller pools would save
    a little more CPU, and make that wait longer).

    Proxy policy, the same as the event WebSocket's (``modbot.euler.ws``): connections go
    straight to the configured host, whatever ``HTTP(S)_PROXY`` / ``ALL_PROXY`` say. The
    traffic carries the API key and the streamer's token to one host the operator chose;
    an environment variable set for other programs must not reroute it, and the two
    channels must not leave by different routes (review L11). httpx reads proxies from
    the environment only in ``httpx.AsyncClient`` with ``trust_env``; this transport is
    given no proxy. The environment is trusted for one thing: the CA bundle
    (``SSL_CERT_FILE`` / ``SSL_CERT_DIR``, see ``api_ssl_context``).
    """
    if library == "aiohttp":
        from modbot.euler.aio import AiohttpTransport  # noqa: PLC0415 (optional)

        return AiohttpTransport(max_connections)
    context = api_ssl_context()
    sizes = [pool_size] * (max_connections // pool_size)
    if max_connections % pool_size:
        sizes.append(max_connections % pool_size)
    pools = [_pool(context, size) for size in sizes]
    return pools[0] if len(pools) == 1 else Pools(pools)


def _pool(context: ssl.SSLContext, size: int) -> httpx.AsyncHTTPTransport:
    return httpx.AsyncHTTPTransport(
        verify=context,
        trust_env=True,  # read by httpx only for the CA bundle, given here already
        proxy=None,
        limits=httpx.Limits(
            max_connections=size,
            max_keepalive_connections=size,
            keepalive_expiry=KEEPALIVE_SECONDS,
        ),
        retries=0,  # the client retries, by its own policy
    )


class Pools(httpx.AsyncBaseTransport):
    """Several transports as one: each request goes to the one with the fewest requests
    in flight (from sending to the answer's close), the first of them on a tie."""

    def __init__(self, pools: list[httpx.AsyncHTTPTransport]) -> None:
        self._pools = pools
        self._busy = [0] * len(pools)

    @property
    def in_flight(self) -> tuple[int, ...]:
        """Requests in flight, per pool (sent, and their answer not closed yet)."""
        return tuple(self._busy)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        busy = self._busy
        index = busy.index(min(busy))
        busy[index] += 1
        try:
            response = await self._pools[index].handle_async_request(request)
        except BaseException:
            busy[index] -= 1
            raise
        response.stream = _Counted(response.stream, busy, index)
        return response

    async def __aenter__(self) -> Self:
        for pool in self._pools:
            await pool.__aenter__()
        return self

    async def aclose(self) -> None:  # httpx's base __aexit__ calls it
        for pool in self._pools:
            await pool.aclose()


class _Counted(httpx.AsyncByteStream):
    """An answer's body that gives its pool's slot back when closed (once)."""

    def __init__(
        self, stream: httpx.SyncByteStream | httpx.AsyncByteStream, busy: list[int], index: int
    ) -> None:
        assert isinstance(stream, httpx.AsyncByteStream)
        self._stream = stream
        self._busy = busy
        self._index = index
        self._open = True

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        if self._open:
            self._open = False
            self._busy[self._index] -= 1
        await self._stream.aclose()


def visible_ascii(value: str) -> bool:
    return bool(value) and value.isascii() and value.isprintable() and " " not in value


class Failed(Exception):
    """One attempt of a call failed: the ApiError it stands for, what raised it, and
    whether the request surely never reached Euler (then even a call that is not
    idempotent may be sent again)."""

    def __init__(self, error: ApiError, cause: BaseException, *, unsent: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.cause = cause
        self.unsent = unsent


def dropped(exc: httpx.RemoteProtocolError) -> bool:
    """Whether a protocol error is the connection going away (an outage: retried)
    rather than an answer that breaks HTTP (a bad response: not retried). httpcore and
    h11 say so only in their messages: "Server disconnected without sending a
    response", "peer closed connection without sending complete message body"."""
    text = str(exc).lower()
    return "disconnected" in text or "closed connection" in text


async def read_body(response: httpx.Response, name: str) -> bytes:
    """The answer's body as sent, at most ``MAX_BODY`` bytes; BadResponse for a head
    longer than ``MAX_HEAD``, an encoding other than identity (never inflated: a gzip bomb stays a refused answer),
    a transfer coding other than chunked, or a body too long (read no further)."""
    headers = response.headers
    if sum(len(k) + len(v) + 4 for k, v in headers.raw) > MAX_HEAD:
        msg = f"the {name} answer's head is longer than {MAX_HEAD} bytes"
        raise BadResponse(msg, route=name, status=response.status_code)
    coding = headers.get("content-encoding", "").strip().lower()
    if coding not in ("", "identity"):
        msg = f"the {name} answer came {clean(coding, 40)}-encoded, which modbot never asks for"
        raise BadResponse(msg, route=name, status=response.status_code)
    framing = headers.get("transfer-encoding")
    if framing is not None and framing.strip().lower() != "chunked":
        msg = f"the {name} answer has an unsupported Transfer-Encoding"
        raise BadResponse(msg, route=name, status=response.status_code)
    length = headers.get("content-length")
    if length is not None and not (
        len(length) <= 12 and length.isascii() and length.isdigit() and int(length) <= MAX_BODY
    ):
        msg = f"the {name} answer has a Content-Length that is not a size up to {MAX_BODY} bytes"
        raise BadResponse(msg, route=name, status=response.status_code)
    try:
        content = response.content  # already in memory (a transport that reads it whole)
    except httpx.ResponseNotRead:
        parts: list[bytes] = []
        total = 0
        async for chunk in response.aiter_raw():
            total += len(chunk)
            if total > MAX_BODY:
                break
            parts.append(chunk)
        content = b"".join(parts)
    else:
        total = len(content)
    if total > MAX_BODY:
        msg = f"the {name} answer is longer than {MAX_BODY} bytes"
        raise BadResponse(msg, route=name, status=response.status_code)
    return content
