"""The API client's HTTP, whatever library carries it: a conformance suite of small
loopback servers that answer exactly as each test scripts, broken HTTP included (the
fake Euler server covers the ordinary answers in test_client.py).

Every hostile answer must come out of the client as a ``BadResponse`` (the answer broke
HTTP or the route's promise) or an ``ApiUnavailable`` (the connection went away or
timed out): never a bare exception, never a body in memory that was not bounded.
"""

from __future__ import annotations

import gc
import shutil
import socket
import ssl
import struct
import subprocess
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.abc
import httpx
import pytest
from anyio.streams.tls import TLSListener

from modbot.errors import ApiUnavailable, BadResponse, ConfigError, RequestRejected
from modbot.euler.client import MAX_BODY, EulerClient, api_ssl_context, api_transport
from modbot.euler.policy import RetryPolicy
from modbot.euler.transport import Pools
from modbot.fake.clock import FakeClock

KEY = "transport-test-key"
BODY = b'{"code":200,"numeric_user_id":"42"}'
OK = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
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


async def read_request(stream: anyio.abc.ByteStream, seen: list[bytes]) -> bytes:
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


async def _no_sleep(_seconds: float) -> None:
    await anyio.lowlevel.checkpoint()


# Every test runs on both transports (the setting http_transport); _LIBRARY is the one
# of the running test.
_LIBRARY: list[Literal["httpcore", "aiohttp"]] = ["httpcore"]


@pytest.fixture(autouse=True, params=["httpcore", "aiohttp"])
def library(request: pytest.FixtureRequest) -> Iterator[str]:
    _LIBRARY[0] = request.param
    yield request.param
    _LIBRARY[0] = "httpcore"


async def settled() -> None:
    """A few turns of the event loop, no time: a close by the server reaches aiohttp
    (which learns of it when the loop reads the socket's end; httpcore polls the
    socket before reusing a connection)."""
    for _ in range(5):
        await anyio.wait_all_tasks_blocked()
        await anyio.lowlevel.checkpoint()


def transport_of(max_connections: int = 32) -> httpx.AsyncBaseTransport:
    return api_transport(max_connections, library=_LIBRARY[0])


def client(url: str, **kw: Any) -> EulerClient:
    """The client as the daemon makes it (the transport of the test), one try per call."""
    kw.setdefault("retry", RetryPolicy(max_attempts=1))
    kw.setdefault("transport", transport_of())
    return EulerClient(url, KEY, clock=FakeClock(), sleep=_no_sleep, **kw)


