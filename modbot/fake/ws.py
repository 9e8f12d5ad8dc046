"""The fake's event WebSocket: Euler's connect checks and close codes, and a pump per socket.

A client connects at ``/`` with its API key and a streamer's ``uniqueId``; it gets the
room's info at once, then every bundle a test ``emit``s for that streamer, until a test
``drop``s it with a close code (or the streamer goes offline: 4005). Each socket has a
bounded queue; what cannot be delivered is counted in ``undelivered``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from starlette.websockets import WebSocket, WebSocketDisconnect

from modbot.fake import messages as msgs
from modbot.fake.faults import WS, Faults
from modbot.fake.world import World


@dataclass
class _Connection:
    unique_id: str
    send: MemoryObjectSendStream[tuple[str, Any]]
    closing: bool = False  # a close is queued: nothing pushed after it reaches the client


class Sockets:
    """The open event sockets, per streamer, and what was sent to them."""

    def __init__(self, world: World, faults: Faults, *, api_key: str) -> None:
        self.world = world
        self.faults = faults
        self.api_key = api_key
        self.ws_connects: list[dict[str, str]] = []  # each connect's query, without keys
        self.undelivered = 0
        self._connections: list[_Connection] = []
        self._connected = anyio.Event()

    def connections(self, unique_id: str | None = None) -> int:
        """How many event sockets are open (for one streamer, or all)."""
        return sum(
            1
            for c in self._connections
            if unique_id is None or c.unique_id.lower() == unique_id.lower()
        )

    async def wait_connected(self, unique_id: str, timeout: float = 10.0) -> None:
        """Wait until a client holds an event socket for ``unique_id``."""
        with anyio.fail_after(timeout):
            while not self.connections(unique_id):
                self._connected = anyio.Event()
                await self._connected.wait()

    def emit(self, unique_id: str, messages: list[dict[str, Any]]) -> int:
        """Send one bundle to every socket of the streamer; returns how many got it."""
        frame = msgs.bundle(messages, self.world.now_ms())
        return self._push(unique_id, ("bundle", frame))

    def emit_raw(self, unique_id: str, text: str) -> int:
        """Send a raw text frame (for malformed-frame tests)."""
        return self._push(unique_id, ("raw", text))

    def drop(self, unique_id: str, code: int, reason: str = "") -> int:
        """Close every socket of the streamer with ``code``."""
        return self._push(unique_id, ("close", (code, reason)))

    def _push(self, unique_id: str, item: tuple[str, Any]) -> int:
        sent = 0
        for conn in list(self._connections):
            if conn.unique_id.lower() == unique_id.lower():
                if conn.closing:
                    continue  # it would be lost on the way: not delivered
                try:
                    conn.send.send_nowait(item)
                    sent += 1
                except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    self.undelivered += 1
                conn.closing = item[0] == "close"
        if not sent and item[0] == "bundle":
            self.undelivered += 1
        return sent

    async def endpoint(self, websocket: WebSocket) -> None:
        """The WebSocket route: check the connect as Euler does, then pump until closed."""
        q = websocket.query_params
        self.ws_connects.append({k: v for k, v in q.items() if k not in ("apiKey", "jwtKey")})
        await websocket.accept()
        unique_id = q.get("uniqueId", "").removeprefix("@")
        if q.get("apiKey") != self.api_key:
            await websocket.close(4401, "Invalid auth")
            return
        if (
            q.get("features.bundleEvents") not in ("true", "1")
            or q.get("features.schemaVersion") != "v2"
        ):
            await websocket.close(
                4400,
                "Invalid options: the fake serves features.bundleEvents=true, schemaVersion=v2",
            )
            return
        fault = self.faults.take(WS)
        if fault is not None and fault.status:
            await websocket.close(fault.status, "Injected close")
            return
        streamer = self.world.find(unique_id)
        if streamer is None:
            await websocket.close(4400, "Invalid options: unknown uniqueId")
            return
        if not streamer.is_live:
            await websocket.close(4404, "Streamer is not live")
            return
        send, receive = anyio.create_memory_object_stream[tuple[str, Any]](10_000)
        conn = _Connection(streamer.unique_id, send)
        now_ms = self.world.now_ms()
        owner = streamer.owner if streamer.room_info_owner else None
        info = msgs.room_info(streamer.room_id, owner, now_ms)
        await websocket.send_text(json.dumps(msgs.bundle([info], now_ms)))
        self._connections.append(conn)
        self._connected.set()
        try:
            await _pump(websocket, receive)
        finally:
            self._connections.remove(conn)
            send.close()


async def _pump(websocket: WebSocket, receive: MemoryObjectReceiveStream[tuple[str, Any]]) -> None:
    async with anyio.create_task_group() as tg:

        async def watch_client() -> None:
            try:
                while True:
                    message = await websocket.receive()
                    if message["type"] == "websocket.disconnect":
                        break
            except (WebSocketDisconnect, RuntimeError):
                pass
            tg.cancel_scope.cancel()

        tg.start_soon(watch_client)
        async with receive:
            async for kind, value in receive:
                if kind == "close":
                    code, reason = value
                    await websocket.close(code, reason)
                    break
                text = json.dumps(value) if kind == "bundle" else str(value)
                await websocket.send_text(text)
        tg.cancel_scope.cancel()
