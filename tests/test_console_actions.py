"""Actions by hand (`modbot mute|unmute|ban|unban|comments|say`), incidents and
`modbot audit stats`, end to end: the fake Euler server on loopback (real HTTP and
WebSocket), the audit log in a real SQLite file, the commands as a person runs them."""

from __future__ import annotations

import getpass
import io
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from modbot.actions import manual
from modbot.actions.memory import BanMemory
from modbot.audit import bans
from modbot.audit.bans import BanRecord
from modbot.audit.handles import Handles
from modbot.audit.incidents import new_incident
from modbot.audit.query import AuditFilter
from modbot.audit.records import Entry
from modbot.audit.schema import MIGRATIONS, VERSION
from modbot.audit.store import AuditStore, NewEntry, default_db
from modbot.cli import main
from modbot.config import Settings
from modbot.daemon import Daemon
from modbot.euler.oauth import TokenStore
from modbot.euler.tokens import token_set_from_answer
from modbot.fake import messages as m
from modbot.fake.clock import FakeClock
from modbot.fake.faults import Fault
from modbot.fake.server import FakeEuler
from modbot.loopback import LoopbackServer
from tests.conftest import DemoRun
from tests.helpers import until
from tests.test_daemon import settings_for

pytestmark = pytest.mark.usefixtures("isolated")

TROLL = "6811111111111111111"
FAN = "6822222222222222222"
SCOPES = ("webcast:mute", "webcast:ban", "webcast:comments", "webcast:chat")
RULES = """version: 1
rules:
  - id: slurs
    on: comment
    when: {text.words: [badword]}
    then: [ban]
"""
HOSTILE = [
    "\u202etroll",  # a bidirectional override
    "tr\u200boll",  # a zero-width space
    "@" + "a" * 10_000,
    "\udcfftroll",  # a lone surrogate (an undecodable byte of argv)
    "@troll\n@fan",
    "",
]


def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), stdout=out)
    return code, out.getvalue()


async def arows(state: Path) -> list[Entry]:
    async with AuditStore.open(default_db(state)) as store:
        return await store.query(AuditFilter(limit=None, oldest_first=True))


def rows(state: Path) -> list[Entry]:
    return anyio.run(arows, state)


def statuses(state: Path) -> list[tuple[str, str, str, str]]:
    """(rule, action, status, user_id) of every row, read with sqlite3 (no event loop)."""
    with sqlite3.connect(default_db(state)) as db:
        found = db.execute("SELECT rule, action, status, user_id FROM actions ORDER BY id")
        return [tuple(r) for r in found.fetchall()]


def timers(state: Path) -> list[tuple[str, str, str, float, int]]:
    with sqlite3.connect(default_db(state)) as db:
        found = db.execute(
            "SELECT kind, status, user_id, due, action_id FROM timers ORDER BY id"
        ).fetchall()
    return [tuple(r) for r in found]


def seed(state: Path, entries: list[NewEntry]) -> list[int]:
    async def write() -> list[int]:
        async with AuditStore.open(default_db(state)) as store:
            ids = await store.add(entries, datetime.now(UTC))
        return [i for i in ids if i is not None]

    return anyio.run(write)


def seen(handle: str, user_id: str, **fields: Any) -> NewEntry:
    """A row of the viewer's (so the audit log knows the handle's user id)."""
    values: dict[str, Any] = {
        "ts": datetime.now(UTC) - timedelta(hours=2),
        "streamer": "host_handle",
        "rule": "links",
        "action": "log",
        "mode": "enforce",
        "status": "done",
        "room_id": "7300000000000000001",
        "user_id": user_id,
        "unique_id": handle,
    }
    values.update(fields)
    return NewEntry(**values)


def grant(fake: FakeEuler, state: Path, scopes: tuple[str, ...] = SCOPES) -> None:
    answer = fake.issue_tokens([*scopes, "webcast:bulk_live_check"])
    TokenStore(state).save(token_set_from_answer(answer, time.time()))


