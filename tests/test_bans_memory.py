"""Bans that outlive the live, end to end: a daemon on the fake server (real HTTP and
WebSocket on loopback, a real SQLite file), and the ban list's own pieces."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from modbot.actions.memory import BanMemory
from modbot.actions.undo import undo, undo_carried
from modbot.audit import bans
from modbot.audit.records import NewEntry
from modbot.audit.schema import MIGRATIONS, VERSION
from modbot.audit.store import AuditStore, default_db
from modbot.daemon import Daemon
from modbot.euler.oauth import TokenManager
from modbot.events import Event, User
from modbot.fake import messages as m
from modbot.fake.clock import FakeClock
from modbot.fake.moderators import echo_own_calls, moderator_acts
from modbot.fake.server import FakeEuler, RecordedCall
from modbot.loopback import LoopbackServer
from tests.helpers import until
from tests.test_daemon import settings_for
from tests.test_nuke import actions, rules_dir, running

pytestmark = pytest.mark.usefixtures("isolated")

BAN_RULES = """version: 1
rules:
  - id: slur
    on: comment
    when: {text.words: zzbanword}
    then: [ban]
"""
EVERYWHERE_RULES = """version: 1
rules:
  - id: slur
    on: comment
    when: {text.words: zzbanword}
    then: [{ban: {everywhere: true}}]
"""
TROLL = m.Viewer("troll", "6890000000000000001")
MOD = m.Viewer("a_mod", "6890000000000000099", moderator=True)


@pytest.fixture
def state(tokens: TokenManager, tmp_path: Path) -> Path:
    del tokens
    return tmp_path / "state"


def bans_in(fake: FakeEuler, room_id: str) -> list[RecordedCall]:
    return [c for c in fake.calls_to("ban", ok_only=True) if room_id in c.path]


def say(fake: FakeEuler, handle: str, viewer: m.Viewer, text: str) -> None:
    room = fake.streamer(handle).room_id
    fake.emit(handle, [m.chat(room, viewer, text, fake.now_ms())])


def join(fake: FakeEuler, handle: str, viewer: m.Viewer, times: int = 1) -> None:
    room = fake.streamer(handle).room_id
    fake.emit(handle, [m.join(room, viewer, fake.now_ms()) for _ in range(times)])


async def new_live(fake: FakeEuler, handle: str) -> str:
    fake.go_offline(handle)
    await until(lambda: fake.connections(handle) == 0)
    room = fake.go_live(handle).room_id
    await until(lambda: fake.connections(handle) == 1)
    return room


def daemon_for(
    settings_args: tuple[FakeEuler, LoopbackServer, Path],
    clock: FakeClock,
    rules: Path,
    **extra: object,
) -> Daemon:
    fake, server, state = settings_args
    daemon = Daemon(
        settings_for(fake, server, state, rules_dir=rules, **extra),
        clock=clock,
        handle_signals=False,
    )
    daemon.rebans.poll = 0.05
    return daemon


async def troll_banned(fake: FakeEuler, daemon: Daemon) -> None:
    """The troll says the banned word in the streamer's live and is remembered."""
    await fake.wait_connected("host_handle")
    say(fake, "host_handle", TROLL, "zzbanword")
    await until(lambda: TROLL.user_id in daemon.rebans.memory.users("host_handle"))


async def carried_done(state: Path) -> bool:
    rows = await actions(state)
    return any(r.rule == bans.REMEMBERED_RULE and r.status == "done" for r in rows)


