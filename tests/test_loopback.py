"""The loopback listener behind the fake server and the OAuth redirect."""

from __future__ import annotations

import asyncio
import socket

from modbot.loopback import bind_loopback


async def test_accepted_connections_send_each_write_at_once() -> None:
    """asyncio turns Nagle's algorithm off only for sockets whose protocol says TCP:
    the listener's accepted sockets must, or an answer written as head and then body
    waits for the client's delayed ACK (40 ms) before its body leaves."""
    nodelay: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            nodelay.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    listener = bind_loopback()
    server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
    async with server:
        _, writer = await asyncio.open_connection(*listener.getsockname()[:2])
        assert await asyncio.wait_for(nodelay, 10) != 0
        writer.close()
