"""The Euler WebSocket client against the fake server's WebSocket."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from modbot.errors import SourceClosed
from modbot.euler.ws import EulerWebSocket, ws_address
from modbot.fake import messages as msgs
from modbot.fake.server import FakeEuler
from modbot.loopback import LoopbackServer

VIEWER = msgs.Viewer(unique_id="viewer_1", user_id="6812345678901234568", follower=True)


def _socket(server: LoopbackServer, fake: FakeEuler, **kw: Any) -> EulerWebSocket:
    return EulerWebSocket(
        server.ws_url, unique_id=kw.pop("unique_id", "host_handle"), api_key=fake.api_key, **kw
    )


async def _collect(ws: EulerWebSocket, into: list[dict[str, Any]]) -> SourceClosed:
    try:
        async for bundle in ws.bundles():
            into.append(bundle)
    except SourceClosed as closed:
        return closed
    raise AssertionError("bundles() must end with SourceClosed")


class TestConnection:
    def test_address_sends_every_feature_explicitly(self):
        """The URL carries uniqueId, apiKey and each features.* option we rely on."""
        url = ws_address("wss://ws.example", unique_id="host", api_key="k")
        assert "uniqueId=host" in url
        assert "apiKey=k" in url
        assert "features.bundleEvents=true" in url
        assert "features.schemaVersion=v2" in url

    async def test_room_info_first_then_bundles_in_order(self, fake, fake_server):
        """The first bundle is roomInfo; emitted bundles follow in order; close ends the stream."""
        got: list[dict[str, Any]] = []
        ws = _socket(fake_server, fake)
        room = fake.streamer("host_handle").room_id
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                closed = await _collect(ws, got)
                assert closed.code == 4555

            tg.start_soon(run)
            await fake.wait_connected("host_handle")
            for i in range(5):
                fake.emit("host_handle", [msgs.chat(room, VIEWER, f"msg {i}", fake.now_ms())])
            fake.drop("host_handle", 4555, "max lifetime")
        assert got[0]["messages"][0]["type"] == "roomInfo"
        texts = [b["messages"][0]["data"]["comment"] for b in got[1:]]
        assert texts == [f"msg {i}" for i in range(5)]
        assert fake.ws_connects[0]["features.schemaVersion"] == "v2"
        assert "apiKey" not in fake.ws_connects[0]

    async def test_not_live_closes_4404(self, fake, fake_server):
        """Connecting to an offline streamer closes with 4404."""
        fake.add_streamer("sleepy")
        closed = await _collect(_socket(fake_server, fake, unique_id="sleepy"), [])
        assert closed.code == 4404

    async def test_bad_api_key_closes_4401(self, fake, fake_server):
        """A wrong API key closes with 4401."""
        ws = EulerWebSocket(fake_server.ws_url, unique_id="host_handle", api_key="wrong-key")
        closed = await _collect(ws, [])
        assert closed.code == 4401

    async def test_missing_features_close_4400(self, fake, fake_server):
        """Options the fake does not serve close with 4400 and say why."""
        ws = _socket(fake_server, fake, features={"schemaVersion": "v1"})
        closed = await _collect(ws, [])
        assert closed.code == 4400
        assert "schemaVersion" in closed.reason

    async def test_stream_end_sends_control_then_4005(self, fake, fake_server):
        """Going offline sends a control message (action 3) and closes with 4005."""
        got: list[dict[str, Any]] = []
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                closed = await _collect(_socket(fake_server, fake), got)
                assert closed.code == 4005

            tg.start_soon(run)
            await fake.wait_connected("host_handle")
            fake.go_offline("host_handle")
        assert got[-1]["messages"][0]["type"] == "WebcastControlMessage"
        assert got[-1]["messages"][0]["data"]["action"] == 3

    async def test_malformed_frames_are_counted_and_skipped(self, fake, fake_server):
        """Frames that are not JSON bundles are counted per kind and do not stop the stream."""
        got: list[dict[str, Any]] = []
        ws = _socket(fake_server, fake)
        room = fake.streamer("host_handle").room_id
        async with anyio.create_task_group() as tg:
            tg.start_soon(_collect, ws, got)
            await fake.wait_connected("host_handle")
            fake.emit_raw("host_handle", "{truncated")
            fake.emit_raw("host_handle", '{"timestamp": 1}')
            fake.emit_raw("host_handle", "{again")
            fake.emit("host_handle", [msgs.chat(room, VIEWER, "still here", fake.now_ms())])
            fake.drop("host_handle", 4006)
        assert ws.malformed == {
            "frame that is not JSON": 2,
            "JSON frame without a messages list": 1,
        }
        assert got[-1]["messages"][0]["data"]["comment"] == "still here"

    @pytest.mark.parametrize("code", [4429, 4500, 4556, 4557, 1011])
    async def test_injected_close_codes_reach_the_client(self, fake, fake_server, code):
        """A connection closed at once with a chosen code reports exactly that code."""
        fake.fail_next_connect(code)
        closed = await _collect(_socket(fake_server, fake), [])
        assert closed.code == code

    async def test_nothing_listening_is_api_unavailable(self):
        """No server: ApiUnavailable, not a hang."""
        from modbot.errors import ApiUnavailable
        from modbot.loopback import bind_loopback

        sock = bind_loopback()
        port = sock.getsockname()[1]
        sock.close()
        ws = EulerWebSocket(f"ws://127.0.0.1:{port}", unique_id="x", api_key="kkkk", open_timeout=2)
        with pytest.raises(ApiUnavailable):
            async for _ in ws.bundles():
                pass

    async def test_proxy_variables_do_not_reroute_the_websocket(
        self, fake, fake_server, monkeypatch
    ):
        """The same proxy policy as the API client's: straight to the host (review L11;
        websockets would follow HTTP_PROXY / HTTPS_PROXY / ALL_PROXY by default)."""
        from tests.euler.test_transport import answering, serve

        async with serve(answering(b"HTTP/1.1 502 No\r\n\r\n")) as (proxy, seen_by_proxy):
            for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
                monkeypatch.setenv(name, proxy)
            for name in ("NO_PROXY", "no_proxy"):
                monkeypatch.delenv(name, raising=False)
            fake.add_streamer("sleepy")
            closed = await _collect(_socket(fake_server, fake, unique_id="sleepy"), [])
        assert closed.code == 4404  # the fake answered, not the proxy
        assert seen_by_proxy == []