@pytest.fixture
def console(
    euler_env: FakeEuler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[FakeEuler, Path]:
    """The fake in a thread, a grant, one streamer configured, rules for `say`."""
    state = tmp_path / "state"
    grant(euler_env, state)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(RULES)
    monkeypatch.setenv("MODBOT_STREAMERS", "host_handle")
    monkeypatch.setenv("MODBOT_RULES_DIR", str(rules))
    monkeypatch.setenv("MODBOT_STATE_DIR", str(state))
    return euler_env, state


# --- what the command line may hold --------------------------------------------------------


class TestRefused:
    @pytest.mark.parametrize("text", HOSTILE)
    def test_a_viewer_that_is_no_handle_nor_id_is_refused(self, text: str) -> None:
        with pytest.raises(manual.Refused) as caught:
            manual.parse_viewer(text)
        message = str(caught.value)
        assert len(message) < 200
        message.encode("utf-8")  # no lone surrogate reaches a terminal
        assert "\u202e" not in message
        assert "\u200b" not in message

    def test_handles_and_ids(self) -> None:
        assert manual.parse_viewer("@Troll.99_x") == manual.Viewer(handle="Troll.99_x")
        assert manual.parse_viewer("troll") == manual.Viewer(handle="troll")
        assert manual.parse_viewer(TROLL) == manual.Viewer(user_id=TROLL)
        assert manual.parse_viewer("@123") == manual.Viewer(handle="123")

    def test_reasons_and_messages_are_cleaned_or_refused(self) -> None:
        assert manual.clean_reason("spam\u202e\u200b  wave\n\nagain") == "spam wave again"
        assert manual.clean_reason("\udcffok") == "\ufffdok"
        assert manual.clean_reason("\u200b") is None
        with pytest.raises(manual.Refused):
            manual.clean_reason("x" * 10_000)
        assert manual.clean_message("hi \u202eall\u2066 \udcff") == "hi all \ufffd"
        with pytest.raises(manual.Refused):
            manual.clean_message("y" * 10_000)
        # the length is the message's as said: runs of spaces squeezed first
        assert manual.clean_message("a" + " " * 400 + "b") == "a b"

    def test_streamers_picked(self) -> None:
        assert manual.pick_streamers(None, ["a"], everywhere=False) == ["a"]
        assert manual.pick_streamers("@A", ["a", "b"], everywhere=False) == ["a"]
        assert manual.pick_streamers(None, ["a", "b"], everywhere=True) == ["a", "b"]
        for given, configured in ((None, ["a", "b"]), (None, []), ("c", ["a", "b"])):
            with pytest.raises(manual.Refused):
                manual.pick_streamers(given, configured, everywhere=False)
        with pytest.raises(manual.Refused):
            manual.pick_streamers("\u202ea", ["a"], everywhere=False)

    @pytest.mark.parametrize(
        "argv",
        [
            ["mute", "\u202etroll", "10m"],
            ["mute", "@" + "a" * 10_000, "10m"],
            ["mute", "\udcfftroll", "10m"],
            ["mute", TROLL, "ten minutes"],
            ["mute", TROLL, "0s"],
            ["ban", TROLL, "--reason", "r" * 10_000],
            ["say", "z" * 10_000],
            ["comments", "on", "--for", "2m"],
            ["comments", "off", "--for", "soon"],
            ["ban", TROLL, "--streamer", "nobody_here"],
        ],
    )
    def test_exit_2_and_nothing_called_nor_audited(
        self, console: tuple[FakeEuler, Path], argv: list[str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        fake, state = console
        code, out = run_cli(*argv)
        assert code == 2, out
        err = capsys.readouterr().err
        assert err.startswith("modbot: ")
        assert err.count("\n") == 1
        assert "\u202e" not in err
        assert len(err) < 400
        assert not fake.calls_to("mute", "ban", "chat", "toggle_comments")
        assert not default_db(state).exists() or not rows(state)


def test_without_credentials_nothing_is_made_in_the_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODBOT_STREAMERS", "host_handle")
    state = tmp_path / "fresh"
    code, _ = run_cli("mute", TROLL, "5m", "--state-dir", str(state))
    assert code == 2
    assert "api_key" in capsys.readouterr().err
    assert not default_db(state).exists()


# --- the actions ----------------------------------------------------------------------------


class TestActions:
    def test_a_long_mute_is_audited_first_with_its_timer_then_undone(
        self, console: tuple[FakeEuler, Path]
    ) -> None:
        """10 minutes is past the API's 5: a permanent mute and an unmute timer, exactly as
        a rule's; the row is rule manual with the reason and the OS user; a second mute in
        the window is a repeat (exit 0, not called again); undo lifts it and ends the timer."""
        fake, state = console
        fake.world.names[TROLL] = ("troll", "Troll")
        room = fake.streamer("host_handle")
        code, out = run_cli("mute", "@troll", "10m", "--reason", "spam \u202ewave")
        assert code == 0, out
        assert "mute 10m @troll in @host_handle's room: done; unmuted at" in out
        assert room.muted(TROLL, time.time() + 3600)  # permanent at the API
        (call,) = fake.calls_to("mute")
        assert call.params["duration"] == "-1"
        entry = rows(state)[-1]
        assert (entry.rule, entry.action, entry.status, entry.user_id) == (
            "manual",
            "mute",
            "done",
            TROLL,
        )
        assert entry.reason == "spam wave"
        assert entry.params["by"] == getpass.getuser()
        assert entry.params["duration_s"] == 600
        assert entry.params["unmute_after_s"] == 600
        ((kind, status, user, due, action),) = timers(state)
        assert (kind, status, user, action) == ("unmute", "pending", TROLL, entry.id)
        assert abs(due - (time.time() + 600)) < 30
        # The same mute again within the window: the wanted state holds.
        code, out = run_cli("mute", TROLL, "10m")
        assert code == 0, out
        assert "skipped: the same mute was sent" in out
        assert len(fake.calls_to("mute")) == 1
        code, out = run_cli("undo", str(entry.id))
        assert code == 0, out
        assert not room.muted(TROLL, time.time())
        assert [t[1] for t in timers(state)] == ["cancelled"]

    def test_a_short_mute_needs_no_timer_and_unmute_ends_an_earlier_timer(
        self, console: tuple[FakeEuler, Path]
    ) -> None:
        fake, state = console
        assert run_cli("mute", TROLL, "2h")[0] == 0
        assert [t[1] for t in timers(state)] == ["pending"]
        code, out = run_cli("unmute", TROLL, "--json")
        assert code == 0, out
        record = json.loads(out)
        assert (record["action"], record["status"], record["rule"]) == ("unmute", "done", "manual")
        assert [t[1] for t in timers(state)] == ["cancelled"]
        assert run_cli("mute", FAN, "30s")[0] == 0
        (call,) = [c for c in fake.calls_to("mute") if c.params["user_id"] == FAN]
        assert call.params["duration"] == "30"
        assert len(timers(state)) == 1

    def test_a_ban_by_hand_is_undone_and_its_scope_kept(
        self, console: tuple[FakeEuler, Path]
    ) -> None:
        fake, state = console
        room = fake.streamer("host_handle")
        code, out = run_cli("ban", TROLL, "--reason", "slurs")
        assert code == 0, out
        assert room.bans == {TROLL}
        ban = rows(state)[-1]
        assert ban.params["scope"] == "host_handle"
        assert "everywhere" not in ban.params
        code, out = run_cli("undo", str(ban.id), "--reason", "appeal")
        assert code == 0, out
        assert f"#{ban.id}: undone by #" in out
        assert room.bans == set()
        unban = rows(state)[-1]
        assert (unban.action, unban.undo_of) == ("unban", ban.id)
        # unban by hand while offline acts in the room of the ban
        assert run_cli("ban", FAN)[0] == 0
        fake.streamer("host_handle").is_live = False
        code, out = run_cli("unban", FAN)
        assert code == 0, out
        assert FAN not in room.bans

    def test_a_ban_while_offline_is_remembered_for_the_next_live_and_unban_forgets_it(
        self, console: tuple[FakeEuler, Path]
    ) -> None:
        """cli.md: "the ban is remembered". Offline there is no room to call in: the row
        is done with nothing called (params offline), the bans table holds it, and the
        daemon's memory bans the viewer at the next live; an unban while offline ends it."""
        fake, state = console
        fake.streamer("host_handle").is_live = False
        code, out = run_cli("ban", TROLL, "--reason", "raid leader")
        assert code == 0, out
        assert "done: remembered for the next live; nothing to call while offline" in out
        assert not fake.calls_to("ban")
        ban = rows(state)[-1]
        assert (ban.rule, ban.action, ban.status, ban.user_id) == ("manual", "ban", "done", TROLL)
        assert ban.params["offline"] is True

        async def memory() -> tuple[list[BanRecord], set[str]]:
            async with AuditStore.open(default_db(state)) as store:
                held, _ = await bans.remembered(store)
            known = BanMemory()
            known.load(held)
            return held, known.users("host_handle")

        held, users = anyio.run(memory)
        assert [(b.action_id, b.user_id, b.room_id) for b in held] == [(ban.id, TROLL, "")]
        assert users == {TROLL}
        # a viewer never banned is not "unbanned" offline: nothing to forget
        code, out = run_cli("unban", FAN)
        assert code == 1, out
        assert "skipped: @host_handle is not live" in out
        code, out = run_cli("unban", TROLL)
        assert code == 0, out
        assert "done: the remembered ban forgotten" in out
        assert not fake.calls_to("unban")
        held, users = anyio.run(memory)
        assert (held, users) == ([], set())

    def test_a_ban_everywhere_while_every_streamer_is_offline_is_remembered_once(
        self, console: tuple[FakeEuler, Path], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        fake, state = console
        fake.streamer("host_handle").is_live = False
        fake.add_streamer("second")  # offline
        monkeypatch.setenv("MODBOT_STREAMERS", "host_handle,second")
        code, out = run_cli("ban", TROLL, "--everywhere")
        assert code == 0, out
        first, second = [e for e in rows(state) if e.action == "ban"]
        assert (first.status, first.params["everywhere"], first.params["offline"]) == (
            "done",
            True,
            True,
        )
        assert second.status == "skipped"
        assert f"remembered for their next live by #{first.id}" in second.detail
        assert not fake.calls_to("ban")

    def test_an_unknown_handle_the_streamer_and_an_offline_room(
        self, console: tuple[FakeEuler, Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        fake, state = console
        code, _ = run_cli("ban", "@nobody_knows")
        assert code == 1
        assert "TikTok has no account @nobody_knows" in capsys.readouterr().err
        owner = fake.streamer("host_handle").user_id
        code, _ = run_cli("mute", owner, "5m")
        assert code == 1
        assert "own account" in capsys.readouterr().err
        fake.streamer("host_handle").is_live = False
        code, out = run_cli("mute", TROLL, "5m")
        assert code == 1
        assert "skipped: @host_handle is not live" in out
        assert rows(state)[-1].status == "skipped"
        assert not fake.calls_to("mute", "ban")

    def test_without_the_scope_it_is_observed_and_fails(
        self, euler_env: FakeEuler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        state = tmp_path / "state"
        grant(euler_env, state, scopes=("webcast:mute",))
        monkeypatch.setenv("MODBOT_STREAMERS", "host_handle")
        code, out = run_cli("ban", TROLL, "--state-dir", str(state))
        assert code == 1
        assert "observed" in out
        assert "webcast:ban" in out
        assert not euler_env.calls_to("ban")

    def test_comments_off_for_a_while_then_on(self, console: tuple[FakeEuler, Path]) -> None:
        fake, state = console
        room = fake.streamer("host_handle")
        code, out = run_cli("comments", "off", "--for", "2m", "--reason", "raid")
        assert code == 0, out
        assert "comments back on at" in out
        assert room.comments_enabled is False
        assert [t[:2] for t in timers(state)] == [("comments_on", "pending")]
        code, out = run_cli("comments", "off")
        assert code == 0, out
        assert "comments are already off" in out
        assert len(fake.calls_to("toggle_comments")) == 1
        code, out = run_cli("comments", "on")
        assert code == 0, out
        assert fake.streamer("host_handle").comments_enabled  # (mypy: room is narrowed)
        assert [t[:2] for t in timers(state)] == [("comments_on", "cancelled")]

    def test_say_passes_the_speech_check_of_the_loaded_rules(
        self, console: tuple[FakeEuler, Path]
    ) -> None:
        fake, state = console
        room = fake.streamer("host_handle")
        code, out = run_cli("say", "welcome \u202eall\u200b of you")
        assert code == 0, out
        assert room.chat == ["welcome all of you"]
        said = rows(state)[-1]
        assert (said.rule, said.action, said.status) == ("manual", "reply", "done")
        for text, why in (
            ("you are a badword", "would trip rule 'slurs'"),
            ("see https://example.com now", "holds a link"),
            ("\u200b\u202e", "empty"),
        ):
            code, out = run_cli("say", text)
            assert code == 1, out
            assert why in out
            entry = rows(state)[-1]
            assert (entry.action, entry.status) == ("reply", "skipped")
        assert room.chat == ["welcome all of you"]

    def test_say_refuses_when_the_rules_do_not_load(
        self, console: tuple[FakeEuler, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        fake, _ = console
        monkeypatch.setenv("MODBOT_RULES_DIR", str(tmp_path / "missing"))
        code, _ = run_cli("say", "hello")
        assert code == 1
        assert fake.streamer("host_handle").chat == []


# --- incidents ----------------------------------------------------------------------------


def cache(state: Path, handle: str, user_id: str, age: timedelta) -> None:
    """A handle cache entry resolved ``age`` ago."""

    async def write() -> None:
        async with AuditStore.open(default_db(state)) as store:
            await Handles(store).save(handle, user_id, datetime.now(UTC) - age)

    anyio.run(write)


class TestWhom:
    """Handles are renamed and reused: whom `@bob` names is asked of the API now; the
    cache stands in only when the API cannot be asked, only when recent, and says so."""

    OLD, NOW = "111", "222"

    def test_the_api_names_the_viewer_not_an_old_row_nor_a_stale_cache(
        self, console: tuple[FakeEuler, Path]
    ) -> None:
        fake, state = console
        a_year_ago = datetime.now(UTC) - timedelta(days=365)
        seed(state, [seen("bob", self.OLD, ts=a_year_ago, mode="observe", status="observed")])
        cache(state, "bob", self.OLD, timedelta(days=30))
        fake.world.names[self.NOW] = ("bob", "Bob now")
        code, out = run_cli("ban", "@bob")
        assert code == 0, out
        assert fake.streamer("host_handle").bans == {self.NOW}
        assert rows(state)[-1].user_id == self.NOW
        assert "handle cache" not in out
        # the answer is cached (the latest answer wins)
        code, out = run_cli("mute", "@BOB", "5m")
        assert code == 0, out
        assert rows(state)[-1].user_id == self.NOW

    def test_api_down_a_fresh_cache_stands_in_and_says_so(
        self,
        console: tuple[FakeEuler, Path],
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        fake, state = console
        monkeypatch.setenv("MODBOT_MAX_ATTEMPTS", "1")
        cache(state, "bob", self.NOW, timedelta(hours=2))
        cache(state, "host_handle", fake.streamer("host_handle").user_id, timedelta(hours=1))
        fake.world.names[self.OLD] = ("bob", "not asked")
        fake.inject("user_id", Fault(status=503, times=-1))
        code, out = run_cli("mute", "@bob", "5m")
        assert code == 0, out
        assert "note: Euler could not be asked who @bob is now" in out
        assert f"acting on {self.NOW}, the id it had 2h" in out
        assert rows(state)[-1].user_id == self.NOW
        code, out = run_cli("unmute", "@bob", "--json")
        assert code == 0, out
        assert json.loads(out)["user_id"] == self.NOW
        assert "handle cache" in capsys.readouterr().err  # with --json, the note is on stderr

    @pytest.mark.parametrize("cached", [None, timedelta(days=2), timedelta(days=-2)])
    def test_api_down_and_no_recent_name_is_a_clear_error(
        self,
        console: tuple[FakeEuler, Path],
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
        cached: timedelta | None,
    ) -> None:
        fake, state = console
        monkeypatch.setenv("MODBOT_MAX_ATTEMPTS", "1")
        seed(state, [seen("bob", self.OLD)])  # an audit row names nobody
        if cached is not None:
            cache(state, "bob", self.OLD, cached)
        fake.inject("user_id", Fault(status=503, times=-1))
        code, _ = run_cli("ban", "@bob")
        assert code == 1
        err = capsys.readouterr().err
        assert "Euler could not be asked who @bob is now" in err
        assert "try again later, or give the numeric user id" in err
        assert err.count("\n") == 1
        assert not fake.calls_to("ban")
        assert [e.action for e in rows(state)] == ["log"]


class TestIncidents:
    def test_ban_everywhere_is_one_incident_undone_whole(
        self, console: tuple[FakeEuler, Path], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Every configured streamer's live room, each an audit row of one incident (an
        offline one skipped, saying so); undo --incident reverses the done ones; a
        refusal of one row does not stop the others, and the exit code says so."""
        fake, state = console
        fake.add_streamer("second", live=True)
        fake.add_streamer("third", live=True)
        fake.add_streamer("sleepy")  # offline
        monkeypatch.setenv("MODBOT_STREAMERS", "host_handle,second,third,sleepy")
        code, out = run_cli("ban", TROLL, "--everywhere", "--reason", "raid leader")
        assert code == 0, out
        assert "sleepy is not live" in out
        incident = int(out.split("Incident #")[1].split(":")[0])
        made = [e for e in rows(state) if e.incident == incident]
        assert [(e.streamer, e.status) for e in made] == [
            ("host_handle", "done"),
            ("second", "done"),
            ("third", "done"),
            ("sleepy", "skipped"),
        ]
        assert all(e.params["everywhere"] is True for e in made)
        assert {e.params["scope"] for e in made} == {"everywhere"}
        for name in ("host_handle", "second", "third"):
            assert fake.streamer(name).bans == {TROLL}
        code, listed = run_cli("audit", "--incident", str(incident), "--format", "json")
        assert code == 0
        assert [json.loads(x)["incident"] for x in listed.splitlines()] == [incident] * 4
        assert f"incident {incident}" in run_cli("audit", "--incident", str(incident))[1]
        # third's room is gone at the API: its unban fails, the others are undone.
        fake.streamer("third").room_id = "7399999999999999999"
        code, out = run_cli("undo", "--incident", str(incident), "--reason", "wrong viewer")
        assert code == 1, out
        assert out.count("undone by #") == 2
        assert "the reversal failed" in out
        assert fake.streamer("host_handle").bans == set()
        assert fake.streamer("second").bans == set()
        # Again: the undone ones are not undone twice; the failed one is tried again.
        code, out = run_cli("undo", "--incident", str(incident))
        assert code == 1
        (line,) = out.splitlines()
        assert "the reversal failed" in line
        assert len(fake.calls_to("unban", ok_only=True)) == 2
        assert run_cli("undo", "--incident", "999")[0] == 1
        assert run_cli("undo", "--incident", "1", "5")[0] == 2

    def test_the_upgrade_from_the_previous_version_keeps_incidents(self, tmp_path: Path) -> None:
        """A database of version 4 with rows that name incidents in their params (the
        sweeper numbered them so before): after the upgrade the column reads them, the
        table holds them, and a new incident comes after them."""
        path = tmp_path / "audit.db"
        with sqlite3.connect(path) as db:
            for script in MIGRATIONS[:4]:  # version 4: before incidents had a table
                db.executescript(script)
            db.execute("PRAGMA user_version = 4")
            for n, params in enumerate(('{"incident": 7}', '{"incident": 7}', "{}", "{bad")):
                db.execute(
                    "INSERT INTO actions (ts, streamer, rule, action, params, mode, status,"
                    " updated) VALUES (?, 's', 'nuke', 'mute', ?, 'enforce', 'done', 'x')",
                    (f"2026-12-01T00:00:0{n}.000Z", params),
                )

        async def upgrade() -> tuple[list[int | None], int]:
            async with AuditStore.open(path) as store:
                found = await store.query(AuditFilter(limit=None, oldest_first=True))
                seven = await store.query(AuditFilter(incident=7, limit=None))
                assert len(seven) == 2
                number = await new_incident(
                    store, datetime.now(UTC), kind="ban", streamer="everywhere"
                )
            return [e.incident for e in found], number

        incidents, number = anyio.run(upgrade)
        assert incidents == [7, 7, None, None]
        assert number == 8
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA user_version").fetchone()[0] == VERSION


# --- audit stats ---------------------------------------------------------------------------


class TestStats:
    def test_figures_per_rule_and_the_rule_to_review(self, tmp_path: Path) -> None:
        state = tmp_path / "state"
        now = datetime.now(UTC)

        def row(rule: str, action: str = "mute", status: str = "done", **more: Any) -> NewEntry:
            values: dict[str, Any] = {
                "ts": now - timedelta(minutes=5),
                "streamer": "host_handle",
                "rule": rule,
                "action": action,
                "mode": "observe" if status == "observed" else "enforce",
                "status": status,
                "room_id": "7300000000000000001",
                "user_id": TROLL,
                "params": {"duration_s": 300},
            }
            values.update(more)
            return NewEntry(**values)

        ids = seed(
            state,
            [row("caps") for _ in range(4)]
            + [row("caps", status=s) for s in ("observed", "skipped", "failed")]
            + [row("caps", action="log")]
            + [row("links") for _ in range(10)]
            + [row("links", status="pending")]
            + [row("caps", streamer="other")]
            + [row("caps", ts=now - timedelta(days=3))],
        )
        undo_rows = [
            row("undo", action="unmute", undo_of=i, params={}) for i in (ids[0], ids[1], ids[2])
        ]
        undo_rows.append(row("links", action="unmute", params={"expiry_of": ids[10]}))
        seed(state, undo_rows)
        code, out = run_cli(
            "audit", "stats", "--state-dir", str(state), "--streamer", "host_handle", "--json"
        )
        assert code == 0, out
        got = {o["rule"]: o for o in map(json.loads, out.splitlines())}
        assert set(got) == {"caps", "links"}
        caps, links = got["caps"], got["links"]
        assert {k: caps[k] for k in ("fired", "enforced", "observed", "skipped", "failed")} == {
            "fired": 8,
            "enforced": 5,
            "observed": 1,
            "skipped": 1,
            "failed": 1,
        }
        assert (caps["undone"], caps["undo_rate"]) == (3, 0.75)
        assert caps["review"] is not None
        assert (links["fired"], links["enforced"], links["pending"], links["undone"]) == (
            11,
            10,
            1,
            0,
        )
        assert (links["undo_rate"], links["review"]) == (0.0, None)
        code, table = run_cli("audit", "stats", "--state-dir", str(state))
        assert code == 0
        lines = table.splitlines()
        assert lines[0].split()[:3] == ["RULE", "FIRED", "ENFORCED"]
        caps_line = next(line for line in lines if line.startswith("caps"))
        assert caps_line.split()[1:] == ["9", "6", "1", "1", "1", "3", "60%", "REVIEW"]
        assert any(line.startswith("Review caps: 60% of its actions were undone") for line in lines)
        code, old = run_cli("audit", "stats", "--state-dir", str(state), "--since", "7d", "--json")
        assert {o["rule"]: o["fired"] for o in map(json.loads, old.splitlines())}["caps"] == 10
        assert run_cli("audit", "stats", "--state-dir", str(state), "--since", "soon")[0] == 2
        code, none = run_cli("audit", "stats", "--state-dir", str(state), "--streamer", "x")
        assert (code, none) == (0, "No rule fired since 24h.\n")


# --- with `modbot run` running ---------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    """The daemon's clock starts at the wall clock's now: the command's timers (written
    with the system clock) fall due for it when it is moved on."""
    return FakeClock(datetime.now(UTC))


@asynccontextmanager
async def running(daemon: Daemon) -> AsyncIterator[Daemon]:
    async with anyio.create_task_group() as tg:

        async def run() -> None:
            assert await daemon.run() == 0

        tg.start_soon(run)
        await until(daemon.started.is_set)
        yield daemon
        daemon.stop()


async def cli(*argv: str) -> tuple[int, str]:
    """The command in a thread of its own (it runs its own event loop), as a person runs it."""
    return await anyio.to_thread.run_sync(lambda: run_cli(*argv))


def beside_the_daemon(
    fake: FakeEuler,
    fake_server: LoopbackServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    rules_text: str,
) -> Settings:
    """A granted state directory (``tmp_path/state``) and these rules, as the daemon's
    settings and, in the environment, for the commands run beside it."""
    state = tmp_path / "state"
    grant(fake, state)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(rules_text)
    settings = settings_for(fake, fake_server, state, rules_dir=rules)
    for name, value in (
        ("API_BASE_URL", fake_server.url),
        ("WS_URL", fake_server.ws_url),
        ("API_KEY", fake.api_key),
        ("CLIENT_ID", fake.client_id),
        ("CLIENT_SECRET", fake.client_secret),
        ("STREAMERS", "host_handle"),
        ("RULES_DIR", str(rules)),
        ("STATE_DIR", str(state)),
    ):
        monkeypatch.setenv(f"MODBOT_{name}", value)
    return settings


class TestWithTheDaemon:
    async def test_a_ban_by_hand_while_offline_is_made_at_the_next_live(
        self,
        fake: FakeEuler,
        fake_server: LoopbackServer,
        clock: FakeClock,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """`modbot ban` while the streamer is offline calls nothing; the running daemon
        bans the viewer when they join the next live (the remembered ban)."""
        state = tmp_path / "state"
        settings = beside_the_daemon(fake, fake_server, tmp_path, monkeypatch, RULES)
        troll = m.Viewer("troll", TROLL)
        daemon = Daemon(settings, clock=clock, handle_signals=False)
        daemon.rebans.poll = 0.05
        async with running(daemon):
            await fake.wait_connected("host_handle")
            fake.go_offline("host_handle")
            await until(lambda: fake.connections("host_handle") == 0)
            code, out = await cli("ban", TROLL, "--reason", "by hand, offline")
            assert code == 0, out
            assert "remembered for the next live" in out
            assert not fake.calls_to("ban")
            await until(lambda: TROLL in daemon.rebans.memory.users("host_handle"))
            room = fake.go_live("host_handle").room_id
            await until(lambda: fake.connections("host_handle") == 1)
            fake.emit("host_handle", [m.join(room, troll, fake.now_ms())])
            await until(lambda: TROLL in fake.streamer("host_handle").bans)
        (call,) = fake.calls_to("ban", ok_only=True)
        assert room in call.path
        (ban, carried) = sorted(await arows(state), key=lambda e: e.id)
        assert (ban.rule, ban.status, ban.room_id, ban.params["offline"]) == (
            "manual",
            "done",
            "",
            True,
        )
        assert (carried.rule, carried.status, carried.room_id) == ("remembered", "done", room)
        assert carried.params["remembered"] == ban.id

    async def test_a_manual_mute_of_10_minutes_is_lifted_by_the_running_daemons_timer(
        self,
        fake: FakeEuler,
        fake_server: LoopbackServer,
        clock: FakeClock,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Two processes, one audit DB: the command's mute writes its timer, the running
        daemon fires it (once); the daemon's own rule mute is a repeat for the command."""
        state = tmp_path / "state"
        settings = beside_the_daemon(
            fake,
            fake_server,
            tmp_path,
            monkeypatch,
            "version: 1\nrules:\n  - id: caps\n    on: comment\n"
            "    when: {text.words: [shouting]}\n    then: [mute 5m]\n",
        )
        room = fake.streamer("host_handle")
        loud = m.Viewer("loud", FAN)
        fake.world.names[FAN] = ("loud", "Loud")  # TikTok knows who @loud is
        async with running(Daemon(settings, clock=clock, handle_signals=False)) as daemon:
            await fake.wait_connected("host_handle")
            code, out = await cli("mute", TROLL, "10m", "--reason", "by hand")
            assert code == 0, out
            assert room.muted(TROLL, clock.now().timestamp() + 3600)
            # The daemon's rule mutes @loud; the command's same mute is a repeat.
            fake.emit("host_handle", [m.chat(room.room_id, loud, "SHOUTING here", fake.now_ms())])
            await until(lambda: FAN in room.mutes)
            await until(lambda: ("caps", "mute", "done", FAN) in statuses(state))
            code, out = await cli("mute", "@loud", "5m")
            assert code == 0, out
            assert "skipped: the same mute was sent" in out
            assert len([c for c in fake.calls_to("mute") if c.params["user_id"] == FAN]) == 1
            clock.advance(700)
            await until(lambda: TROLL not in room.mutes)
            await until(lambda: [t[1] for t in timers(state)] == ["done"])
            assert daemon.stats.events >= 1
        found = await arows(state)
        unmutes = [e for e in found if e.action == "unmute"]
        assert [(e.rule, e.user_id, e.status) for e in unmutes] == [("manual", TROLL, "done")]
        mute = next(e for e in found if e.rule == "manual" and e.status == "done")
        assert unmutes[0].params["expiry_of"] == mute.id
        assert len(fake.calls_to("unmute")) == 1


# --- on a demo's state directory -----------------------------------------------------------


def test_actions_by_hand_on_a_demo_state_directory(demo_run: DemoRun, tmp_path: Path) -> None:
    """After `modbot demo`, the commands act against the demo's fake server, found by the
    audit log's handles, and are undone there (on a copy of the session's demo run)."""
    assert demo_run.code == 0, demo_run.text
    state = demo_run.copy_to(tmp_path / "demo")
    code, out = run_cli("mute", "@grumpy", "10m", "--state-dir", str(state), "-q", "--json")
    assert code == 0, out
    record = json.loads(out)
    assert (record["rule"], record["action"], record["status"]) == ("manual", "mute", "done")
    code, out = run_cli("say", "thanks for watching", "--state-dir", str(state), "-q")
    assert code == 0, out
    assert "demo's fake Euler server" in out
    code, out = run_cli("undo", str(record["id"]), "--state-dir", str(state), "-q")
    assert code == 0, out
    assert "undone by #" in out