class TestKeepAlive:
    async def test_answers_reuse_one_connection_and_the_request_goes_as_built(self):
        async with serve(answering(OK, OK)) as (url, connections), client(url) as api:
            await api._call("revoke", json_body={"a": 1})
            assert await api.user_id("host") == "42"
        assert len(connections) == 1
        sent, again = connections[0]
        head = sent.split(b"\r\n\r\n")[0].lower().split(b"\r\n")
        assert head[0] == b"post /tiktok/oauth/revoke http/1.1"
        assert b"host: 127.0.0.1:" + url.rsplit(":", 1)[1].encode() in head
        assert b"x-api-key: " + KEY.encode() in head
        assert b"accept-encoding: identity" in head
        assert b"content-length: 7" in head
        assert sent.endswith(b'\r\n\r\n{"a":1}')
        assert again.startswith(b"GET /webcast/anchors/host/user_id HTTP/1.1\r\n")

    async def test_a_chunked_answer_is_joined_and_its_connection_kept(self):
        chunked = (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'5;ext=1\r\n{"cod\r\n1e\r\ne":200,"numeric_user_id":"42"}\r\n0\r\nX-Trailer: t\r\n\r\n'
        )
        async with serve(answering(chunked, OK)) as (url, connections), client(url) as api:
            assert await api.user_id("host") == "42"
            assert await api.user_id("host") == "42"
        assert len(connections) == 1

    async def test_connection_close_and_answers_without_a_length_are_not_reused(self):
        close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (
            len(BODY),
            BODY,
        )
        until_end = b"HTTP/1.1 200 OK\r\n\r\n" + BODY
        async with (
            serve(answering(close, then_close=True)) as (url, connections),
            client(url) as api,
        ):
            assert await api.user_id("host") == "42"
            assert await api.user_id("host") == "42"
        assert len(connections) == 2
        async with (
            serve(answering(until_end, then_close=True)) as (url, connections),
            client(url) as api,
        ):
            assert await api.user_id("host") == "42"
            assert await api.user_id("host") == "42"
        assert len(connections) == 2

    async def test_an_idle_connection_the_server_closed_is_not_used(self):
        """The server drops the connection after one answer, without saying so: the
        next call opens a new connection instead of failing on the closed one."""
        closed = anyio.Event()

        async def once(stream: anyio.abc.SocketStream, seen: list[bytes]) -> None:
            await read_request(stream, seen)
            await stream.send(OK)
            await stream.aclose()
            closed.set()

        async with serve(once) as (url, connections), client(url) as api:
            assert await api.user_id("host") == "42"
            await closed.wait()
            # A request sent in the same instant as the close meets a closed
            # connection on aiohttp: "maybe sent", which is as safe.
            await settled()
            assert await api.user_id("host") == "42"
        assert len(connections) == 2

    async def test_informational_answers_before_the_real_one_are_skipped(self):
        answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n" + OK
        async with serve(answering(answer)) as (url, _), client(url) as api:
            assert await api.user_id("host") == "42"

    async def test_204_has_no_body_and_keeps_the_connection(self):
        empty = b"HTTP/1.1 204 No Content\r\n\r\n"
        async with serve(answering(empty, OK)) as (url, connections), client(url) as api:
            assert await api._call("revoke", json_body={}) == {}
            assert await api.user_id("host") == "42"
        assert len(connections) == 1


def _gzip_bomb() -> bytes:
    """About 1 MiB of gzip that inflates to 1 GiB of zeros, made in milliseconds: after a
    full flush the compressor's output for the next MiB of zeros is the same every time."""
    zeros = bytes(1 << 20)
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    first = packer.compress(zeros) + packer.flush(zlib.Z_FULL_FLUSH)
    steady = packer.compress(zeros) + packer.flush(zlib.Z_FULL_FLUSH)
    end = packer.flush()[:-8]  # the last (empty) block; the trailer is for 1 GiB below
    crc_of_1_gib_of_zeros = 0x5B64C2B0
    return first + steady * 1023 + end + struct.pack("<II", crc_of_1_gib_of_zeros, 1 << 30)


