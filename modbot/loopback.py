"""Serve an ASGI app on a loopback port inside the caller's task group.

Used by the fake Euler server and by the OAuth redirect listener. The socket is bound
before the server starts, so the port is known (and connectable) at once; uvicorn's
own signal handlers are switched off, because the daemon owns the signals.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Generator

import anyio
import uvicorn
from anyio.abc import TaskStatus
from starlette.types import ASGIApp


class _Server(uvicorn.Server):
    """uvicorn without signal capture: shutdown comes from our cancel scopes."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind_loopback(port: int = 0, host: str = "127.0.0.1") -> socket.socket:
    """A listening TCP socket on a loopback address (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP by name: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on
    # sockets whose protocol says TCP, and accepted sockets take the listener's. With
    # protocol 0, an answer written in two parts (head, then body) had its second part
    # held until the client's delayed ACK, 40 ms later.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(512)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class LoopbackServer:
    """A running server: ``port`` and ``url`` are known as soon as it is constructed."""

    def __init__(self, app: ASGIApp, *, port: int = 0, host: str = "127.0.0.1") -> None:
        self.socket = bind_loopback(port, host)
        self.host = host
        self.port: int = self.socket.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            log_level="warning",
            lifespan="off",
            ws="websockets-sansio",
            ws_max_size=4 * 1024 * 1024,
            timeout_graceful_shutdown=1,
        )
        self._server = _Server(config)
        self.stopped = anyio.Event()

    @property
    def url(self) -> str:
        """``http://host:port``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """``ws://host:port``."""
        return "ws" + self.url.removeprefix("http")

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled or ``stop()``."""
        task_status.started()
        try:
            await self._server.serve(sockets=[self.socket])
        finally:
            self.socket.close()
            self.stopped.set()

    def stop(self) -> None:
        """Ask the server to finish its open requests and return."""
        self._server.should_exit = True


@contextlib.asynccontextmanager
async def serve(
    app: ASGIApp, *, port: int = 0, host: str = "127.0.0.1"
) -> AsyncIterator[LoopbackServer]:
    """Run ``app`` on loopback for the duration of the ``async with`` block."""
    server = LoopbackServer(app, port=port, host=host)
    async with anyio.create_task_group() as tg:
        await tg.start(server.run)
        try:
            yield server
        finally:
            server.stop()
            with anyio.move_on_after(5, shield=True):
                await server.stopped.wait()
            tg.cancel_scope.cancel()
