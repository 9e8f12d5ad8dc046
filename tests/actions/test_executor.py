"""The executor: every decision audited before its call, calls made once, gates honoured."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import anyio
import pytest

from modbot.actions.executor import Executor, Work
from modbot.actions.timers import Timers
from modbot.audit.query import AuditFilter
from modbot.audit.store import AuditStore, NewEntry, Patience
from modbot.euler.client import EulerClient
from modbot.fake.clock import FakeClock
from modbot.fake.server import FakeEuler, Fault

from .util import decision, event, execute


async def entries(store: AuditStore) -> list[tuple[str, str, str | None]]:
    rows = await store.query(AuditFilter(limit=None, oldest_first=True))
    return [(r.action, r.status, r.error) for r in rows]


async def test_a_mute_is_recorded_then_called_then_done(
    executor: Executor, store: AuditStore, fake: FakeEuler, clock: FakeClock
) -> None:
    """The intent row exists before the call; the call reaches the fake once; status done."""
    seen_pending: list[int] = []

    def check_pending(route: str, token: str | None) -> None:
        del token
        if route == "mute":  # another connection sees the committed intent
            with sqlite3.connect(store.path) as db:
                row = db.execute("SELECT count(*) FROM actions WHERE status = 'pending'")
                seen_pending.append(row.fetchone()[0])

    fake.request_hooks.append(check_pending)
    e = event(fake, clock)
    await execute(executor, Work(e, [decision(e, "mute", duration_s=300.0)]))
    calls = fake.calls_to("mute", ok_only=True)
    assert len(calls) == 1
    assert calls[0].params["duration"] == "300"
    assert calls[0].params["comment_msg_id"] == e.msg_id
    assert seen_pending[-1] == 1  # the intent was committed before the call went out
    (row,) = await store.query(AuditFilter())
    assert (row.action, row.status, row.msg_id, row.msg_text) == ("mute", "done", e.msg_id, e.text)
    assert row.params["api_duration"] == 300


async def test_a_long_mute_is_permanent_plus_a_timer_that_survives_restart(
    client: EulerClient, store: AuditStore, fake: FakeEuler, clock: FakeClock, tmp_path
) -> None:
    e = event(fake, clock)
    executor = Executor(client, store, clock)
    await execute(executor, Work(e, [decision(e, "mute", duration_s=600.0)]))
    assert fake.calls_to("mute")[0].params["duration"] == "-1"
    room = fake.streamer("host_handle")
    assert room.muted(e.user.user_id, fake.now())  # type: ignore[union-attr]
    (timer,) = await store.pending_timers()
    assert timer.kind == "unmute"
    # A restart: a new store on the same file, 11 minutes later.
    await store.close()
    clock.advance(660)
    async with AuditStore.open(store.path) as again:
        timers = Timers(Executor(client, again, clock), again, clock)
        assert await timers.fire_due() == 1
        assert not room.muted(e.user.user_id, fake.now())  # type: ignore[union-attr]
        assert await again.pending_timers() == []
        rows = await again.query(AuditFilter(limit=None, oldest_first=True))
        assert [(r.action, r.status) for r in rows] == [("mute", "done"), ("unmute", "done")]
        assert rows[1].params["expiry_of"] == rows[0].id
        assert "reversed_at_expiry" in rows[0].params


async def test_a_timer_retries_when_the_api_is_down(
    executor: Executor, store: AuditStore, fake: FakeEuler, clock: FakeClock
) -> None:
    e = event(fake, clock)
    await execute(executor, Work(e, [decision(e, "comments", enabled=False, for_s=120.0)]))
    assert not fake.streamer("host_handle").comments_enabled
    clock.advance(121)
    fake.inject("toggle_comments", Fault(status=503, times=20))
    timers = Timers(executor, store, clock)
    await timers.fire_due()
    (timer,) = await store.pending_timers()  # still pending, due a minute later
    assert timer.due > clock.now().timestamp()
    fake.clear_faults()
    clock.advance(61)
    assert await timers.fire_due() == 1
    assert fake.streamer("host_handle").comments_enabled


async def test_the_same_mute_is_not_sent_twice_in_a_burst(
    executor: Executor, store: AuditStore, fake: FakeEuler, clock: FakeClock
) -> None:
    first, second = event(fake, clock), event(fake, clock)
    clock.advance(1)
    longer = event(fake, clock)
    await execute(
        executor,
        Work(first, [decision(first, "mute", duration_s=60.0)]),
        Work(second, [decision(second, "mute", duration_s=60.0)]),
        Work(longer, [decision(longer, "mute", duration_s=300.0)]),
    )
    assert sorted(c.params["duration"] for c in fake.calls_to("mute")) == ["300", "60"]
    statuses = [s for _, s, _ in await entries(store)]
    assert statuses == ["done", "skipped", "done"]


async def test_replies_are_paced_per_room_and_comments_off_not_repeated(
    executor: Executor, store: AuditStore, fake: FakeEuler, clock: FakeClock
) -> None:
    a, b = event(fake, clock, 1), event(fake, clock, 2)
    off: dict[str, Any] = {"enabled": False, "for_s": 60.0}
    await execute(
        executor,
        Work(a, [decision(a, "reply", text="one"), decision(a, "comments", **off)]),
        Work(b, [decision(b, "reply", text="two"), decision(b, "comments", **off)]),
    )
    assert fake.streamer("host_handle").chat == ["one"]
    assert len(fake.calls_to("toggle_comments")) == 1
    rows = await store.query(AuditFilter(status="skipped", limit=None))
    assert sorted(r.action for r in rows) == ["comments", "reply"]
    clock.advance(3.5)
    c = event(fake, clock, 3)
    await execute(executor, Work(c, [decision(c, "reply", text="three")]))
    assert fake.streamer("host_handle").chat == ["one", "three"]


async def test_an_action_without_its_scope_only_observes(
    client: EulerClient, store: AuditStore, fake: FakeEuler, clock: FakeClock
) -> None:
    executor = Executor(client, store, clock, granted_scopes=frozenset({"webcast:mute"}))
    e = event(fake, clock)
    await execute(executor, Work(e, [decision(e, "ban"), decision(e, "mute", duration_s=5.0)]))
    assert fake.calls_to("ban") == []
    assert len(fake.calls_to("mute")) == 1
    rows = sorted(await store.query(AuditFilter(limit=None)), key=lambda r: r.action)
    assert [(r.action, r.mode, r.status) for r in rows] == [
        ("ban", "observe", "observed"),
        ("mute", "enforce", "done"),
    ]
    assert "no scope webcast:ban" in rows[0].detail


async def test_a_call_waits_only_for_its_own_intent_to_be_written(
    client: EulerClient,
    store: AuditStore,
    fake: FakeEuler,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The write before the calls holds the intents that call the API; the observed
    and skipped ones of the same batch are written by the executor's own writer, and
    all of them are in the audit log when it stops."""
    writes: list[tuple[str, list[str]]] = []
    add, record = store.add, store.record

    async def spy_add(entries: Sequence[NewEntry], now: datetime) -> list[int | None]:
        writes.append(("add", [e.status for e in entries]))
        return await add(entries, now)

    async def spy_record(entries: Sequence[NewEntry], now: datetime) -> None:
        writes.append(("record", [e.status for e in entries]))
        await record(entries, now)

    monkeypatch.setattr(store, "add", spy_add)
    monkeypatch.setattr(store, "record", spy_record)
    executor = Executor(client, store, clock)
    work = []
    for n in range(1, 31):
        e = event(fake, clock, n)
        decisions = [decision(e, "ban", rule="watch", mode="observe")]
        if n % 10 == 0:
            decisions.append(decision(e, "mute", duration_s=5.0))
        work.append(Work(e, decisions))
    await execute(executor, *work)
    assert len(fake.calls_to("mute")) == 3
    assert {status for kind, statuses in writes if kind == "add" for status in statuses} == {
        "pending"
    }
    recorded = [s for kind, statuses in writes if kind == "record" for s in statuses]
    assert recorded == ["observed"] * 30
    assert await store.count("observed") == 30
    assert await store.count("done") == 3
    assert await store.count() == 33


