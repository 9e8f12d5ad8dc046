"""The client's HTTP/1.1 connections against small loopback servers that answer exactly
as each test scripts (the fake Euler server covers the ordinary answers in
test_client.py)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import anyio
import anyio.abc
import httpx
import pytest
from anyio.streams.tls import TLSListener

from modbot.euler.http1 import Http1Pool

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
Handler = Callable[[anyio.abc.SocketStream, list[bytes]], Awaitable[None]]


@asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[tuple[str, list[list[bytes]]]]:
    """A TCP server on a loopback port; yields its URL and, per connection, what came in."""
    connections: list[list[bytes]] = []
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def one(stream: anyio.abc.SocketStream) -> None:
        seen: list[bytes] = []
        connections.append(seen)
        async with stream:
            with suppress(anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                await handler(stream, seen)

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, one)
        try:
            yield f"http://127.0.0.1:{port}", connections
        finally:
            tg.cancel_scope.cancel()


async def read_request(stream: anyio.abc.SocketStream, seen: list[bytes]) -> bytes:
    """One request (head and Content-Length body), kept in ``seen``."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive()
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        rest += await stream.receive()
    seen.append(head + b"\r\n\r\n" + rest)
    return head


def answering(*answers: bytes, then_close: bool = False) -> Handler:
    """A handler that answers each request with the next of ``answers``."""

    async def handler(stream: anyio.abc.SocketStream, seen: list[bytes]) -> None:
        for answer in answers:
            await read_request(stream, seen)
            await stream.send(answer)
        if not then_close:
            await anyio.sleep_forever()

    return handler


def timeout(seconds: float = 5.0) -> dict[str, object]:
    return {"timeout": httpx.Timeout(seconds).as_dict()}


async def get(pool: Http1Pool, url: str, method: str = "GET", **kw: object) -> httpx.Response:
    request = httpx.Request(method, url, extensions=timeout(), **kw)  # type: ignore[arg-type]
    return await pool.handle_async_request(request)


class TestKeepAlive:
    async def test_answers_reuse_one_connection_and_the_request_goes_as_built(self):
        async with serve(answering(OK, OK)) as (url, connections), Http1Pool(4) as pool:
            first = await get(pool, f"{url}/live?ids=1,2", "POST", json={"a": 1})
            second = await get(pool, f"{url}/again")
        assert (first.status_code, first.content, second.content) == (200, b"ok", b"ok")
        assert len(connections) == 1
        sent = connections[0][0]
        assert sent.startswith(b"POST /live?ids=1,2 HTTP/1.1\r\nHost: 127.0.0.1:")
        assert b"\r\nContent-Length: 7\r\n" in sent
        assert sent.endswith(b'\r\n\r\n{"a":1}')

    async def test_a_chunked_answer_is_joined_and_its_connection_kept(self):
        chunked = (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
        )
        async with serve(answering(chunked, OK)) as (url, connections), Http1Pool(4) as pool:
            assert (await get(pool, url)).content == b"hello world"
            assert (await get(pool, url)).content == b"ok"
        assert len(connections) == 1

    async def test_connection_close_and_answers_without_a_length_are_not_reused(self):
        close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\na"
        until_end = b"HTTP/1.1 200 OK\r\n\r\nall of this"
        async with (
            serve(answering(close, then_close=True)) as (url1, _),
            serve(answering(until_end, then_close=True)) as (url2, _),
            Http1Pool(4) as pool,
        ):
            assert (await get(pool, url1)).content == b"a"
            assert (await get(pool, url2)).content == b"all of this"
            assert pool.idle == 0

    async def test_an_idle_connection_the_server_closed_is_not_used(self):
        """The server drops the connection after one answer, without saying so: the
        next request sees the closed socket first and opens a new connection."""
        async with (
            serve(answering(OK, then_close=True)) as (url, connections),
            Http1Pool(4) as pool,
        ):
            await get(pool, url)
            (idle,) = next(iter(pool._idle.values()))
            with anyio.fail_after(5):  # until the server's close reaches this side
                while not idle.readable():  # noqa: ASYNC110 (a socket's state, no event to wait on)
                    await anyio.sleep(0.01)
            assert (await get(pool, url)).content == b"ok"
        assert len(connections) == 2

    async def test_informational_answers_before_the_real_one_are_skipped(self):
        answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n" + OK
        async with serve(answering(answer)) as (url, _), Http1Pool(4) as pool:
            response = await get(pool, url)
        assert (response.status_code, response.content) == (200, b"ok")

    async def test_head_and_204_have_no_body_and_keep_the_connection(self):
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"
        empty = b"HTTP/1.1 204 No Content\r\n\r\n"
        async with serve(answering(head, empty, OK)) as (url, connections), Http1Pool(4) as pool:
            assert (await get(pool, url, "HEAD")).content == b""
            assert (await get(pool, url)).status_code == 204
            assert (await get(pool, url)).content == b"ok"
        assert len(connections) == 1