class TestCarriedIntoTheNextLive:
    async def test_a_ban_is_carried_into_the_next_live_once_linked_to_the_first(
        self,
        fake: FakeEuler,
        fake_server: LoopbackServer,
        clock: FakeClock,
        state: Path,
        tmp_path: Path,
    ) -> None:
        """Banned by a rule in live 1; in live 2 the viewer's join is banned at once, as
        rule `remembered` linked to the first ban; a flood of joins and comments in the
        same room makes no second call."""
        daemon = daemon_for((fake, fake_server, state), clock, rules_dir(tmp_path, BAN_RULES))
        async with running(daemon):
            await fake.wait_connected("host_handle")
            first_room = fake.streamer("host_handle").room_id
            say(fake, "host_handle", TROLL, "zzbanword")
            await until(lambda: len(bans_in(fake, first_room)) == 1)
            await until(lambda: TROLL.user_id in daemon.rebans.memory.users("host_handle"))
            # The same room again: no second ban (TikTok's own holds there).
            join(fake, "host_handle", TROLL)
            room = await new_live(fake, "host_handle")
            join(fake, "host_handle", TROLL, times=50)
            await until(lambda: len(bans_in(fake, room)) == 1)
            say(fake, "host_handle", TROLL, "hello again")
            join(fake, "host_handle", TROLL, times=20)
            await until(lambda: daemon.stats.events >= 73)
        assert len(bans_in(fake, first_room)) == 1
        assert len(bans_in(fake, room)) == 1
        assert bans_in(fake, room)[0].params["tiktok_user_id"] == TROLL.user_id
        rows = await actions(state)
        (original,) = [r for r in rows if r.rule == "slur"]
        (carried,) = [r for r in rows if r.rule == bans.REMEMBERED_RULE]
        assert carried.status == "done"
        assert carried.room_id == room
        assert carried.params["remembered"] == original.id
        assert f"#{original.id}" in carried.detail
        assert daemon.rebans.memory.counts["again in the room"] >= 70

    async def test_an_everywhere_ban_applies_to_another_streamer(
        self,
        fake: FakeEuler,
        fake_server: LoopbackServer,
        clock: FakeClock,
        state: Path,
        tmp_path: Path,
    ) -> None:
        """`ban: {everywhere: true}` on one streamer bans the viewer when they join
        another configured streamer's live; a plain ban does not reach there."""
        other = fake.add_streamer("other_host", live=True)
        plain = m.Viewer("plain_troll", "6890000000000000002")
        rules = rules_dir(tmp_path, EVERYWHERE_RULES)
        daemon = daemon_for(
            (fake, fake_server, state), clock, rules, streamers=["host_handle", "other_host"]
        )
        async with running(daemon):
            await fake.wait_connected("host_handle")
            await fake.wait_connected("other_host")
            say(fake, "host_handle", TROLL, "zzbanword")
            await until(lambda: TROLL.user_id in daemon.rebans.memory.users("other_host"))
            join(fake, "other_host", TROLL, times=3)
            await until(lambda: len(bans_in(fake, other.room_id)) == 1)
            # A plain ban, made by hand the same way a rule's is (params without scope),
            # stays with its streamer.
            assert daemon.store is not None
            (ban_id,) = await daemon.store.add(
                [ban_row(plain, "host_handle", fake.streamer("host_handle").room_id)], clock.now()
            )
            assert ban_id is not None
            await daemon.store.finish([(ban_id, "done", None)], clock.now())
            await until(lambda: plain.user_id in daemon.rebans.memory.users("host_handle"))
            assert plain.user_id not in daemon.rebans.memory.users("other_host")
            join(fake, "other_host", plain)
            join(fake, "other_host", TROLL)
            await until(lambda: daemon.stats.events >= 6)
        assert [c.params["tiktok_user_id"] for c in bans_in(fake, other.room_id)] == [TROLL.user_id]
        (original,) = [r for r in await actions(state) if r.rule == "slur"]
        assert original.params["everywhere"] is True

    async def test_undo_of_the_ban_ends_the_memory(
        self,
        fake: FakeEuler,
        fake_server: LoopbackServer,
        clock: FakeClock,
        state: Path,
        tmp_path: Path,
    ) -> None:
        """`modbot undo` of the original ban (an unban) ends the memory: the next live
        lets the viewer in."""
        daemon = daemon_for((fake, fake_server, state), clock, rules_dir(tmp_path, BAN_RULES))
        async with running(daemon):
            await troll_banned(fake, daemon)
            (original,) = [r for r in await actions(state) if r.rule == "slur"]
            assert daemon.executor is not None
            assert daemon.store is not None
            result = await undo(daemon.executor, daemon.store, original.id, reason="mistake")
            assert result.ok, result
            await until(lambda: TROLL.user_id not in daemon.rebans.memory.users("host_handle"))
            room = await new_live(fake, "host_handle")
            join(fake, "host_handle", TROLL)
            say(fake, "host_handle", TROLL, "hi")
            await until(lambda: daemon.stats.events >= 4)
        assert bans_in(fake, room) == []
        (record,) = await read_bans(state, TROLL.user_id)
        assert result.entry is not None
        assert record.ended_by == result.entry.id

    async def test_undo_of_the_ban_lifts_it_in_the_rooms_it_was_carried_into(
        self,
        fake: FakeEuler,
        fake_server: LoopbackServer,
        clock: FakeClock,
        state: Path,
        tmp_path: Path,
    ) -> None:
        """Undo of the original ban after it was carried into live 2: the viewer is
        unbanned in live 2 as well (an unban there, linked to the carried ban)."""
        daemon = daemon_for((fake, fake_server, state), clock, rules_dir(tmp_path, BAN_RULES))
        async with running(daemon):
            await troll_banned(fake, daemon)
            room = await new_live(fake, "host_handle")
            join(fake, "host_handle", TROLL)
            await until(lambda: len(bans_in(fake, room)) == 1)
            with anyio.fail_after(10):  # the carried ban's outcome is written
                while not await carried_done(state):  # noqa: ASYNC110 (a file, no event)
                    await anyio.sleep(0.02)
            (original,) = [r for r in await actions(state) if r.rule == "slur"]
            assert daemon.executor is not None
            assert daemon.store is not None
            results = await undo_carried(daemon.executor, daemon.store, original.id)
        assert [r.ok for r in results] == [True, True]
        unbans = [c for c in fake.calls_to("unban", ok_only=True) if room in c.path]
        assert len(unbans) == 1
        (carried,) = [r for r in await actions(state) if r.rule == bans.REMEMBERED_RULE]
        assert carried.undone_by is not None

    async def test_a_moderators_unban_ends_the_memory_at_once(
        self,
        fake: FakeEuler,
        fake_server: LoopbackServer,
        clock: FakeClock,
        state: Path,
        tmp_path: Path,
    ) -> None:
        """A human moderator lets the viewer back in (UNBAN_BY_ADMIN on the WebSocket):
        recorded as done by a moderator, and the viewer is not banned again, neither in
        the same room's later join nor in the next live."""
        daemon = daemon_for((fake, fake_server, state), clock, rules_dir(tmp_path, BAN_RULES))
        async with running(daemon):
            await troll_banned(fake, daemon)
            moderator_acts(fake, "host_handle", "unban", operator=MOD, target=TROLL)
            join(fake, "host_handle", TROLL)  # right behind the unban, in the same bundle order
            await until(lambda: TROLL.user_id not in daemon.rebans.memory.users("host_handle"))
            room = await new_live(fake, "host_handle")
            join(fake, "host_handle", TROLL)
            await until(lambda: daemon.stats.events >= 5)
            await until(lambda: daemon.rebans.version >= 2)
        assert bans_in(fake, room) == []
        rows = await actions(state)
        (human,) = [r for r in rows if r.rule == "moderator"]
        assert (human.action, human.status, human.user_id) == ("unban", "done", TROLL.user_id)
        assert human.params["operator_id"] == MOD.user_id
        (record,) = await read_bans(state, TROLL.user_id)
        assert record.ended is not None
        assert record.ended_by == human.id

    async def test_the_streamers_own_unban_by_hand_ends_the_memory_across_a_restart(
        self,
        fake: FakeEuler,
        fake_server: LoopbackServer,
        clock: FakeClock,
        state: Path,
        tmp_path: Path,
    ) -> None:
        """The streamer lets the viewer back in in the app, with the account modbot
        calls with (its echo looks like modbot's own): no modbot unban was called, so it
        is recorded and ends the ban in the database; a restart in a new live does not
        ban the viewer again."""
        rules = rules_dir(tmp_path, BAN_RULES)
        owner = fake.streamer("host_handle").owner
        daemon = daemon_for((fake, fake_server, state), clock, rules)
        async with running(daemon):
            await troll_banned(fake, daemon)
            clock.advance(5)
            moderator_acts(fake, "host_handle", "unban", operator=owner, target=TROLL)
            await until(lambda: daemon.humans.counts["own unban by hand"] == 1)
            await until(lambda: "moderator" in rules_of(state))
        room = fake_live(fake)
        daemon = daemon_for((fake, fake_server, state), clock, rules)
        async with running(daemon):
            await fake.wait_connected("host_handle")
            assert TROLL.user_id not in daemon.rebans.memory.users("host_handle")
            join(fake, "host_handle", TROLL)
            await until(lambda: daemon.stats.events >= 1)
        assert bans_in(fake, room) == []
        (record,) = await read_bans(state, TROLL.user_id)
        (human,) = [r for r in await actions(state) if r.rule == "moderator"]
        assert (human.action, human.params["operator_id"]) == ("unban", owner.user_id)
        assert record.ended_by == human.id

    async def test_modbots_own_unban_echoed_is_not_recorded_as_a_human(
        self,
        fake: FakeEuler,
        fake_server: LoopbackServer,
        clock: FakeClock,
        state: Path,
        tmp_path: Path,
    ) -> None:
        """modbot's undo of a ban (an unban) comes back as the account's own unban: it
        is modbot's, not recorded as a moderator's; the undo ended the memory."""
        echo_own_calls(fake)
        daemon = daemon_for((fake, fake_server, state), clock, rules_dir(tmp_path, BAN_RULES))
        async with running(daemon):
            await fake.wait_connected("host_handle")
            say(fake, "host_handle", TROLL, "zzbanword")
            await until(lambda: daemon.humans.counts["own"] == 1)  # the ban's echo
            (original,) = [r for r in await actions(state) if r.rule == "slur"]
            assert daemon.executor is not None
            assert daemon.store is not None
            clock.advance(5)
            result = await undo(daemon.executor, daemon.store, original.id, reason="mistake")
            assert result.ok, result
            await until(lambda: daemon.humans.counts["own"] == 2)  # the unban's echo
        assert daemon.humans.counts["own unban by hand"] == 0
        assert not [r for r in await actions(state) if r.rule == "moderator"]
        (record,) = await read_bans(state, TROLL.user_id)
        assert result.entry is not None
        assert record.ended_by == result.entry.id

    async def test_a_restart_keeps_the_memory(
        self,
        fake: FakeEuler,
        fake_server: LoopbackServer,
        clock: FakeClock,
        state: Path,
        tmp_path: Path,
    ) -> None:
        """The list is in the database: a daemon started after the ban (in a new live)
        bans the viewer at their join; a third start in the same room does not call
        again (the carried ban is in the database too)."""
        rules = rules_dir(tmp_path, BAN_RULES)
        daemon = daemon_for((fake, fake_server, state), clock, rules)
        async with running(daemon):
            await fake.wait_connected("host_handle")
            say(fake, "host_handle", TROLL, "zzbanword")
            await until(lambda: len(fake.calls_to("ban", ok_only=True)) == 1)
        room = fake_live(fake)
        daemon = daemon_for((fake, fake_server, state), clock, rules)
        async with running(daemon):
            await fake.wait_connected("host_handle")
            assert TROLL.user_id in daemon.rebans.memory.users("host_handle")
            join(fake, "host_handle", TROLL)
            await until(lambda: len(bans_in(fake, room)) == 1)
        daemon = daemon_for((fake, fake_server, state), clock, rules)
        async with running(daemon):
            await fake.wait_connected("host_handle")
            join(fake, "host_handle", TROLL)
            await until(lambda: daemon.stats.events >= 1)
            await until(lambda: daemon.rebans.memory.counts["again in the room"] == 1)
        assert len(bans_in(fake, room)) == 1