def _head(*lines: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\n" + b"".join(line + b"\r\n" for line in lines) + b"\r\n"


def _chunked(size: bytes) -> bytes:
    return _head(b"Transfer-Encoding: chunked") + size + b"\r\nab\r\n0\r\n\r\n"


BROKEN: list[tuple[str, bytes, type[Exception], str]] = [
    # (name, answer, what the client raises, in its message)
    ("cut-short", _head(b"Content-Length: 40") + b'{"co', ApiUnavailable, "closed the connection"),
    ("no-answer", b"", ApiUnavailable, "closed the connection"),
    ("not-http", b"SMTP ready\r\n\r\n", BadResponse, "broke HTTP"),
    ("bad-header", _head(b"no colon here"), BadResponse, "broke HTTP"),
    ("two-lengths", _head(b"Content-Length: 1, 2") + b"ab", BadResponse, "broke HTTP"),
    ("bad-chunk", _chunked(b"zz"), BadResponse, "broke HTTP"),
    ("chunk-0x2", _chunked(b"0x2"), BadResponse, "broke HTTP"),
    ("chunk-1_0", _chunked(b"1_0"), BadResponse, "broke HTTP"),
    ("chunk-+2", _chunked(b"+2"), BadResponse, "broke HTTP"),
    ("chunk--0", _chunked(b"-0"), BadResponse, "broke HTTP"),
    (
        "head-70000",
        _head(b"X: " + b"y" * 70_000, b"Content-Length: 2") + b"{}",
        BadResponse,
        "head",
    ),
    ("head-unended", b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70_000, ApiUnavailable, "closed"),
    ("head-200000", b"HTTP/1.1 200 OK\r\nX: " + b"y" * 200_000, BadResponse, "broke HTTP"),
    (
        "length-5000-digits",
        _head(b"Content-Length: " + b"9" * 5000) + b"{}",
        BadResponse,
        "broke HTTP",
    ),
    ("status-5000-digits", b"HTTP/1.1 " + b"4" * 5000 + b" OK\r\n\r\n", BadResponse, "broke HTTP"),
    (
        "length-beyond-limit",
        _head(b"Content-Length: %d" % (MAX_BODY + 1)),
        BadResponse,
        "Content-Length",
    ),
    (
        "gzip-chunked",
        _chunked(b"2").replace(b"chunked", b"gzip, chunked"),
        BadResponse,
        "broke HTTP",
    ),
    (
        "deflate",
        _head(b"Content-Encoding: deflate", b"Content-Length: 2") + b"{}",
        BadResponse,
        "deflate-encoded",
    ),
]


# Where aiohttp's answer differs, as safe: llhttp stops at a head line of MAX_HEAD bytes
# before the server closes (BadResponse, not retried, instead of ApiUnavailable), and it
# passes "gzip, chunked" on to read_body, which refuses it.
AIOHTTP_BROKEN: dict[str, tuple[type[Exception], str]] = {
    "aiohttp-head-unended": (BadResponse, "broke HTTP"),
    "aiohttp-gzip-chunked": (BadResponse, "unsupported Transfer-Encoding"),
}


def broken_first(answer: bytes) -> Handler:
    """The first connection gets ``answer`` (then the server closes it), later ones OK."""
    count = 0

    async def handler(stream: anyio.abc.SocketStream, seen: list[bytes]) -> None:
        nonlocal count
        count += 1
        if count == 1:
            await read_request(stream, seen)
            await stream.send(answer)
            return
        await answering(OK)(stream, seen)

    return handler


class TestBrokenAnswers:
    @pytest.mark.parametrize(
        ("answer", "error", "message"),
        [pytest.param(a, e, m, id=n) for n, a, e, m in BROKEN],
    )
    async def test_a_broken_answer_is_an_api_error_and_the_connection_goes(
        self, request: pytest.FixtureRequest, answer: bytes, error: type[Exception], message: str
    ):
        if _LIBRARY[0] == "aiohttp":
            error, message = AIOHTTP_BROKEN.get(request.node.callspec.id, (error, message))
        async with (
            serve(broken_first(answer)) as (url, connections),
            client(url) as api,
        ):
            with pytest.raises(error, match=message) as info:
                await api.user_id("host")
            assert type(info.value) is error
            # aiohttp pools a connection whose answer came whole, refused or not.
            await settled()
            # The next call works, on a connection of its own.
            assert await api.user_id("host") == "42"
        assert len(connections) == 2

    async def test_a_gzip_bomb_is_refused_without_inflating_it(self):
        """1 MiB of gzip that inflates to 1 GiB: refused from its head, and the client
        holds a few megabytes at most (the old transport held the whole gigabyte)."""
        bomb = _gzip_bomb()
        answer = _head(b"Content-Encoding: gzip", b"Content-Length: %d" % len(bomb)) + bomb
        async with serve(answering(answer, then_close=True)) as (url, _), client(url) as api:
            gc.collect()
            tracemalloc.start()
            try:
                with pytest.raises(BadResponse, match="gzip-encoded") as info:
                    await api.user_id("host")
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        assert type(info.value) is BadResponse
        assert peak < 8 * MAX_BODY

    async def test_an_endless_body_is_cut_at_the_limit(self):
        """No length, no end: the client stops reading past MAX_BODY."""

        async def endless(stream: anyio.abc.SocketStream, seen: list[bytes]) -> None:
            await read_request(stream, seen)
            await stream.send(_head(b"Transfer-Encoding: chunked"))
            chunk = b"10000\r\n" + b"[" * 0x10000 + b"\r\n"
            while True:
                await stream.send(chunk)

        async with serve(endless) as (url, _), client(url) as api:
            with pytest.raises(BadResponse, match="longer than") as info:
                await api.user_id("host")
        assert type(info.value) is BadResponse

    async def test_a_silent_server_is_a_timeout(self):
        async def silent(stream: anyio.abc.SocketStream, seen: list[bytes]) -> None:
            await read_request(stream, seen)
            await anyio.sleep_forever()

        async with serve(silent) as (url, _), client(url, timeout=0.2) as api:
            with pytest.raises(ApiUnavailable, match="timed out"):
                await api.user_id("host")

    async def test_an_answer_dripped_a_byte_at_a_time_ends_at_the_deadline(self):
        """Each byte comes within the read timeout, the answer never does: httpx's
        timeout bounds each read, the client's deadline (twice the timeout) the whole
        exchange. The connection goes, so the pool's one slot serves the next call."""
        dripping = anyio.Event()

        async def drip(stream: anyio.abc.SocketStream, seen: list[bytes]) -> None:
            await read_request(stream, seen)
            if dripping.is_set():  # a later connection: answered at once
                await stream.send(OK)
                await anyio.sleep_forever()
            await stream.send(_head(b"Content-Length: 100"))
            dripping.set()
            while True:
                await anyio.sleep(0.1)
                await stream.send(b" ")

        async with (
            serve(drip) as (url, connections),
            client(url, timeout=0.3, transport=transport_of(1)) as api,
        ):
            started = anyio.current_time()
            with pytest.raises(ApiUnavailable, match=r"not complete within 0\.6 s") as info:
                await api.user_id("host")
            took = anyio.current_time() - started
            assert dripping.is_set()
            assert type(info.value) is ApiUnavailable
            assert 0.55 <= took < 1.2
            assert await api.user_id("host") == "42"
        assert len(connections) == 2

    async def test_nothing_listening_is_api_unavailable(self):
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        await listener.aclose()
        async with client(f"http://127.0.0.1:{port}") as api:
            with pytest.raises(ApiUnavailable, match="could not reach"):
                await api.user_id("host")

    async def test_requests_beyond_the_connections_wait_for_a_slot_then_time_out(self):
        """The transport's pool holds max_connections; a request past them waits for
        its pool timeout (the client counts that as not sent: ApiUnavailable)."""
        answer = anyio.Event()

        async def held(stream: anyio.abc.SocketStream, seen: list[bytes]) -> None:
            await read_request(stream, seen)
            await answer.wait()
            await stream.send(OK)
            await anyio.sleep_forever()

        async with serve(held) as (url, _), transport_of(1) as transport:
            results: list[object] = []

            async def call(seconds: float) -> None:
                request = httpx.Request(
                    "GET", url, extensions={"timeout": httpx.Timeout(seconds).as_dict()}
                )
                try:
                    response = await transport.handle_async_request(request)
                    results.append(await response.aread())
                except (httpx.PoolTimeout, httpx.ConnectTimeout) as exc:
                    results.append(type(exc))
                    answer.set()

            async with anyio.create_task_group() as tg:
                tg.start_soon(call, 5.0)
                await anyio.wait_all_tasks_blocked()
                tg.start_soon(call, 0.1)
        # aiohttp's connect timeout bounds the wait for a slot: ConnectTimeout, "unsent"
        # to the client as PoolTimeout is.
        waited = httpx.ConnectTimeout if _LIBRARY[0] == "aiohttp" else httpx.PoolTimeout
        assert results == [waited, BODY]


@pytest.mark.parametrize("library", ["httpcore"], indirect=True)
class TestPools:
    """The default transport is several httpcore pools (bench/http_calls.py: a pool's
    scan of its connections is most of a call's CPU with 32 in one pool)."""

    async def test_calls_spread_over_the_pools_and_each_slot_comes_back_after_a_drop(self):
        """Eight calls at once on four pools of two: all eight reach the server (one
        pool could not hold them); four connections are dropped after the request, and
        every slot is given back, of answered calls as of dropped ones."""
        arrived = anyio.Event()
        count = 0

        async def half_dropped(stream: anyio.abc.SocketStream, seen: list[bytes]) -> None:
            nonlocal count
            await read_request(stream, seen)
            count += 1
            mine = count
            if count == 8:
                arrived.set()
            await arrived.wait()
            if mine % 2:
                return  # closed after the request was read: the answer never comes
            await stream.send(OK)
            await anyio.sleep_forever()

        transport = api_transport(8, 2)
        assert isinstance(transport, Pools)
        async with (
            serve(half_dropped) as (url, connections),
            client(url, transport=transport) as api,
        ):
            results: list[object] = []

            async def call() -> None:
                try:
                    results.append(await api.user_id("host"))
                except ApiUnavailable as exc:
                    results.append(type(exc))

            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    for _ in range(8):
                        tg.start_soon(call)
            assert sorted(map(str, results)) == ["42"] * 4 + [str(ApiUnavailable)] * 4
            assert len(connections) == 8
            assert transport.in_flight == (0, 0, 0, 0)

    async def test_a_refused_answer_gives_its_slot_back(self):
        """An answer refused before its body is read (too long) still closes, and its
        pool's count goes back to nought; the next call goes to the first pool again."""
        long = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1)
        transport = api_transport(4, 2)
        assert isinstance(transport, Pools)
        first = True

        async def long_then_ok(stream: anyio.abc.SocketStream, seen: list[bytes]) -> None:
            nonlocal first
            answer, first = (long if first else OK), False
            await answering(answer)(stream, seen)

        async with (
            serve(long_then_ok) as (url, connections),
            client(url, transport=transport) as api,
        ):
            with pytest.raises(BadResponse, match="Content-Length"):
                await api.user_id("host")
            assert transport.in_flight == (0, 0)
            assert await api.user_id("host") == "42"
            assert transport.in_flight == (0, 0)
        assert len(connections) == 2  # the refused answer's connection was not reused

    def test_one_pool_when_the_connections_fit_in_one(self):
        assert isinstance(api_transport(2, 8), httpx.AsyncHTTPTransport)
        assert isinstance(api_transport(1), httpx.AsyncHTTPTransport)
        assert isinstance(api_transport(), Pools)


