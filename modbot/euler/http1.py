"""The API client's HTTP/1.1 connections: keep-alive, and nothing the API does not use (I/O).

httpx's own transport (httpcore and h11) costs about a millisecond of the event loop for
each call under load, a fifth of the daemon's main thread in a raid: several layers of
async generators and context managers per request, a walk over every pooled connection
with a poll of each socket, header validation in Python. The API needs little of it:
one host, small JSON bodies, ``Content-Length`` or chunked answers. ``Http1Pool`` is
that much of HTTP/1.1, behind httpx's transport interface, so the client still builds
``httpx.Request`` and reads ``httpx.Response``, and fails with httpx's own errors
(``ConnectError``, ``ReadTimeout``, ``RemoteProtocolError``, ...).

- Connections are kept open after an answer unless it says ``Connection: close`` or
  its length is "until the end"; an idle connection whose socket has become readable
  (the server closed it, or sent something unasked) is dropped before it is reused.
- ``max_connections`` requests are in flight at most; as many connections stay idle.
- Timeouts are the request's ``timeout`` extension (httpx.Timeout's four): ``pool``
  to get a slot, ``connect``, ``write`` for the request, ``read`` for the whole answer.
- Answers are read whole, up to ``MAX_BODY`` (the API's are a few kilobytes).
"""

from __future__ import annotations

import contextlib
import math
import select
import ssl
import time
from collections.abc import Iterable
from typing import Any

import anyio
import anyio.abc
import httpx

MAX_HEAD = 64 * 1024  # status line and headers
MAX_BODY = 16 * 1024 * 1024
IDLE_SECONDS = 30.0  # an idle connection older than this is closed, not reused
_READ = 65536
_NO_BODY_STATUS = frozenset({204, 304})
# What a socket or TLS stream raises when it breaks (ssl.SSLError is an OSError).
_BROKEN = (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError)

Key = tuple[str, str, int]


