"""An httpx transport over aiohttp (optional: ``pip install modbot[aiohttp]``), chosen
with ``MODBOT_HTTP_TRANSPORT=aiohttp``.

Why: under load aiohttp's pool and parser (llhttp, in C) cost about half the CPU of
httpcore and h11 per call (bench/http_calls.py). Why our own rather than httpx-aiohttp:
that one maps a connection dropped after the request was written to
``httpx.ConnectTimeout``, which the client takes for "never sent", so a chat message
could be posted twice. Here only what surely happened before any byte of the request
was written is a connect error (``unsent``): aiohttp's connector errors (refused, DNS,
TLS, its connect timeout, which also bounds the wait for a pool slot). Everything
later (a disconnect, a broken or cut answer, a read timeout, a reset) is a read or
protocol error: "maybe sent", never retried for a call that is not idempotent.

The session is as strict as the httpcore transport: our TLS context, no cookies, no
decompression (the body comes as sent, for ``read_body`` to bound), no redirects, no
proxies from the environment, and aiohttp's own retry of a dropped keep-alive
connection is off (the client retries, by its own policy).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import httpx
import yarl

from modbot.euler.transport import KEEPALIVE_SECONDS, MAX_HEAD, api_ssl_context

# Lines of a head longer than MAX_HEAD are refused by aiohttp's parser too.
_LINE = MAX_HEAD


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx requests sent by one aiohttp session of at most ``max_connections``."""

    def __init__(self, max_connections: int) -> None:
        self._max = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._max,
            limit_per_host=0,
            ssl=api_ssl_context(),
            keepalive_timeout=KEEPALIVE_SECONDS,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
            max_line_size=_LINE,
            max_field_size=_LINE,
            raise_for_status=False,
        )
        # aiohttp sends an idempotent request again, once, when a reused connection
        # drops; there is no public switch. Off: the client's retry policy decides.
        session._retry_connection = False  # noqa: SLF001
        self._session = session
        return session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        timeout = request.extensions.get("timeout", {})
        pool, connect, read = (timeout.get(k) for k in ("pool", "connect", "read"))
        # aiohttp's connect timeout bounds the wait for a pool slot and the connection
        # together: one timeout, so that it fires before the client's deadline (two),
        # and keeps its meaning, "never sent".
        waits = [t for t in (pool, connect) if t is not None]
        body = await request.aread()
        try:
            answer = await session.request(
                request.method,
                yarl.URL(str(request.url), encoded=True),  # as httpx built it
                headers=request.headers.multi_items(),
                data=body or None,
                allow_redirects=False,
                compress=None,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=max(waits) if waits else None,
                    sock_connect=connect,
                    sock_read=read,
                ),
            )
        except Exception as exc:  # noqa: BLE001 (each mapped: sent, or surely not)
            failure = _mapped(exc, request)
        else:
            return httpx.Response(
                answer.status,
                headers=list(answer.raw_headers),
                stream=_Body(answer, request),
                extensions={
                    "http_version": b"HTTP/%d.%d" % (answer.version or (1, 1)),
                    "reason_phrase": (answer.reason or "").encode("ascii", "replace"),
                },
                request=request,
            )
        # Raised outside the handler, so that aiohttp's exception is neither its cause
        # nor its context: the repr of aiohttp's request_info shows the request's
        # headers, the API key and the streamer's token among them.
        raise failure

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class _Body(httpx.AsyncByteStream):
    """An answer's body as aiohttp reads it; closed before it was read to its end (a
    refused answer) its connection is dropped, never reused."""

    def __init__(self, answer: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._answer = answer
        self._request = request
        self._read = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        failure: Exception | None = None
        try:
            async for chunk in self._answer.content.iter_any():
                yield chunk
            self._read = True
        except Exception as exc:  # noqa: BLE001 (mapped as in handle_async_request)
            failure = _mapped(exc, self._request)
        if failure is not None:
            raise failure  # outside the handler: no aiohttp exception in its chain

    async def aclose(self) -> None:
        answer = self._answer
        if self._read and answer.content.at_eof() and not answer.content.exception():
            answer.release()
        else:
            answer.close()


def _mapped(exc: Exception, request: httpx.Request) -> Exception:
    """The httpx error an aiohttp failure stands for. Connect errors (the request
    surely never left) only for the connector's own failures; all else may have
    reached the server."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(f"no connection within the timeout ({exc})", request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(f"could not connect ({type(exc).__name__})", request=request)
    if isinstance(exc, TimeoutError):  # aiohttp's SocketTimeoutError and asyncio's
        return httpx.ReadTimeout("no answer within the timeout", request=request)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        msg = "Server disconnected without sending a response"
        return httpx.RemoteProtocolError(msg, request=request)
    if isinstance(exc, aiohttp.ClientPayloadError):
        text = str(exc)
        if "not enough data" in text.lower() or "connection lost" in text.lower():
            msg = "peer closed connection without sending complete message body"
        else:
            msg = f"broken body: {text[:200]}"
        return httpx.RemoteProtocolError(msg, request=request)
    if isinstance(exc, aiohttp.ClientResponseError):  # the parser refused the head
        return httpx.RemoteProtocolError(f"broken head: {exc.message[:200]}", request=request)
    if isinstance(exc, aiohttp.ClientOSError | OSError | aiohttp.ClientConnectionError):
        return httpx.ReadError(f"the connection failed ({type(exc).__name__})", request=request)
    return httpx.RemoteProtocolError(f"broken exchange ({type(exc).__name__})", request=request)