class TestHeaderInjection:
    """A credential with CR, LF or NUL must never make a second header line: it is
    refused before anything is sent, and the error does not quote it (review L1)."""

    @pytest.mark.parametrize("bad", ["tok\r\nX-Evil: 1", "tok\nX-Evil: 1", "tok\x00evil", "tök"])
    async def test_a_token_that_no_header_can_carry_is_refused_before_sending(self, bad: str):
        class Tokens:
            async def access_token(self) -> str:
                return bad

            async def refresh_after_rejection(self, rejected: str) -> str:
                raise AssertionError("never asked")

        async with serve(answering(OK)) as (url, connections), client(url) as api:
            api._tokens = Tokens()
            with pytest.raises(RequestRejected) as info:
                await api.unmute("1", "2")
        assert "evil" not in str(info.value).lower()
        assert "tok" not in str(info.value).replace("token", "")
        assert "auth login" in str(info.value)
        assert connections == []

    @pytest.mark.parametrize("bad", ["key\r\nX-Evil: 1", "key\x00", "key with space"])
    def test_an_api_key_that_no_header_can_carry_is_a_config_error(self, bad):
        with pytest.raises(ConfigError) as info:
            EulerClient("http://127.0.0.1:9", bad)
        assert info.value.setting == "api_key"
        assert "key" not in str(info.value).replace("API key", "")