def rules_of(state: Path) -> list[str]:
    """The rule of every audit row now (read while the daemon runs)."""
    with sqlite3.connect(default_db(state)) as conn:
        return [str(rule) for (rule,) in conn.execute("SELECT rule FROM actions ORDER BY id")]


def fake_live(fake: FakeEuler) -> str:
    fake.go_offline("host_handle")
    return fake.go_live("host_handle").room_id


async def read_bans(state: Path, user_id: str) -> list[bans.BanRecord]:
    async with AuditStore.open(default_db(state)) as store:
        return await bans.of_user(store, user_id)


def ban_row(viewer: m.Viewer, streamer: str, room_id: str, **params: object) -> NewEntry:
    return NewEntry(
        ts=datetime(2026, 11, 24, 20, 0, tzinfo=UTC),
        streamer=streamer,
        rule="manual",
        action="ban",
        mode="enforce",
        status="pending",
        room_id=room_id,
        user_id=viewer.user_id,
        unique_id=viewer.unique_id,
        params=dict(params),
    )


# --- the database's side ---------------------------------------------------------------------


class TestBanList:
    async def test_triggers_keep_the_list_whoever_writes(self, tmp_path: Path) -> None:
        """A done ban is remembered, a failed or observed one not, a carried one not; a
        done unban on its streamer ends it, an unban elsewhere does not (unless
        everywhere); every change raises the version."""
        now = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)
        a, b, c = (m.Viewer(f"v{i}", f"68900000000000001{i}") for i in range(3))
        async with AuditStore.open(tmp_path / "audit.db") as store:
            ids = await store.add(
                [
                    ban_row(a, "host", "1"),
                    ban_row(b, "host", "1", everywhere=True),
                    ban_row(c, "host", "1"),
                    ban_row(c, "host", "2", remembered=1),
                ],
                now,
            )
            ia, ib, ic, ir = (i for i in ids if i is not None)
            await store.finish(
                [(ia, "done", None), (ib, "done", None), (ic, "failed", "x"), (ir, "done", None)],
                now,
            )
            listed, version = await bans.remembered(store)
            assert [(r.user_id, r.everywhere) for r in listed] == [
                (a.user_id, False),
                (b.user_id, True),
            ]
            unbans = [
                unban_row(a, "elsewhere"),
                unban_row(a, "HOST"),
                unban_row(b, "elsewhere"),
            ]
            u1, u2, u3 = (i for i in await store.add(unbans, now) if i is not None)
            await store.finish([(u1, "done", None)], now)
            assert len((await bans.remembered(store))[0]) == 2
            await store.finish([(u2, "done", None), (u3, "done", None)], now)
            assert (await bans.remembered(store))[0] == []
            changed = await bans.changed_since(store, version)
            assert {(r.user_id, r.ended_by) for r in changed} == {(a.user_id, u2), (b.user_id, u3)}

    async def test_a_ban_written_while_the_list_is_read_is_in_the_list_or_the_next_poll(
        self, tmp_path: Path
    ) -> None:
        """A ban done right after the list's first read (on the same real file) is either
        in the list or after its version: never counted in the version and missing."""
        now = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)
        late = m.Viewer("late", "6890000000000000177")

        class BanInBetween(AuditStore):
            armed = True

            async def execute(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
                rows = await super().execute(sql, params)
                if self.armed and "FROM bans" in sql:
                    self.armed = False
                    (i,) = await self.add([ban_row(late, "host", "1")], now)
                    assert i is not None
                    await self.finish([(i, "done", None)], now)
                return rows

        async with BanInBetween.open(tmp_path / "audit.db") as store:
            listed, version = await bans.remembered(store)
            later = await bans.changed_since(store, version)
            seen = [r.user_id for r in listed] + [r.user_id for r in later]
            assert seen == [late.user_id]

    def test_the_upgrade_from_the_previous_version_remembers_earlier_bans(
        self, tmp_path: Path
    ) -> None:
        """A database of version 3 with bans in it: after the upgrade, the done ban of
        the last 30 days not lifted since is remembered; the lifted one, the failed one
        and the one older than 30 days (its unban may never have been recorded) are not;
        the upgrade logs how many it took."""
        db = tmp_path / "audit.db"
        now = datetime.now(UTC)
        recent = (now - timedelta(days=2)).isoformat(timespec="milliseconds")
        old = (now - timedelta(days=31)).isoformat(timespec="milliseconds")
        with sqlite3.connect(db) as conn:
            for number, script in enumerate(MIGRATIONS[:3], start=1):
                conn.executescript(script)
                conn.execute(f"PRAGMA user_version = {number}")
            row = (
                "INSERT INTO actions (ts, streamer, room_id, user_id, rule, action, params, mode,"
                " status, updated) VALUES (?, 'host', '1', ?, 'slur', ?, '{}', 'enforce', ?, ?)"
            )
            for ts, user, action, status in (
                (recent, "61", "ban", "done"),
                (recent, "62", "ban", "done"),
                (recent, "62", "unban", "done"),
                (recent, "63", "ban", "failed"),
                (old, "64", "ban", "done"),
            ):
                iso = ts.replace("+00:00", "Z")
                conn.execute(row, (iso, user, action, status, iso))

        async def read() -> tuple[list[bans.BanRecord], int]:
            async with AuditStore.open(db) as store:
                return await bans.remembered(store)

        with capture_logs() as logs:
            listed, _ = anyio.run(read)
        assert [r.user_id for r in listed] == ["61"]
        said = [e for e in logs if e["event"] == "audit.bans_remembered_on_upgrade"]
        assert [e["count"] for e in said] == [1]
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == VERSION

    async def test_a_new_database_says_nothing_of_an_upgrade(self, tmp_path: Path) -> None:
        with capture_logs() as logs:
            async with AuditStore.open(tmp_path / "audit.db"):
                pass
        assert not [e for e in logs if e["event"] == "audit.bans_remembered_on_upgrade"]


def unban_row(viewer: m.Viewer, streamer: str) -> NewEntry:
    return NewEntry(
        ts=datetime(2026, 11, 24, 20, 1, tzinfo=UTC),
        streamer=streamer,
        rule="manual",
        action="unban",
        mode="enforce",
        status="pending",
        room_id="1",
        user_id=viewer.user_id,
    )


# --- the memory alone (pure) ----------------------------------------------------------------


def _event(kind: str, room: str, user: User, streamer: str = "host") -> Event:
    return Event(
        kind=kind,  # type: ignore[arg-type]
        ts=datetime(2026, 11, 24, 20, 0, tzinfo=UTC),
        streamer=streamer,
        room_id=room,
        msg_id="7",
        user=user,
    )


class TestMemory:
    def record(self, **kw: object) -> bans.BanRecord:
        base: dict[str, object] = {
            "action_id": 5,
            "user_id": "61",
            "unique_id": "t",
            "streamer": "host",
            "room_id": "1",
            "everywhere": False,
            "since": "x",
        }
        return bans.BanRecord(**{**base, **kw})  # type: ignore[arg-type]

    def test_once_per_room_and_a_failure_is_retried_later(self) -> None:
        memory = BanMemory()
        memory.load([self.record()])
        user = User("61", "t")
        assert memory.check(_event("join", "1", user), 0.0) is None  # the ban's own room
        carry = memory.check(_event("join", "2", user), 0.0)
        assert carry is not None
        assert carry.original == 5
        assert memory.check(_event("comment", "2", user), 1.0) is None
        memory.done(carry, ok=False, now=10.0)
        assert memory.check(_event("join", "2", user), 20.0) is None
        assert memory.check(_event("join", "2", user), 71.0) is not None

    def test_others_moderators_and_other_streamers_are_left_alone(self) -> None:
        memory = BanMemory()
        memory.load([self.record()])
        assert memory.check(_event("join", "2", User("62")), 0.0) is None
        assert memory.check(_event("join", "2", User("61"), streamer="other"), 0.0) is None
        assert memory.check(_event("join", "2", User("61", is_moderator=True)), 0.0) is None
        assert memory.check(_event("viewers", "2", User("61")), 0.0) is None
        assert memory.forget("61", "HOST") == 1
        assert memory.check(_event("join", "3", User("61")), 0.0) is None

    def test_an_ended_record_drops_the_ban(self) -> None:
        memory = BanMemory()
        memory.load([self.record(), self.record(action_id=9, everywhere=True)])
        assert memory.users("other") == {"61"}
        memory.apply(self.record(action_id=9, everywhere=True, ended="y", ended_by=10))
        assert memory.users("other") == set()
        assert memory.users("host") == {"61"}


class TestRuleSchema:
    @pytest.mark.parametrize(
        ("action", "said"),
        [
            ('{ban: {everywhere: "yes"}}', "ban.everywhere must be true or false"),
            ("{ban: {where: all}}", "ban takes everywhere"),
        ],
    )
    def test_a_bad_everywhere_is_an_error(self, tmp_path: Path, action: str, said: str) -> None:
        from modbot.rules.compile import load_ruleset

        folder = rules_dir(tmp_path, EVERYWHERE_RULES.replace("{ban: {everywhere: true}}", action))
        ruleset, diagnostics = load_ruleset([folder])
        assert ruleset is None
        assert any(said in str(d) for d in diagnostics), diagnostics

    def test_plain_ban_and_everywhere_both_load(self, tmp_path: Path) -> None:
        from modbot.rules.compile import load_ruleset

        for text, everywhere in ((BAN_RULES, False), (EVERYWHERE_RULES, True)):
            (tmp_path / str(everywhere)).mkdir()
            folder = rules_dir(tmp_path / str(everywhere), text)
            ruleset, _ = load_ruleset([folder])
            assert ruleset is not None
            (rule,) = ruleset.rules
            assert [(a.kind, a.everywhere) for a in rule.actions] == [("ban", everywhere)]
