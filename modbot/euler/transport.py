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

import httpx

from modbot.errors import ApiError, BadResponse
from modbot.euler.answers import clean

# Connections to the API: as many as the executor has calls in flight on its busiest
# routes (32), all kept open between calls (httpx's default, 100 with 20 kept, closed and
# reopened connections in every burst).
MAX_CONNECTIONS = 32
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


def api_transport(max_connections: int = MAX_CONNECTIONS) -> httpx.AsyncBaseTransport:
    """The HTTP transport of the API client: httpx's own (httpcore's pool, h11's parser).

    Proxy policy, the same as the event WebSocket's (``modbot.euler.ws``): connections go
    straight to the configured host, whatever ``HTTP(S)_PROXY`` / ``ALL_PROXY`` say. The
    traffic carries the API key and the streamer's token to one host the operator chose;
    an environment variable set for other programs must not reroute it, and the two
    channels must not leave by different routes (review L11). httpx reads proxies from
    the environment only in ``httpx.AsyncClient`` with ``trust_env``; this transport is
    given no proxy. The environment is trusted for one thing: the CA bundle
    (``SSL_CERT_FILE`` / ``SSL_CERT_DIR``, see ``api_ssl_context``).
    """
    return httpx.AsyncHTTPTransport(
        verify=api_ssl_context(),
        trust_env=True,  # read by httpx only for the CA bundle, given here already
        proxy=None,
        limits=httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=KEEPALIVE_SECONDS,
        ),
        retries=0,  # the client retries, by its own policy
    )


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