class TestProxies:
    async def test_proxy_variables_do_not_reroute_the_api(self, monkeypatch):
        """One proxy policy for HTTP and the WebSocket: straight to the host, whatever
        the environment says (review L11; the WebSocket's half is in test_ws.py)."""
        async with serve(answering(b"HTTP/1.1 502 No\r\n\r\n")) as (proxy, seen_by_proxy):
            for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
                monkeypatch.setenv(name, proxy)
            for name in ("NO_PROXY", "no_proxy"):
                monkeypatch.delenv(name, raising=False)
            async with serve(answering(OK)) as (url, connections), client(url) as api:
                assert await api.user_id("host") == "42"
        assert seen_by_proxy == []
        assert len(connections) == 1


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


@asynccontextmanager
async def tls_server(cert: Path, key: Path) -> AsyncIterator[tuple[int, list[bytes]]]:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = tcp.extra(anyio.abc.SocketAttribute.local_port)
    listener = TLSListener(tcp, server_context, standard_compatible=False)
    seen: list[bytes] = []

    async def one(stream: anyio.abc.ByteStream) -> None:
        async with stream:
            with suppress(anyio.EndOfStream, anyio.BrokenResourceError, ssl.SSLError, OSError):
                for _ in range(2):
                    await read_request(stream, seen)
                    await stream.send(OK)
                await anyio.sleep_forever()

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, one)
        yield port, seen
        tg.cancel_scope.cancel()


