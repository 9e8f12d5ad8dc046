"""The audit store: schema versions, one row per intent, filters, safe text in every view."""

from __future__ import annotations

import json
import random
import sqlite3
import stat
from datetime import timedelta
from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from modbot.audit import store as store_module
from modbot.audit import view
from modbot.audit.connection import Turns
from modbot.audit.handles import Handles
from modbot.audit.query import AuditFilter, FilterError, parse_when
from modbot.audit.schema import MIGRATIONS, VERSION
from modbot.audit.store import AuditStore, NewEntry, Patience
from modbot.errors import AuditError, ConfigError
from modbot.fake.clock import FakeClock


@pytest.fixture(
    params=[
        pytest.param(True, id="returning"),
        pytest.param(False, id="change-count"),
    ]
)
def returning(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Both ways a batch learns its ids: INSERT ... RETURNING (SQLite 3.35+), and the
    connection's change count with the connection held alone (older SQLite)."""
    if request.param and sqlite3.sqlite_version_info < (3, 35, 0):
        pytest.skip("this SQLite has no RETURNING")
    monkeypatch.setattr(store_module, "RETURNING", request.param)
    return bool(request.param)


def new(clock: FakeClock, **fields: object) -> NewEntry:
    base: dict[str, object] = {
        "ts": clock.now(),
        "streamer": "host",
        "rule": "r",
        "action": "mute",
        "mode": "enforce",
        "status": "pending",
        "room_id": "1",
        "user_id": "68001",
        "unique_id": "viewer_1",
        "msg_id": "",
    }
    base.update(fields)
    return NewEntry(**base)  # type: ignore[arg-type]


async def test_a_new_database_is_private_and_at_the_current_version(tmp_path: Path) -> None:
    path = tmp_path / "state" / "audit.db"
    async with AuditStore.open(path):
        pass
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {VERSION + 1}")
    with pytest.raises(ConfigError, match="newer than this modbot knows"):
        async with AuditStore.open(path):
            pass


async def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(AuditError, match="cannot be used"):
        async with AuditStore.open(path):
            pass


@pytest.mark.usefixtures("returning")
async def test_one_message_rule_and_action_is_recorded_once(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with AuditStore.open(tmp_path / "a.db") as store:
        ids = await store.add(
            [
                new(clock, msg_id="7"),
                new(clock, msg_id="7"),
                new(clock, msg_id="7", action="reply"),
            ],
            clock.now(),
        )
        assert ids[0] is not None
        assert ids[1] is None
        assert ids[2] is not None
        # Rows without a message id (undo, expiry) are never merged.
        assert None not in await store.add([new(clock), new(clock)], clock.now())


@pytest.mark.usefixtures("returning")
async def test_a_batch_gets_the_ids_of_its_rows(tmp_path: Path, clock: FakeClock) -> None:
    """The one-statement batch path returns each row's own id, in order."""
    async with AuditStore.open(tmp_path / "a.db") as store:
        await store.add([new(clock, msg_id="1"), new(clock, msg_id="2")], clock.now())
        ids = await store.add(
            [new(clock, msg_id=str(n), rule=f"r{n}") for n in range(3, 9)], clock.now()
        )
        for msg_id, entry_id in zip(range(3, 9), ids, strict=True):
            assert entry_id is not None
            entry = await store.get(entry_id)
            assert entry is not None
            assert (entry.msg_id, entry.rule) == (str(msg_id), f"r{msg_id}")
        # A duplicate in a batch is left out and loses nothing else.
        again = await store.add(
            [new(clock, msg_id="9"), new(clock, msg_id="3", rule="r3")], clock.now()
        )
        assert again[0] is not None
        assert again[1] is None
        assert await store.count() == 9


@pytest.mark.usefixtures("returning")
async def test_a_large_batch_with_duplicates_maps_every_row(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Over several statements, with duplicates of stored rows, of earlier rows in the
    batch and rows without a message id: each row gets its own id or None."""
    rng = random.Random(3)
    async with AuditStore.open(tmp_path / "a.db") as store:
        await store.add([new(clock, msg_id=str(n)) for n in range(0, 1300, 7)], clock.now())
        stored = await store.count()
        batch = [
            new(clock, msg_id=str(rng.randrange(1300)) if rng.random() < 0.9 else "")
            for _ in range(1300)
        ]
        ids = await store.add(batch, clock.now())
        seen = {str(n) for n in range(0, 1300, 7)}
        for entry, entry_id in zip(batch, ids, strict=True):
            if entry.msg_id and entry.msg_id in seen:
                assert entry_id is None
                continue
            if entry.msg_id:
                seen.add(entry.msg_id)
            assert entry_id is not None
            got = await store.get(entry_id)
            assert got is not None
            assert got.msg_id == entry.msg_id
        assert await store.count() == stored + sum(1 for i in ids if i is not None)
        assert len({i for i in ids if i is not None}) == sum(1 for i in ids if i is not None)


async def test_record_writes_every_row_once_without_ids(tmp_path: Path, clock: FakeClock) -> None:
    """The writes no call waits for: several statements' worth, duplicates of stored rows
    and of earlier rows left out, rows without a message id all kept, undo links made."""
    async with AuditStore.open(tmp_path / "a.db") as store:
        await store.record([], clock.now())
        await store.record([new(clock, msg_id="5", status="observed")], clock.now())
        batch = [new(clock, msg_id=str(n % 700), status="observed") for n in range(1_200)]
        batch += [new(clock, status="skipped"), new(clock, status="skipped")]
        await store.record(batch, clock.now())
        assert await store.count("observed") == 700
        assert await store.count("skipped") == 2
        rows = await store.query(AuditFilter(limit=None, oldest_first=True))
        assert [r.msg_id for r in rows[:3]] == ["5", "0", "1"]
        # An entry that undoes another links it, as add() does.
        await store.record([new(clock, action="unmute", undo_of=rows[0].id)], clock.now())
        original = await store.get(rows[0].id)
        assert original is not None
        assert original.undone_by is not None


async def test_entries_reads_whole_rows_a_clause_chooses(tmp_path: Path, clock: FakeClock) -> None:
    """The reader of rows by an SQL clause (humans first asks it which moderators acted):
    whole rows, params decoded, in the clause's order, only those it chooses."""
    async with AuditStore.open(tmp_path / "a.db") as store:
        await store.record(
            [
                new(clock, rule="moderator", status="done", params={"operator": "mod"}),
                new(clock, rule="r", status="done"),
                new(clock, rule="moderator", status="done", action="unmute", msg_id="2"),
            ],
            clock.now(),
        )
        rows = await store.entries("WHERE rule = ? ORDER BY ts DESC, id DESC", ["moderator"])
        assert [(r.action, r.params) for r in rows] == [
            ("unmute", {}),
            ("mute", {"operator": "mod"}),
        ]
        assert rows == [await store.get(r.id) for r in rows]


async def test_finish_sets_status_error_params_and_timers(tmp_path: Path, clock: FakeClock) -> None:
    async with AuditStore.open(tmp_path / "a.db") as store:
        (entry_id,) = await store.add([new(clock, params={"duration_s": 600})], clock.now())
        assert entry_id is not None
        await store.finish(
            [(entry_id, "done", None)],
            clock.now(),
            timers=[(clock.now().timestamp() + 600, "unmute", "host", "1", "68001", entry_id)],
            params={entry_id: {"api_duration": -1}},
        )
        entry = await store.get(entry_id)
        assert entry is not None
        assert entry.status == "done"
        assert entry.params == {"duration_s": 600, "api_duration": -1}
        assert await store.due_timers(clock.now().timestamp()) == []
        assert len(await store.due_timers(clock.now().timestamp() + 601)) == 1


async def test_finish_sets_each_row_of_a_large_batch(tmp_path: Path, clock: FakeClock) -> None:
    """Outcomes and timers over several statements each reach their own row."""
    async with AuditStore.open(tmp_path / "a.db") as store:
        ids = [i for i in await store.add([new(clock) for _ in range(1200)], clock.now()) if i]
        due = clock.now().timestamp() + 60
        await store.finish(
            [(i, "done" if i % 2 else "failed", None if i % 2 else f"e{i}") for i in ids],
            clock.now(),
            timers=[(due + i, "unmute", "host", "1", str(i), i) for i in ids],
        )
        for entry in await store.query(AuditFilter(limit=None)):
            assert entry.status == ("done" if entry.id % 2 else "failed")
            assert entry.error == (None if entry.id % 2 else f"e{entry.id}")
        timers = await store.pending_timers()
        assert [(t.action_id, t.user_id) for t in timers] == [(i, str(i)) for i in ids]


@pytest.mark.usefixtures("returning")
async def test_finish_of_outcomes_alone_and_single_writes_count_their_rows(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Statuses alone go in one statement; the single writes (timers, params, handles)
    say what they changed, also while a batch is written at the same time."""
    async with AuditStore.open(tmp_path / "a.db") as store:
        ids = [
            i
            for i in await store.add([new(clock, msg_id=str(n)) for n in range(4)], clock.now())
            if i
        ]
        await store.finish([(i, "done", None) for i in ids[:3]], clock.now())
        assert [
            e.status for e in await store.query(AuditFilter(limit=None, oldest_first=True))
        ] == [
            "done",
            "done",
            "done",
            "pending",
        ]
        await store.finish(
            [(ids[3], "done", None)],
            clock.now(),
            timers=[(clock.now().timestamp() + 60, "unmute", "host", "1", "68001", ids[3])],
        )
        (timer,) = await store.pending_timers()
        async with anyio.create_task_group() as tg:
            # A batch on its way to SQLite must not count as the timer's change.
            tg.start_soon(store.add, [new(clock, msg_id=f"m{n}") for n in range(50)], clock.now())
            for _ in range(5):
                await anyio.lowlevel.checkpoint()
            assert await store.end_timer(timer.id, "done") is True
        assert await store.end_timer(timer.id, "done") is False  # no longer pending
        await store.patch_params(ids[0], {"note": "x"}, clock.now())
        first = await store.get(ids[0])
        assert first is not None
        assert first.params.get("note") == "x"
        handles = Handles(store)
        await handles.save("Viewer_1", "68001", clock.now())
        await handles.save("viewer_1", "68002", clock.now())
        assert await handles.user_id("VIEWER_1") == "68002"
        assert await store.count() == 54


async def test_a_status_and_its_timer_are_written_together(
    tmp_path: Path, clock: FakeClock
) -> None:
    """One statement finishes many entries; if one entry's timer cannot be written,
    nothing of that statement is (no status without its unmute, no unmute without it)."""
    async with AuditStore.open(tmp_path / "a.db") as store:
        ids = [i for i in await store.add([new(clock), new(clock)], clock.now()) if i]
        due = clock.now().timestamp() + 600
        with pytest.raises(sqlite3.IntegrityError):
            await store.finish(
                [(ids[0], "done", None), (ids[1], "done", None), (999, "done", None)],
                clock.now(),
                timers=[
                    (due, "unmute", "host", "1", "68001", ids[0]),
                    (due, "unmute", "host", "1", "68002", 999),  # no such entry
                ],
            )
        assert [e.status for e in await store.query(AuditFilter(limit=None))] == ["pending"] * 2
        assert await store.pending_timers() == []
        with pytest.raises(ValueError, match="at most one"):
            await store.finish(
                [(ids[0], "done", None)],
                clock.now(),
                timers=[(due, "unmute", "host", "1", "68001", ids[0])] * 2,
            )
        with pytest.raises(ValueError, match="not finished here"):
            await store.finish(
                [(ids[0], "done", None)],
                clock.now(),
                timers=[(due, "unmute", "host", "1", "68002", ids[1])],
            )
        await store.finish(
            [(ids[0], "done", None), (ids[1], "failed", "boom")],
            clock.now(),
            timers=[(due, "unmute", "host", "1", "68001", ids[0])],
            params={ids[1]: {"note": "x"}},
        )
        first, second = await store.query(AuditFilter(limit=None, oldest_first=True))
        assert (first.status, second.status, second.error) == ("done", "failed", "boom")
        assert second.params.get("note") == "x"
        assert [t.action_id for t in await store.pending_timers()] == [ids[0]]


async def test_a_database_of_the_first_schema_is_upgraded_in_place(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "audit.db"
    with sqlite3.connect(path) as db:
        db.executescript(MIGRATIONS[0])
        db.execute("PRAGMA user_version = 1")
        db.execute(
            "INSERT INTO actions (ts, streamer, rule, action, mode, status, updated)"
            " VALUES ('2026-11-01T00:00:00Z', 'host', 'r', 'mute', 'enforce', 'pending', '')"
        )
    async with AuditStore.open(path) as store:
        (entry,) = await store.pending()
        await store.finish(
            [(entry.id, "done", None)],
            clock.now(),
            timers=[(clock.now().timestamp() + 60, "unmute", "host", "1", "68001", entry.id)],
        )
        assert await store.pending() == []
        assert len(await store.pending_timers()) == 1
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == VERSION


async def test_a_transaction_waits_for_statements_on_their_way_and_holds_back_new_ones() -> None:
    """Statements that stand alone share the connection's queue; a transaction (or a
    change count) needs it to itself: it starts once those on their way are done, and
    statements that come meanwhile wait until it ends."""
    turns = Turns()
    order: list[str] = []
    release_first = anyio.Event()

    async def shared(name: str, hold: anyio.Event | None = None) -> None:
        async with turns.shared():
            order.append(f"{name} in")
            if hold is not None:
                await hold.wait()
            order.append(f"{name} out")

    async def alone() -> None:
        async with turns.alone():
            order.append("tx in")
            await anyio.sleep(0.01)
            order.append("tx out")

    async with anyio.create_task_group() as tg:
        tg.start_soon(shared, "first", release_first)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(shared, "second")  # shares the queue with the first
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(alone)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(shared, "third")  # came while the transaction waited
        await anyio.wait_all_tasks_blocked()
        assert order == ["first in", "second in", "second out"]
        release_first.set()
    assert order == [
        "first in",
        "second in",
        "second out",
        "first out",
        "tx in",
        "tx out",
        "third in",
        "third out",
    ]


async def fill_the_disk(store: AuditStore) -> None:
    """The database may not grow past the pages it has: what a full disk does to it."""
    ((pages,),) = await store.db.execute_fetchall("PRAGMA page_count")
    await store.db.execute(f"PRAGMA max_page_count = {pages}")


async def free_the_disk(store: AuditStore) -> None:
    await store.db.execute("PRAGMA max_page_count = 1073741823")


async def test_writes_wait_out_a_full_disk_and_each_goes_in_once(
    tmp_path: Path, clock: FakeClock, returning: bool
) -> None:
    """With patience, a write that fails for want of space is tried again (1, 2, 4, 4 s)
    until it goes in: every intent once, every outcome and timer once, logged."""
    del returning
    waits: list[tuple[float, str | None]] = []

    async def sleep(seconds: float) -> None:
        waits.append((seconds, store.failing))
        if len(waits) == 4:
            await free_the_disk(store)

    patience = Patience(first=1.0, longest=4.0, sleep=sleep)
    async with AuditStore.open(tmp_path / "a.db", patience=patience) as store:
        await fill_the_disk(store)
        rows = [new(clock, msg_id=str(i), msg_text="x" * 1_500) for i in range(40)]
        with capture_logs() as logs:
            ids = await store.add(rows, clock.now())
        assert [w for w, _ in waits] == [1.0, 2.0, 4.0, 4.0]
        assert all(failing and "full" in failing for _, failing in waits)
        assert store.failing is None
        assert [x["event"] for x in logs] == ["audit.write_failed"] * 4 + ["audit.write_resumed"]
        assert logs[-1]["waited"] == 11.0
        assert None not in ids
        assert await store.count() == 40

        waits.clear()
        await fill_the_disk(store)
        done = [(i, "done", None) for i in ids if i is not None]
        patches = {i: {"note": "y" * 3_000} for i in ids if i is not None}
        due = [(9e9, "unmute", "host", "1", "68001", ids[0] or 0)]
        await store.finish(done, clock.now(), timers=due, params=patches)
        assert len(waits) == 4
        assert await store.count("done") == 40
        assert len(await store.pending_timers()) == 1
        assert (await store.get(ids[0] or 0)).params["note"] == "y" * 3_000  # type: ignore[union-attr]


async def test_without_patience_a_full_disk_is_a_clear_error_and_writes_nothing(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with AuditStore.open(tmp_path / "a.db") as store:
        await fill_the_disk(store)
        rows = [new(clock, msg_id=str(i), msg_text="x" * 1_500) for i in range(40)]
        with pytest.raises(AuditError, match=r"cannot write to the audit database .*a\.db: .*full"):
            await store.add(rows, clock.now())
        assert await store.count() == 0


async def test_a_write_stops_waiting_when_told_to(tmp_path: Path, clock: FakeClock) -> None:
    """A shutdown that cannot wait for the disk: the waiting write ends with the error
    at its next try, and writes nothing."""

    async def sleep(seconds: float) -> None:
        del seconds
        store.stop_waiting()

    async with AuditStore.open(tmp_path / "a.db", patience=Patience(sleep=sleep)) as store:
        await fill_the_disk(store)
        rows = [new(clock, msg_id=str(i), msg_text="x" * 1_500) for i in range(40)]
        with pytest.raises(AuditError, match="full"):
            await store.add(rows, clock.now())
        assert await store.count() == 0


async def test_a_failure_that_cannot_pass_is_raised_at_once_even_with_patience(
    tmp_path: Path,
) -> None:
    async def sleep(seconds: float) -> None:
        raise AssertionError(seconds)

    async with AuditStore.open(tmp_path / "a.db", patience=Patience(sleep=sleep)) as store:
        with pytest.raises(AuditError, match="no such table"):
            await store._write("INSERT INTO nowhere VALUES (1)", ())


async def test_filters(tmp_path: Path, clock: FakeClock) -> None:
    async with AuditStore.open(tmp_path / "a.db") as store:
        await store.add(
            [
                new(clock, rule="slurs", action="ban", status="done", unique_id="Bad_Guy"),
                new(clock, rule="flood", status="failed", streamer="other"),
                new(clock, rule="caps", action="reply", mode="observe", status="observed"),
            ],
            clock.now(),
        )
        clock.advance(3600)
        await store.add([new(clock, rule="flood", status="done")], clock.now())

        async def rules(**kw: object) -> list[str]:
            return [e.rule for e in await store.query(AuditFilter(**kw))]  # type: ignore[arg-type]

        assert await rules() == ["flood", "caps", "flood", "slurs"]  # newest first
        assert await rules(user="@bad_guy") == ["slurs"]
        assert await rules(user="68001", rule="flood") == ["flood", "flood"]
        assert await rules(status="observed") == ["caps"]
        assert await rules(action="ban") == ["slurs"]
        assert await rules(streamer="other") == ["flood"]
        assert await rules(since=clock.now() - timedelta(minutes=10)) == ["flood"]
        assert await rules(until=clock.now() - timedelta(minutes=10), limit=1) == ["caps"]


def test_filter_values_are_checked() -> None:
    with pytest.raises(FilterError, match="status must be one of"):
        AuditFilter(status="finished")
    with pytest.raises(FilterError, match="action must be one of"):
        AuditFilter(action="kick")
    with pytest.raises(FilterError, match="limit"):
        AuditFilter(limit=0)
    clock = FakeClock()
    assert parse_when("10m", clock.now()) == clock.now() - timedelta(minutes=10)
    assert parse_when("2026-11-24T19:00:00Z", clock.now()).hour == 19
    with pytest.raises(FilterError, match="neither a duration"):
        parse_when("yesterday", clock.now())


HOSTILE = (
    "{user.unique_id}\n\x1b[31mRED\x1b[0m'; DROP TABLE actions;--"
    + "e\u0301" * 3
    + "\u0301" * 10_000
)


async def test_viewer_text_is_stored_as_is_and_shown_inert(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with AuditStore.open(tmp_path / "a.db") as store:
        await store.add(
            [new(clock, unique_id=HOSTILE[:64], msg_text=HOSTILE, params={"text": HOSTILE})],
            clock.now(),
        )
        (entry,) = await store.query(AuditFilter())
        assert entry.msg_text == HOSTILE[:2000]  # stored verbatim (capped), not executed
        assert await store.count() == 1  # the table is still there
        shown = view.table([entry])
        assert "\x1b" not in shown
        assert len(shown.splitlines()) == 2  # no forged lines
        assert max(len(line) for line in shown.splitlines()) < 400
        lines = view.json_lines([entry])
        assert "\x1b" not in lines
        assert json.loads(lines)["text"] == HOSTILE[:2000]
        csv_text = view.csv_text([entry])
        assert "\x1b" not in csv_text


def test_csv_cells_never_start_a_formula(clock: FakeClock) -> None:
    from modbot.audit.store import Entry

    entry = Entry(
        1,
        "2026-11-24T20:00:00.000Z",
        "host",
        "1",
        "2",
        "=cmd|' /C calc'!A0",
        "r",
        "h",
        "ban",
        {},
        "enforce",
        "done",
        "",
        None,
        "",
        "@SUM(1)",
        None,
        None,
        None,
        "x",
    )
    text = view.csv_text([entry])
    assert ",'=cmd" in text
    assert ",'@SUM(1)" in text