class Http1Pool(httpx.AsyncBaseTransport):
    """Keep-alive HTTP/1.1 connections to the API (http and https)."""

    def __init__(
        self, max_connections: int = 32, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        if max_connections < 1:
            msg = "Http1Pool needs at least one connection"
            raise ValueError(msg)
        self.max_connections = max_connections
        self._slots = anyio.Semaphore(max_connections)
        self._idle: dict[Key, list[_Connection]] = {}
        self._ssl = ssl_context
        self._closed = False

    @property
    def idle(self) -> int:
        """How many connections are open and waiting for a request."""
        return sum(len(conns) for conns in self._idle.values())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            msg = "the connection pool is closed"
            raise RuntimeError(msg)
        timeouts = _timeouts(request)
        url = request.url
        scheme = url.scheme
        if scheme not in ("http", "https"):
            msg = f"unsupported URL scheme {scheme!r}"
            raise httpx.UnsupportedProtocol(msg, request=request)
        key = (scheme, url.host, url.port or (443 if scheme == "https" else 80))
        try:
            self._slots.acquire_nowait()  # a slot is free (no timer needed)
        except anyio.WouldBlock:
            try:
                with anyio.fail_after(timeouts["pool"]):
                    await self._slots.acquire()
            except TimeoutError:
                msg = "no connection slot came free in time"
                raise httpx.PoolTimeout(msg, request=request) from None
        try:
            conn = await self._reuse(key) or await self._connect(key, request, timeouts["connect"])
            try:
                status, headers, body, keep = await conn.exchange(request, timeouts)
            except BaseException:
                await conn.close()
                raise
            if keep and not self._closed and self.idle < self.max_connections:
                conn.last_used = time.monotonic()
                self._idle.setdefault(key, []).append(conn)
            else:
                await conn.close()
        finally:
            self._slots.release()
        return httpx.Response(
            status,
            headers=headers,
            content=body,
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def _reuse(self, key: Key) -> _Connection | None:
        conns = self._idle.get(key)
        now = time.monotonic()
        while conns:
            conn = conns.pop()  # the most recently used: the likeliest to be alive
            if now - conn.last_used < IDLE_SECONDS and not conn.readable():
                return conn
            await conn.close()
        return None

    async def _connect(
        self, key: Key, request: httpx.Request, timeout: float | None
    ) -> _Connection:
        scheme, host, port = key
        context = None
        if scheme == "https":
            context = self._ssl = self._ssl or httpx.create_ssl_context()
        try:
            with anyio.fail_after(timeout):
                stream: anyio.abc.ByteStream
                if context is None:
                    stream = await anyio.connect_tcp(host, port)
                else:
                    stream = await anyio.connect_tcp(
                        host,
                        port,
                        ssl_context=context,
                        tls_hostname=host,
                        tls_standard_compatible=False,
                    )
        except TimeoutError:
            msg = f"connecting to {host}:{port} took longer than {timeout}s"
            raise httpx.ConnectTimeout(msg, request=request) from None
        except _BROKEN as exc:
            raise httpx.ConnectError(
                f"cannot connect to {host}:{port}: {exc}", request=request
            ) from exc
        return _Connection(stream)

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                await conn.close()


class _Connection:
    """One socket (or TLS stream) and the bytes read past the last answer."""

    __slots__ = ("_buffer", "_socket", "last_used", "stream")

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self._buffer = b""
        self.last_used = time.monotonic()
        try:
            raw = anyio.abc.SocketAttribute.raw_socket
            self._socket: Any = stream.extra(raw)  # noqa: S610 (anyio's, not Django's)
        except anyio.TypedAttributeLookupError:
            self._socket = None

    def readable(self) -> bool:
        """Whether the idle socket has something to read: the server closed it (or sent
        what nobody asked for). Either way it is not fit for another request."""
        if self._buffer:
            return True
        if self._socket is None:
            return False
        try:
            ready, _, _ = select.select([self._socket], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(ready)

    async def close(self) -> None:
        with (
            anyio.CancelScope(shield=True),
            anyio.move_on_after(1),
            contextlib.suppress(*_BROKEN),
        ):
            await self.stream.aclose()

    async def exchange(
        self, request: httpx.Request, timeouts: dict[str, float | None]
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
        """Send ``request`` and read its answer: (status, headers, body, keep-alive)."""
        data = _request_bytes(request)
        reading = False
        # One timer for both phases (each costs the loop): the write's deadline, then
        # the read's from the moment the request is out.
        with anyio.CancelScope(deadline=_deadline(timeouts["write"])) as timer:
            try:
                await self.stream.send(data)
            except _BROKEN as exc:
                msg = f"sending the request failed: {exc}"
                raise httpx.WriteError(msg, request=request) from exc
            reading = True
            timer.deadline = _deadline(timeouts["read"])
            try:
                return await self._answer(request)
            except _BROKEN as exc:
                msg = f"reading the answer failed: {exc}"
                raise httpx.ReadError(msg, request=request) from exc
        if reading:
            raise httpx.ReadTimeout("the answer took too long", request=request)
        raise httpx.WriteTimeout("sending the request took too long", request=request)

    async def _answer(
        self, request: httpx.Request
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
        while True:
            head = await self._upto(b"\r\n\r\n", "the answer's headers are", request)
            version, status, headers = _parse_head(head, request)
            if not 100 <= status < 200:
                break  # informational answers (100 Continue, 103) come before the real one
            if status == 101:
                raise httpx.RemoteProtocolError("the server switched protocols", request=request)
        fields = _fields(headers)
        keep = version == b"HTTP/1.1" and b"close" not in _tokens(fields.get(b"connection", b""))
        if request.method == "HEAD" or status in _NO_BODY_STATUS:
            return status, headers, b"", keep
        coding = _tokens(fields.get(b"transfer-encoding", b""))
        if coding:
            if coding[-1] != b"chunked":
                return status, headers, await self._until_end(request), False
            return status, headers, await self._chunked(request), keep
        length = fields.get(b"content-length")
        if length is None:
            return status, headers, await self._until_end(request), False
        return status, headers, await self._exactly(_length(length, request), request), keep

    async def _fill(self, request: httpx.Request) -> None:
        """Read more into the buffer; a connection that ends here ends mid-answer."""
        try:
            chunk = await self.stream.receive(_READ)
        except anyio.EndOfStream:
            msg = "the server closed the connection before its answer was complete"
            if not self._buffer:
                msg = "Server disconnected without sending a response."
            raise httpx.RemoteProtocolError(msg, request=request) from None
        self._buffer += chunk

    async def _upto(self, marker: bytes, what: str, request: httpx.Request) -> bytes:
        """The buffered bytes before ``marker`` (which is dropped): the head before the
        empty line, or one line of the chunked framing."""
        while True:
            end = self._buffer.find(marker)
            if end >= 0:
                found, self._buffer = self._buffer[:end], self._buffer[end + len(marker) :]
                return found
            if len(self._buffer) > MAX_HEAD:
                raise httpx.RemoteProtocolError(f"{what} too long", request=request)
            await self._fill(request)

    async def _framing(self, request: httpx.Request) -> bytes:
        return await self._upto(b"\r\n", "a chunk's framing line is", request)

    async def _exactly(self, size: int, request: httpx.Request) -> bytes:
        if size > MAX_BODY:
            raise httpx.RemoteProtocolError(
                f"an answer of {size} bytes is too long", request=request
            )
        while len(self._buffer) < size:
            await self._fill(request)
        body, self._buffer = self._buffer[:size], self._buffer[size:]
        return body

    async def _chunked(self, request: httpx.Request) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size_text = (await self._framing(request)).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise httpx.RemoteProtocolError(
                    "a chunk without a valid size", request=request
                ) from None
            if size < 0:
                raise httpx.RemoteProtocolError("a chunk without a valid size", request=request)
            if size == 0:
                while await self._framing(request):  # trailers, up to the empty line
                    pass
                return b"".join(parts)
            total += size
            if total > MAX_BODY:
                raise httpx.RemoteProtocolError("the answer is too long", request=request)
            parts.append(await self._exactly(size, request))
            if await self._framing(request):
                raise httpx.RemoteProtocolError("a chunk longer than its size", request=request)

    async def _until_end(self, request: httpx.Request) -> bytes:
        while True:
            if len(self._buffer) > MAX_BODY:
                raise httpx.RemoteProtocolError("the answer is too long", request=request)
            try:
                chunk = await self.stream.receive(_READ)
            except anyio.EndOfStream:
                body, self._buffer = self._buffer, b""
                return body
            self._buffer += chunk


def _deadline(seconds: float | None) -> float:
    return math.inf if seconds is None else anyio.current_time() + seconds


def _timeouts(request: httpx.Request) -> dict[str, float | None]:
    given = request.extensions.get("timeout") or {}
    return {k: given.get(k) for k in ("connect", "read", "write", "pool")}


def _request_bytes(request: httpx.Request) -> bytes:
    target = request.url.raw_path  # the path and the query, encoded
    lines = [request.method.encode("ascii"), b" ", target, b" HTTP/1.1\r\n"]
    for name, value in request.headers.raw:
        lines += [name, b": ", value, b"\r\n"]
    lines.append(b"\r\n")
    return b"".join(lines) + request.content


def _parse_head(
    head: bytes, request: httpx.Request
) -> tuple[bytes, int, list[tuple[bytes, bytes]]]:
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        msg = f"not an HTTP/1.1 status line: {lines[0][:80]!r}"
        raise httpx.RemoteProtocolError(msg, request=request)
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip() or line[:1] in (b" ", b"\t"):
            msg = f"a malformed header line: {line[:80]!r}"
            raise httpx.RemoteProtocolError(msg, request=request)
        headers.append((name, value.strip(b" \t")))
    return parts[0], int(parts[1]), headers


def _fields(headers: Iterable[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """The headers the framing depends on, by lower-case name (repeats joined by commas)."""
    out: dict[bytes, bytes] = {}
    for name, value in headers:
        lower = name.lower()
        if lower in (b"connection", b"transfer-encoding", b"content-length"):
            out[lower] = out[lower] + b"," + value if lower in out else value
    return out


def _tokens(value: bytes) -> list[bytes]:
    return [t.strip().lower() for t in value.split(b",") if t.strip()]


def _length(value: bytes, request: httpx.Request) -> int:
    values = {v.strip() for v in value.split(b",")}
    if len(values) != 1 or not next(iter(values)).isdigit():
        raise httpx.RemoteProtocolError(f"a bad Content-Length: {value[:40]!r}", request=request)
    return int(next(iter(values)))