class TestTls:
    def test_the_context_is_strict(self):
        context = api_ssl_context()
        assert context.check_hostname
        assert context.verify_mode is ssl.CERT_REQUIRED
        assert context.minimum_version >= ssl.TLSVersion.TLSv1_2

    async def test_https_with_the_ca_that_ssl_cert_file_names(self, certificate, monkeypatch):
        """The real API is https: a loopback TLS server whose certificate is trusted
        because SSL_CERT_FILE names it; the connection is kept for the next call."""
        cert, key = certificate
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        async with (
            tls_server(cert, key) as (port, seen),
            client(f"https://localhost:{port}") as api,
        ):
            assert await api.user_id("host") == "42"
            assert await api.user_id("host") == "42"
        assert [s.split(b"\r\n")[0] for s in seen] == [
            b"GET /webcast/anchors/host/user_id HTTP/1.1"
        ] * 2

    async def test_an_unknown_ca_or_a_wrong_host_name_is_refused(self, certificate, monkeypatch):
        cert, key = certificate
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        monkeypatch.delenv("SSL_CERT_DIR", raising=False)
        async with tls_server(cert, key) as (port, seen):
            async with client(f"https://localhost:{port}") as api:
                with pytest.raises(ApiUnavailable, match="could not reach"):
                    await api.user_id("host")
            monkeypatch.setenv("SSL_CERT_FILE", str(cert))
            async with client(f"https://127.0.0.1:{port}") as api:  # not the name certified
                with pytest.raises(ApiUnavailable, match="could not reach"):
                    await api.user_id("host")
        assert seen == []


class _Tokens:
    async def access_token(self) -> str:
        return "streamer-token"

    async def refresh_after_rejection(self, rejected: str) -> str:
        raise AssertionError("never asked")


async def _dropped_after_the_request(stream: anyio.abc.SocketStream, seen: list[bytes]) -> None:
    await read_request(stream, seen)  # the whole request came; no answer


