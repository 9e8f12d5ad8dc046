"""The watcher: live checks, one source per live streamer, and every close code's path."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from modbot.audit.handles import Handles
from modbot.audit.store import AuditStore
from modbot.euler.client import EulerClient
from modbot.euler.policy import CLOSE_CODES, Next
from modbot.euler.watcher import Arrival, StreamState, Watcher
from modbot.euler.ws import EulerWebSocket
from modbot.events import Event
from modbot.fake import messages as m
from modbot.fake.clock import FakeClock
from modbot.fake.server import FakeEuler
from modbot.loopback import LoopbackServer
from tests.helpers import until


@pytest.fixture
async def watching(
    fake: FakeEuler,
    fake_server: LoopbackServer,
    client: EulerClient,
    clock: FakeClock,
    tmp_path: Path,
):
    events: list[Event] = []
    sizes: list[int] = []  # events per hand-off
    async with AuditStore.open(tmp_path / "audit.db") as store:
        watcher = Watcher(
            client,
            ["host_handle"],
            lambda h: EulerWebSocket(fake_server.ws_url, unique_id=h, api_key=fake.api_key),
            cache=Handles(store),
            clock_now=clock.now,
            interval=0.2,
        )
        send, receive = anyio.create_memory_object_stream[Arrival](1000)

        async def collect() -> None:
            async with receive:
                async for arrival in receive:
                    events.extend(arrival.events)
                    sizes.append(len(arrival.events))

        async with anyio.create_task_group() as tg:
            tg.start_soon(collect)
            await tg.start(watcher.run, send)
            yield watcher, events, sizes
            tg.cancel_scope.cancel()


async def test_a_live_streamer_is_connected_and_events_flow(watching, fake: FakeEuler) -> None:
    watcher, events, _ = watching
    await fake.wait_connected("host_handle")
    room = fake.streamer("host_handle")
    fake.emit("host_handle", [m.chat(room.room_id, m.Viewer("v", "6801"), "hi", fake.now_ms())])
    await until(lambda: events)
    assert events[0].room_id == room.room_id
    assert watcher.statistics().live == 1
    # The handle was resolved once and cached.
    assert len(fake.calls_to("user_id")) == 1


async def test_a_raids_bundle_is_handed_on_in_slices_in_order(watching, fake: FakeEuler) -> None:
    """A bundle of 70 messages goes on as 32 + 32 + 6 events (the loop turns between
    them), in order; a quiet stream's bundle is one hand-off."""
    _, events, sizes = watching
    await fake.wait_connected("host_handle")
    room = fake.streamer("host_handle").room_id
    viewer = m.Viewer("v", "6801")
    fake.emit("host_handle", [m.chat(room, viewer, f"raid {i}", fake.now_ms()) for i in range(70)])
    fake.emit("host_handle", [m.chat(room, viewer, "quiet", fake.now_ms())])
    await until(lambda: len(events) == 71)
    assert sizes == [32, 32, 6, 1]
    assert [e.text for e in events] == [f"raid {i}" for i in range(70)] + ["quiet"]


async def test_a_bundle_that_ends_the_stream_is_handed_on_whole(watching, fake: FakeEuler) -> None:
    """The stream's end early in a bundle: the messages after it still go on (all 40),
    then the watcher goes back to waiting for the stream to be live."""
    watcher, events, _ = watching
    await fake.wait_connected("host_handle")
    room = fake.streamer("host_handle").room_id
    viewer = m.Viewer("v", "6801")
    bundle = [m.chat(room, viewer, f"late {i}", fake.now_ms()) for i in range(39)]
    bundle.insert(5, m.stream_end(room, fake.now_ms()))
    fake.emit("host_handle", bundle)
    await until(lambda: len(events) == 40)
    assert [e.kind for e in events].count("stream_end") == 1
    assert [e.text for e in events if e.kind == "comment"] == [f"late {i}" for i in range(39)]
    stream = watcher.streams["host_handle"]
    await until(lambda: stream.state is not StreamState.CONNECTED)


async def test_the_fake_does_not_count_a_bundle_sent_after_a_close_as_delivered(
    watching, fake: FakeEuler
) -> None:
    """A bundle queued behind a close never reaches the client: emit says 0 (the chaos
    test counts what it delivered by emit's answer)."""
    _, events, _ = watching
    await fake.wait_connected("host_handle")
    room = fake.streamer("host_handle").room_id
    viewer = m.Viewer("v", "6801")
    before = fake.undelivered
    assert fake.drop("host_handle", 4500) == 1
    assert fake.emit("host_handle", [m.chat(room, viewer, "lost", fake.now_ms())]) == 0
    assert fake.undelivered == before + 1
    await fake.wait_connected("host_handle")
    await until(lambda: fake.emit("host_handle", [m.chat(room, viewer, "after", fake.now_ms())]))
    await until(lambda: any(e.text == "after" for e in events))
    assert not any(e.text == "lost" for e in events)


async def test_offline_live_offline_live_is_followed(watching, fake: FakeEuler) -> None:
    watcher, events, _ = watching
    stream = watcher.streams["host_handle"]
    for _ in range(2):
        await fake.wait_connected("host_handle")
        fake.go_offline("host_handle")
        await until(
            lambda: stream.state is StreamState.WATCHING and not fake.connections("host_handle")
        )
        await anyio.sleep(0.5)  # live checks see it offline: no connection attempt
        assert fake.connections("host_handle") == 0
        fake.go_live("host_handle")
    await fake.wait_connected("host_handle")
    assert stream.connections == 3
    assert [e.kind for e in events].count("stream_end") == 2


@pytest.mark.parametrize("code", sorted(CLOSE_CODES))
async def test_every_close_code_takes_its_documented_path(
    watching, fake: FakeEuler, code: int
) -> None:
    watcher, _, _ = watching
    stream = watcher.streams["host_handle"]
    await fake.wait_connected("host_handle")
    await until(lambda: stream.state is StreamState.CONNECTED)
    fake.drop("host_handle", code)
    nxt, _ = CLOSE_CODES[code]
    if nxt is Next.STOP:
        await until(lambda: stream.state is StreamState.STOPPED)
        assert stream.why
        await anyio.sleep(0.5)
        assert fake.connections("host_handle") == 0  # never retried
    else:
        # Reconnected: at once, after a backoff, or after a live check (still live).
        await until(lambda: stream.connections == 2 and fake.connections("host_handle") == 1)