async def test_a_batch_does_not_wait_for_the_write_of_the_one_before(
    client: EulerClient,
    store: AuditStore,
    fake: FakeEuler,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While one batch's intents are being written, the next batch is taken in, written
    and called; the first batch's call follows once its write is done."""
    add = store.add
    first_write_held = anyio.Event()
    release = anyio.Event()

    async def held_add(entries: Sequence[NewEntry], now: datetime) -> list[int | None]:
        if not first_write_held.is_set():
            first_write_held.set()
            await release.wait()
        return await add(entries, now)

    monkeypatch.setattr(store, "add", held_add)
    mute_arrived = anyio.Event()

    def on_request(route: str, _token: str | None) -> None:
        if route == "mute":
            mute_arrived.set()

    fake.request_hooks.append(on_request)
    executor = Executor(client, store, clock)
    one, two = event(fake, clock, 1), event(fake, clock, 2)
    send, receive = anyio.create_memory_object_stream[list[Work]](10)
    async with anyio.create_task_group() as tg:
        tg.start_soon(executor.run, receive)
        await send.send([Work(one, [decision(one, "mute", duration_s=5.0)])])
        await first_write_held.wait()
        await send.send([Work(two, [decision(two, "mute", duration_s=5.0)])])
        with anyio.fail_after(10):
            await mute_arrived.wait()  # while the first batch's write is still held
        release.set()
        await send.aclose()
    assert one.user is not None
    assert two.user is not None
    users = [c.params["user_id"] for c in fake.calls_to("mute")]
    assert users == [two.user.user_id, one.user.user_id]
    assert await store.count("done") == 2


async def test_more_calls_in_a_batch_than_may_be_in_flight(
    client: EulerClient, store: AuditStore, fake: FakeEuler, clock: FakeClock
) -> None:
    """A batch with more calls than in-flight slots is written and called in parts."""
    executor = Executor(client, store, clock, max_in_flight=2)
    work = []
    for n in range(1, 8):
        e = event(fake, clock, n)
        work.append(Work(e, [decision(e, "mute", duration_s=5.0)]))
    with anyio.fail_after(30):
        await execute(executor, *work)
    assert len(fake.calls_to("mute")) == 7
    assert await store.count("done") == 7
    assert executor.statistics().in_flight == 0


async def test_dry_run_records_and_calls_nothing(
    client: EulerClient, store: AuditStore, fake: FakeEuler, clock: FakeClock
) -> None:
    executor = Executor(client, store, clock, dry_run=True)
    e = event(fake, clock)
    await execute(executor, Work(e, [decision(e, "ban"), decision(e, "reply", text="hi")]))
    assert fake.calls_to("ban", "chat") == []
    assert [s for _, s, _ in await entries(store)] == ["observed", "observed"]


async def test_observe_suppressed_and_log_decisions_are_recorded_without_calls(
    executor: Executor, store: AuditStore, fake: FakeEuler, clock: FakeClock
) -> None:
    e = event(fake, clock)
    await execute(
        executor,
        Work(
            e,
            [
                decision(e, "ban", mode="observe"),
                decision(e, "mute", duration_s=60.0, suppressed="cooldown"),
                decision(e, "log"),
            ],
        ),
    )
    assert fake.calls_to("ban", "mute") == []
    rows = await store.query(AuditFilter(limit=None, oldest_first=True))
    assert [(r.action, r.status) for r in rows] == [
        ("ban", "observed"),
        ("mute", "skipped"),
        ("log", "done"),
    ]
    assert rows[1].detail.endswith("not done: cooldown")


async def test_a_failed_call_is_recorded_with_its_error(
    executor: Executor, store: AuditStore, fake: FakeEuler, clock: FakeClock
) -> None:
    fake.inject("ban", Fault(status=403, body={"code": 403, "message": "plan does not allow"}))
    e = event(fake, clock)
    await execute(executor, Work(e, [decision(e, "ban")]))
    ((action, status, error),) = await entries(store)
    assert (action, status) == ("ban", "failed")
    assert error


async def test_a_rate_limited_route_pauses_alone(
    executor: Executor, store: AuditStore, fake: FakeEuler, clock: FakeClock
) -> None:
    """429s on mute pause mutes; bans go out meanwhile; the mute is done after the pause."""
    fake.inject("mute", Fault(status=429, times=6, retry_after=0.2))
    a, b = event(fake, clock, 1), event(fake, clock, 2)
    with anyio.fail_after(20):
        await execute(
            executor,
            Work(a, [decision(a, "mute", duration_s=60.0)]),
            Work(b, [decision(b, "ban")]),
        )
    assert len(fake.calls_to("ban", ok_only=True)) == 1
    assert len(fake.calls_to("mute", ok_only=True)) == 1
    assert [s for _, s, _ in await entries(store)] == ["done", "done"]
    ban_at = fake.calls_to("ban")[0].at
    assert ban_at <= fake.calls_to("mute", ok_only=True)[0].at


async def test_no_call_goes_out_before_its_intent_is_written_on_a_full_disk(
    executor: Executor, store: AuditStore, fake: FakeEuler, clock: FakeClock
) -> None:
    """The disk fills before a raid's intents can be written: the executor waits (no
    call made meanwhile), and once there is room every ban goes out once and is done."""
    calls_while_full: list[int] = []

    async def sleep(seconds: float) -> None:
        del seconds
        calls_while_full.append(len(fake.calls))
        if len(calls_while_full) == 3:
            await store.db.execute("PRAGMA max_page_count = 1073741823")

    store.patience = Patience(sleep=sleep)
    ((pages,),) = await store.db.execute_fetchall("PRAGMA page_count")
    await store.db.execute(f"PRAGMA max_page_count = {pages}")
    raid = [event(fake, clock, n, text="x" * 1_500) for n in range(1, 31)]
    with anyio.fail_after(20):
        await execute(executor, *(Work(e, [decision(e, "ban")]) for e in raid))
    assert calls_while_full == [0, 0, 0]
    assert len(fake.calls_to("ban", ok_only=True)) == 30
    assert {c.params["tiktok_user_id"] for c in fake.calls_to("ban")} == {
        e.user.user_id for e in raid if e.user
    }
    assert [s for _, s, _ in await entries(store)] == ["done"] * 30


async def test_a_redelivered_message_is_not_acted_on_twice(
    executor: Executor, store: AuditStore, fake: FakeEuler, clock: FakeClock
) -> None:
    e = event(fake, clock)
    await execute(executor, Work(e, [decision(e, "ban")]))
    executor.dedup_window = 0  # not the burst guard: the audit log's unique key
    await execute(executor, Work(e, [decision(e, "ban")]))
    assert len(fake.calls_to("ban")) == 1
    assert await store.count() == 1


async def test_pending_intents_left_by_a_crash_are_resolved(
    executor: Executor, store: AuditStore, fake: FakeEuler, clock: FakeClock
) -> None:
    from modbot.actions.plan import intent_for

    fresh, old_reply = event(fake, clock, 1), event(fake, clock, 2)
    await store.add(
        [
            intent_for(decision(fresh, "ban"), fresh).entry(),
            intent_for(decision(old_reply, "reply", text="late"), old_reply).entry(),
        ],
        clock.now(),
    )
    clock.advance(120)  # the reply is now too old to send; the ban is not
    assert await executor.recover() == (1, 1)
    rows = await store.query(AuditFilter(limit=None, oldest_first=True))
    assert [(r.action, r.status) for r in rows] == [("ban", "done"), ("reply", "failed")]
    assert rows[0].params["recovered_after_restart"] is True
    assert "interrupted by a restart" in (rows[1].error or "")
    assert len(fake.calls_to("ban")) == 1
    assert fake.calls_to("chat") == []
    assert await store.count("pending") == 0


async def test_a_pending_row_another_live_process_is_calling_is_left_to_it(
    executor: Executor, store: AuditStore, fake: FakeEuler, clock: FakeClock
) -> None:
    """A `modbot ban` by hand in flight while the daemon restarts: the daemon's recovery
    must not call it too (it would be done twice); a row whose writer died is replayed."""
    import socket
    import subprocess
    import sys
    from dataclasses import replace

    from modbot.actions.plan import intent_for

    reading = [sys.executable, "-c", "import sys; sys.stdin.read()"]
    async with await anyio.open_process(reading, stdin=subprocess.PIPE) as alive:
        gone = await anyio.open_process([sys.executable, "-c", "pass"])
        await gone.wait()
        host = socket.gethostname()[:100]
        rows = []
        for n, pid in ((1, alive.pid), (2, gone.pid)):
            e = event(fake, clock, n)
            row = intent_for(decision(e, "ban"), e).entry()
            rows.append(replace(row, params={**row.params, "pid": pid, "host": host}))
        first, second = await store.add(rows, clock.now())
        assert first is not None
        assert second is not None
        assert await executor.recover() == (1, 0)
        assert (await store.get(first)).status == "pending"  # type: ignore[union-attr]
        assert (await store.get(second)).status == "done"  # type: ignore[union-attr]
        assert len(fake.calls_to("ban")) == 1
        assert alive.stdin is not None
        await alive.stdin.aclose()


async def test_a_call_made_at_once_names_its_process_in_the_row(
    executor: Executor, store: AuditStore, fake: FakeEuler, clock: FakeClock
) -> None:
    import os

    from modbot.actions.plan import intent_for

    e = event(fake, clock)
    entry, _ = await executor.carry_out(intent_for(decision(e, "ban"), e))
    assert entry.status == "done"
    assert entry.params["pid"] == os.getpid()