async def _dropped_mid_answer(stream: anyio.abc.SocketStream, seen: list[bytes]) -> None:
    await read_request(stream, seen)
    await stream.send(b"HTTP/1.1 200 OK\r\nContent-Le")


async def _reset_after_the_request(stream: anyio.abc.SocketStream, seen: list[bytes]) -> None:
    await read_request(stream, seen)
    sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST


async def _silent(stream: anyio.abc.SocketStream, seen: list[bytes]) -> None:
    await read_request(stream, seen)
    await anyio.sleep_forever()


def _chain(exc: BaseException | None) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


class TestSecrets:
    @pytest.mark.parametrize(
        "answer",
        [b"SMTP ready\r\n\r\n", _head(b"Content-Length: 40") + b'{"co', b""],
        ids=["not-http", "cut-short", "no-answer"],
    )
    async def test_no_exception_in_a_failures_chain_shows_the_credentials(self, answer: bytes):
        """aiohttp's exceptions carry the request's headers in their repr: none of
        them may reach the caller, as cause or context."""
        async with serve(broken_first(answer)) as (url, _), client(url) as api:
            api._tokens = _Tokens()
            with pytest.raises((ApiUnavailable, BadResponse)) as info:
                await api.send_chat("7", "hello")
        chain = _chain(info.value)
        assert len(chain) >= 2  # the ApiError and what it stands for
        for exc in chain:
            for text in (repr(exc), str(exc), repr(vars(exc))):
                assert KEY not in text
                assert "streamer-token" not in text


class TestMaybeSent:
    """A request that may have reached Euler is never sent again for a call that is not
    idempotent (a chat message would be posted twice): whatever the transport, a
    connection that fails after the request was written is "maybe sent"."""

    @pytest.mark.parametrize(
        "handler",
        [_dropped_after_the_request, _dropped_mid_answer, _reset_after_the_request, _silent],
        ids=["closed", "closed-mid-answer", "reset", "silent"],
    )
    async def test_a_chat_whose_connection_fails_after_the_request_is_not_retried(
        self, handler: Handler
    ):
        retry = RetryPolicy(max_attempts=3, base_delay=0.0)
        async with (
            serve(handler) as (url, connections),
            client(url, retry=retry, timeout=0.2) as api,
        ):
            api._tokens = _Tokens()
            with pytest.raises(ApiUnavailable) as info:
                await api.send_chat("7", "hello")
            await settled()
        assert type(info.value) is ApiUnavailable
        assert [len(seen) for seen in connections] == [1]
        assert connections[0][0].startswith(b"POST /webcast/rooms/7/chat HTTP/1.1\r\n")

    async def test_an_idempotent_call_on_the_same_failure_is_retried(self):
        """The control: the same drop on a lookup is retried, up to the policy's tries."""
        retry = RetryPolicy(max_attempts=3, base_delay=0.0)
        async with (
            serve(_dropped_after_the_request) as (url, connections),
            client(url, retry=retry) as api,
        ):
            with pytest.raises(ApiUnavailable, match="closed the connection"):
                await api.user_id("host")
        assert sum(len(seen) for seen in connections) == 3

    async def test_a_chat_that_could_not_connect_is_retried(self):
        """Nothing listening: surely never sent, so even a chat goes again (and again
        fails): the connect error is "unsent" on both transports."""
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        await listener.aclose()
        tries: list[float] = []

        async def sleep(seconds: float) -> None:
            tries.append(seconds)
            await anyio.lowlevel.checkpoint()

        api = EulerClient(
            f"http://127.0.0.1:{port}",
            KEY,
            clock=FakeClock(),
            sleep=sleep,
            retry=RetryPolicy(max_attempts=3, base_delay=0.01),
            transport=transport_of(),
        )
        async with api:
            api._tokens = _Tokens()
            with pytest.raises(ApiUnavailable, match="could not reach"):
                await api.send_chat("7", "hello")
        assert len(tries) == 2