class TestFailures:
    @pytest.mark.parametrize(
        ("answer", "message"),
        [
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
                "before its answer was complete",
            ),
            (b"", "Server disconnected without sending a response."),
            (b"SMTP ready\r\n\r\n", "not an HTTP/1.1 status line"),
            (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "a malformed header line"),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nab", "a bad Content-Length"),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "valid size"),
            (b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70_000, "headers are too long"),
        ],
        ids=[
            "cut-short",
            "no-answer",
            "not-http",
            "bad-header",
            "two-lengths",
            "bad-chunk",
            "huge",
        ],
    )
    async def test_a_broken_answer_is_a_protocol_error_and_the_connection_goes(
        self, answer: bytes, message: str
    ):
        async with serve(answering(answer, then_close=True)) as (url, _), Http1Pool(4) as pool:
            with pytest.raises(httpx.RemoteProtocolError, match=message):
                await get(pool, url)
            assert pool.idle == 0

    async def test_a_silent_server_is_a_read_timeout(self):
        async def silent(stream: anyio.abc.SocketStream, seen: list[bytes]) -> None:
            await read_request(stream, seen)
            await anyio.sleep_forever()

        async with serve(silent) as (url, _), Http1Pool(4) as pool:
            request = httpx.Request("GET", url, extensions=timeout(0.2))
            with pytest.raises(httpx.ReadTimeout):
                await pool.handle_async_request(request)

    async def test_nothing_listening_is_a_connect_error(self):
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        await listener.aclose()
        async with Http1Pool(4) as pool:
            with pytest.raises(httpx.ConnectError):
                await get(pool, f"http://127.0.0.1:{port}/")

    async def test_requests_beyond_the_connections_wait_for_a_slot_then_time_out(self):
        async def slow(stream: anyio.abc.SocketStream, seen: list[bytes]) -> None:
            await read_request(stream, seen)
            await anyio.sleep(0.5)
            await stream.send(OK)
            await anyio.sleep_forever()

        async with serve(slow) as (url, _), Http1Pool(1) as pool:
            results: list[object] = []

            async def call(seconds: float) -> None:
                request = httpx.Request("GET", url, extensions=timeout(seconds))
                try:
                    results.append((await pool.handle_async_request(request)).content)
                except httpx.PoolTimeout as exc:
                    results.append(type(exc))

            async with anyio.create_task_group() as tg:
                tg.start_soon(call, 5.0)
                await anyio.sleep(0.1)
                tg.start_soon(call, 0.1)
        assert results == [httpx.PoolTimeout, b"ok"]

    def test_a_pool_needs_a_connection(self):
        with pytest.raises(ValueError, match="at least one"):
            Http1Pool(0)


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost, made by openssl (skips without it)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: no certificate to test with")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class TestTls:
    async def test_https_answers_come_over_tls_and_keep_the_connection(
        self, certificate: tuple[Path, Path]
    ):
        """The real API is https: a loopback TLS server with a certificate made here."""
        cert, key = certificate
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_context.load_cert_chain(cert, key)
        client_context = ssl.create_default_context(cafile=str(cert))
        tcp = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = tcp.extra(anyio.abc.SocketAttribute.local_port)
        listener = TLSListener(tcp, server_context, standard_compatible=False)
        seen: list[bytes] = []

        async def one(stream: anyio.abc.ByteStream) -> None:
            async with stream:
                with suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                    for _ in range(2):
                        await read_request(stream, seen)  # type: ignore[arg-type]
                        await stream.send(OK)
                    await anyio.sleep_forever()

        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, one)
            async with Http1Pool(2, ssl_context=client_context) as pool:
                url = f"https://localhost:{port}/tls"
                assert (await get(pool, url)).content == b"ok"
                assert (await get(pool, url)).content == b"ok"
                assert pool.idle == 1
            tg.cancel_scope.cancel()
        assert [s.split(b"\r\n")[0] for s in seen] == [b"GET /tls HTTP/1.1"] * 2
