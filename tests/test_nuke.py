"""`modbot nuke` and raid sweeps, end to end: a daemon on the fake server (real WebSocket,
real SQLite file), the command talking to it through the audit database."""

from __future__ import annotations

import io
import json
import os
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from modbot.actions.sweeper import AT_ONCE
from modbot.audit import incidents, requests
from modbot.audit.query import AuditFilter
from modbot.audit.records import Entry
from modbot.audit.schema import MIGRATIONS, VERSION
from modbot.audit.store import AuditStore, default_db
from modbot.cli import main
from modbot.daemon import Daemon
from modbot.euler.oauth import TokenManager
from modbot.fake import messages as m
from modbot.fake.clock import FakeClock
from modbot.fake.faults import Fault
from modbot.fake.server import FakeEuler
from modbot.loopback import LoopbackServer
from tests.helpers import until
from tests.test_daemon import settings_for

pytestmark = pytest.mark.usefixtures("isolated")

QUIET_RULES = """version: 1
rules:
  - id: never
    on: comment
    when: {text.words: zzqqxxnever}
    then: [log]
"""
RAID_RULES = """version: 1
rules:
  - id: raid
    on: comment
    when:
      repeat: {count: 5, within: 30s, per: room, similarity: 0.8}
    then: [mute 5m]
"""

CHATTER = [
    "hello everyone",
    "what game is this",
    "love the stream tonight",
    "first time here, hi",
    "lol that was close",
    "where are you from?",
    "can you play the song again",
    "gg",
    "my cat is watching too",
    "how long have you been streaming",
    "that jump was insane",
    "greetings from brazil",
    "is this ranked or casual",
    "drink some water",
    "the new outfit looks great",
    "brb dinner",
    "who won the last round",
    "nice setup, what mic is that",
    "happy birthday to the mod",
    "good night all",
]


@pytest.fixture
def clock() -> FakeClock:
    """The fake's time starts now: `modbot undo` in a thread reads the grant by the
    system's clock."""
    return FakeClock(datetime.now(UTC))


@pytest.fixture
def cli_env(
    isolated: None, fake: FakeEuler, fake_server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `modbot undo` needs to reach the fake (it calls the API; nuke does not)."""
    del isolated  # first: it clears the MODBOT_ settings
    for name, value in {
        "MODBOT_API_BASE_URL": fake_server.url,
        "MODBOT_WS_URL": fake_server.ws_url,
        "MODBOT_API_KEY": fake.api_key,
        "MODBOT_CLIENT_ID": fake.client_id,
        "MODBOT_CLIENT_SECRET": fake.client_secret,
        "MODBOT_STREAMERS": "host_handle",
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def state(tokens: TokenManager, tmp_path: Path) -> Path:
    del tokens  # the grant is stored in tmp_path/state
    return tmp_path / "state"


def rules_dir(tmp_path: Path, text: str) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "r.yaml").write_text(text)
    return rules


def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), stdout=out)
    return code, out.getvalue()


async def cli(*argv: str) -> tuple[int, str]:
    """The command in a thread of its own (it runs its own event loop), as a person runs it."""
    return await anyio.to_thread.run_sync(lambda: run_cli(*argv))


@asynccontextmanager
async def running(daemon: Daemon) -> AsyncIterator[Daemon]:
    async with anyio.create_task_group() as tg:

        async def run() -> None:
            assert await daemon.run() == 0

        tg.start_soon(run)
        await until(daemon.started.is_set)
        yield daemon
        daemon.stop()


async def actions(state: Path) -> list[Entry]:
    async with AuditStore.open(default_db(state)) as store:
        return await store.query(AuditFilter(limit=None, oldest_first=True))


def chat(fake: FakeEuler, *said: tuple[m.Viewer, str]) -> None:
    room = fake.streamer("host_handle").room_id
    fake.emit("host_handle", [m.chat(room, v, text, fake.now_ms()) for v, text in said])


def viewers(prefix: str, count: int, base: int) -> list[m.Viewer]:
    return [m.Viewer(f"{prefix}{i}", str(base + i)) for i in range(count)]


class TestNuke:
    async def test_a_nuke_reaches_past_and_new_comments_once_each_then_stops(
        self,
        fake: FakeEuler,
        fake_server: LoopbackServer,
        clock: FakeClock,
        state: Path,
        tmp_path: Path,
    ) -> None:
        """Every viewer whose comment of the last --since matches is muted, and each new
        matching comment's viewer within --for; each viewer once, never a moderator or the
        streamer; after --for nothing more; every action in one incident."""
        settings = settings_for(
            fake, fake_server, state, rules_dir=rules_dir(tmp_path, QUIET_RULES)
        )
        room = fake.streamer("host_handle")
        old, a, b, c, late, later = viewers("v", 6, 6_820_000_000_000_000_000)
        mod = m.Viewer("mod", "6833333333333333333", moderator=True)
        fan = m.Viewer("fan", "6844444444444444444")
        async with running(Daemon(settings, clock=clock, handle_signals=False)) as daemon:
            await fake.wait_connected("host_handle")
            chat(fake, (old, "free coins here"))
            clock.advance(180)  # older than --since 2m
            chat(
                fake,
                (a, "FREE C0INS at my page"),
                (b, "f r e e coins!!"),
                (b, "free coins again"),  # the same viewer twice: one mute
                (mod, "free coins is a scam, do not click"),  # a moderator
                (room.owner, "no free coins here"),  # the streamer (modbot speaks as it)
                (fan, "carefree coinstar"),  # not the phrase as words
            )
            await until(lambda: daemon.sweeper.recent.statistics().comments >= 7)
            code, out = await cli(
                "nuke", "free coins", "--since", "2m", "--then", "mute 5m", "--for", "5m",
                "--state-dir", str(state), "--reason", "scam wave", "--json",
            )  # fmt: skip
            assert code == 0, out
            answer = json.loads(out)
            assert answer["ok"] is True
            assert answer["past"] == 2
            assert answer["counts"] == {"done": 2}
            incident = answer["incident"]
            assert set(room.mutes) == {a.user_id, b.user_id}
            # New comments within --for: a new viewer is reached, an old one not again.
            chat(fake, (c, "get free coins now"), (a, "free coins!!"), (fan, "hello"))
            await until(lambda: c.user_id in room.mutes)
            clock.advance(120)
            chat(fake, (late, "free coins late but within"))
            await until(lambda: late.user_id in room.mutes)
            clock.advance(200)  # past --for (5m from the nuke)
            chat(fake, (later, "free coins after the end"))
            await until(lambda: daemon.stats.events >= 12)
            await until(lambda: daemon.sweeper.recent.statistics().comments >= 11)
        assert later.user_id not in room.mutes
        assert fan.user_id not in room.mutes
        assert old.user_id not in room.mutes
        assert len(fake.calls_to("mute")) == 4
        rows = [e for e in await actions(state) if e.rule == "nuke"]
        assert sorted(e.user_id for e in rows) == sorted(
            [a.user_id, b.user_id, c.user_id, late.user_id]
        )
        assert {e.params["incident"] for e in rows} == {incident}
        assert {e.status for e in rows} == {"done"}
        assert {e.reason for e in rows} == {"scam wave"}
        assert all(e.params["by"] for e in rows)
        assert all(e.params["matched_msg_id"] for e in rows)
        async with AuditStore.open(default_db(state)) as store:
            recorded = await incidents.get_incident(store, incident)
        assert recorded is not None
        assert recorded.kind == "nuke"
        assert recorded.made_by == rows[0].params["by"]
        assert "free coins" in recorded.detail

    @pytest.mark.usefixtures("cli_env")
    async def test_a_nuke_is_undone_whole_by_its_incident(
        self,
        fake: FakeEuler,
        fake_server: LoopbackServer,
        clock: FakeClock,
        state: Path,
        tmp_path: Path,
    ) -> None:
        """`modbot undo --incident N` lifts every mute of the nuke, past and new comments
        alike, each once; a second undo finds nothing left; a mute of another incident
        stays."""
        settings = settings_for(
            fake, fake_server, state, rules_dir=rules_dir(tmp_path, QUIET_RULES)
        )
        room = fake.streamer("host_handle")
        a, b, c, d = viewers("u", 4, 6_880_000_000_000_000_000)
        async with running(Daemon(settings, clock=clock, handle_signals=False)) as daemon:
            await fake.wait_connected("host_handle")
            chat(fake, (a, "buy followers cheap"), (b, "BUY F0LLOWERS"), (d, "dm for promo"))
            await until(lambda: daemon.sweeper.recent.statistics().comments >= 3)
            code, out = await cli(
                "nuke", "buy followers", "--for", "5m", "--state-dir", str(state), "--json"
            )
            assert code == 0, out
            incident = json.loads(out)["incident"]
            code, out = await cli(
                "nuke", "dm for promo", "--for", "0", "--state-dir", str(state), "--json"
            )
            assert code == 0, out
            other = json.loads(out)["incident"]
            assert other != incident
            chat(fake, (c, "buy followers here"))
            await until(lambda: c.user_id in room.mutes)
            assert set(room.mutes) == {a.user_id, b.user_id, c.user_id, d.user_id}
            code, out = await cli(
                "undo", "--incident", str(incident), "--state-dir", str(state), "--reason", "oops"
            )
            assert code == 0, out
            assert out.count("undone by #") == 3
            assert set(room.mutes) == {d.user_id}
            code, out = await cli("undo", "--incident", str(incident), "--state-dir", str(state))
            assert code == 0, out
            assert "Nothing to undo" in out
        assert len(fake.calls_to("unmute")) == 3

    async def test_a_regex_nuke_bans(
        self,
        fake: FakeEuler,
        fake_server: LoopbackServer,
        clock: FakeClock,
        state: Path,
        tmp_path: Path,
    ) -> None:
        """/regex/ is RE2 on the raw text, as text.regex; --then ban bans; --for 0 only
        looks back."""
        settings = settings_for(
            fake, fake_server, state, rules_dir=rules_dir(tmp_path, QUIET_RULES)
        )
        room = fake.streamer("host_handle")
        a, b, c = viewers("r", 3, 6_830_000_000_000_000_000)
        async with running(Daemon(settings, clock=clock, handle_signals=False)) as daemon:
            await fake.wait_connected("host_handle")
            chat(fake, (a, "visit SCAM-123.example"), (b, "scam 1 2 3"), (c, "scam-9"))
            await until(lambda: daemon.sweeper.recent.statistics().comments >= 3)
            code, out = await cli(
                "nuke", r"/(?i)scam-\d+/", "--then", "ban", "--for", "0",
                "--state-dir", str(state),
            )  # fmt: skip
            assert code == 0, out
            assert "Incident #" in out
            assert "modbot undo --incident" in out
            assert room.bans == {a.user_id, c.user_id}
            chat(fake, (b, "scam-77"))
            await until(lambda: daemon.sweeper.recent.statistics().comments >= 4)
        assert room.bans == {a.user_id, c.user_id}

    async def test_a_hostile_request_row_is_answered_and_the_daemon_goes_on(
        self,
        fake: FakeEuler,
        fake_server: LoopbackServer,
        clock: FakeClock,
        state: Path,
        tmp_path: Path,
    ) -> None:
        """A request row anyone with the file could write (not text, huge, an RE2 error,
        an unknown kind, a streamer it does not watch) is answered failed, one by one, and
        a good nuke after them works."""
        settings = settings_for(
            fake, fake_server, state, rules_dir=rules_dir(tmp_path, QUIET_RULES)
        )
        room = fake.streamer("host_handle")
        (a,) = viewers("h", 1, 6_840_000_000_000_000_000)
        good: dict[str, object] = {"then": "mute 5m", "since_s": 120.0, "for_s": 0.0}
        bad_args: list[dict[str, Any]] = [
            {**good, "pattern": 5},
            {**good, "pattern": "x" * 10_000},
            {**good, "pattern": "/(unclosed/"},
            {**good, "pattern": "/.*/"},
            {**good, "pattern": "   "},
            {**good, "pattern": "spam", "since_s": -1},
            {**good, "pattern": "spam", "then": "reply hi"},
            {**good, "pattern": "spam", "streamer": "someone_else"},
            {"pattern": "spam"},
        ]
        async with running(Daemon(settings, clock=clock, handle_signals=False)) as daemon:
            await fake.wait_connected("host_handle")
            chat(fake, (a, "spam spam"))
            await until(lambda: daemon.sweeper.recent.statistics().comments >= 1)
            assert daemon.store is not None
            store = daemon.store
            ids = [await requests.submit(store, "nuke", args, clock.now()) for args in bad_args]
            await store.execute(
                "INSERT INTO requests (ts, kind, args, updated) VALUES ('x', 'drop', '[', 'x')"
            )
            await until_answered(store, ids)
            for request_id in ids:
                found = await requests.get(store, request_id)
                assert found is not None
                assert found.status == "failed", found
                assert found.answer is not None
                assert found.answer["error"]
            code, out = await cli("nuke", "spam", "--for", "0", "--state-dir", str(state), "--json")
            assert code == 0, out
        assert a.user_id in room.mutes
        assert daemon.sweeper.statistics().errors == 0


class TestHostileChat:
    async def test_hostile_comments_while_a_nuke_runs_stop_nothing(
        self,
        fake: FakeEuler,
        fake_server: LoopbackServer,
        clock: FakeClock,
        state: Path,
        tmp_path: Path,
    ) -> None:
        """Lone surrogates, bidi controls, zalgo, 10,000 characters, an empty text: the
        nuke reaches the matching ones and the rest pass; nothing fails."""
        settings = settings_for(
            fake, fake_server, state, rules_dir=rules_dir(tmp_path, QUIET_RULES)
        )
        room = fake.streamer("host_handle")
        texts = [
            "spam \ud800 here",
            "\u202espam\u202c",
            "s\u0300\u0301p\u0302a\u0303m" + "\u0300" * 500,
            "spam " + "x" * 10_000,
            "",
            "\x00\x1b[2Jspam",
            "no match \udfff at all",
        ]
        people = viewers("x", len(texts), 6_890_000_000_000_000_000)
        async with running(Daemon(settings, clock=clock, handle_signals=False)) as daemon:
            await fake.wait_connected("host_handle")
            code, out = await cli("nuke", "spam", "--for", "5m", "--state-dir", str(state))
            assert code == 0, out
            chat(fake, *zip(people, texts, strict=True))
            await until(lambda: daemon.stats.events >= len(texts))
            await until(lambda: len(room.mutes) >= 4)
            await until(lambda: daemon.sweeper.statistics().acted >= len(room.mutes))
        assert people[-1].user_id not in room.mutes
        assert people[4].user_id not in room.mutes
        assert daemon.sweeper.statistics().errors == 0
        assert daemon.stats.errors == 0


async def until_answered(store: AuditStore, ids: list[int]) -> None:
    async def answered() -> bool:
        for request_id in ids:
            found = await requests.get(store, request_id)
            if found is None or found.status in ("pending", "taken"):
                return False
        return True

    with anyio.fail_after(10):
        while not await answered():  # noqa: ASYNC110 (polls the database)
            await anyio.sleep(0.05)


class TestNukeCommand:
    def test_without_a_running_daemon_it_says_so_and_withdraws_the_request(
        self, tmp_path: Path
    ) -> None:
        """No daemon takes the request: exit 1, one clear sentence, and the request is
        expired (a daemon that starts later does not carry it out)."""
        state = tmp_path / "state"

        async def make() -> None:
            async with AuditStore.open(default_db(state)):
                pass

        anyio.run(make)
        hostile = "raid \u202eleader\u200b  again"  # a bidirectional override, invisible
        code, out = run_cli(
            "nuke", "free coins", "--state-dir", str(state), "--wait", "0.3", "--reason", hostile
        )
        assert code == 1
        assert out == ""

        async def read() -> list[requests.Request]:
            async with AuditStore.open(default_db(state)) as store:
                rows = await store.execute("SELECT id FROM requests")
                return [r for (i,) in rows if (r := await requests.get(store, i)) is not None]

        (request,) = anyio.run(read)
        assert request.status == "expired"
        assert request.args["reason"] == "raid leader again"  # cleaned as for every action

    def test_no_daemon_ever_ran_there(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """No audit database at all: exit 1, and the sentence says no daemon runs there."""
        code, _ = run_cli("nuke", "spam", "--state-dir", str(tmp_path / "none"))
        assert code == 1
        assert "no modbot daemon is running" in capsys.readouterr().err

    @pytest.mark.parametrize(
        ("pattern", "said"),
        [
            ("", "the phrase is empty"),
            ("   ", "the phrase is empty"),
            ("x" * 100_000, "at most 1,000"),
            ("/(unclosed/", "RE2 refuses"),
            ("//", "is empty"),
            ("/.*/", "matches an empty comment"),
            ("/a|/", "matches an empty comment"),
            ("!!! ???", "letter or digit"),
        ],
    )
    def test_a_hostile_pattern_is_refused_before_anything_is_asked(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], pattern: str, said: str
    ) -> None:
        """An empty phrase, a 100,000-character one, a regex RE2 refuses or one that
        matches every comment: a usage error (exit 2) with why, and no request."""
        state = tmp_path / "state"
        code, _ = run_cli("nuke", pattern, "--state-dir", str(state))
        assert code == 2
        err = capsys.readouterr().err
        assert said in err
        assert len(err) < 600
        assert not state.exists()

    @pytest.mark.parametrize(
        ("option", "value", "said"),
        [
            ("--then", "reply hi", "--then"),
            ("--then", "comments", "--then"),
            ("--then", "mute", "needs a duration"),
            ("--since", "1h", "at most 15m"),
            ("--since", "soon", "duration"),
            ("--for", "5 minutes", "duration"),
            ("--reason", "r" * 10_000, "--reason: at most 500 characters"),
        ],
    )
    def test_bad_options_are_usage_errors(
        self,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        option: str,
        value: str,
        said: str,
    ) -> None:
        code, _ = run_cli("nuke", "spam", option, value, "--state-dir", str(tmp_path / "s"))
        assert code == 2
        assert said in capsys.readouterr().err


class TestRaidSweep:
    @pytest.mark.usefixtures("cli_env")
    async def test_a_mutated_raid_from_ten_accounts_is_muted_whole_in_one_incident(
        self,
        fake: FakeEuler,
        fake_server: LoopbackServer,
        clock: FakeClock,
        state: Path,
        tmp_path: Path,
    ) -> None:
        """A per-room repeat rule trips on the fifth copy: the four before it and the five
        after are muted too, one incident; ordinary chat meanwhile is not."""
        settings = settings_for(fake, fake_server, state, rules_dir=rules_dir(tmp_path, RAID_RULES))
        room = fake.streamer("host_handle")
        raiders = viewers("raider", 10, 6_850_000_000_000_000_000)
        chatters = viewers("chatter", 5, 6_860_000_000_000_000_000)
        texts = [
            "JOIN discord gg slash freestuff for FREE nitro now",
            "join discord gg slash freestuff for free nitro now!!",
            "JOIN discrd gg slash freestuff for FREE nitro now",
            "j o i n discord gg slash freestuff for FREE nitro now",
            "JOIN discord gg slash fre3stuff for FREE nitro now 1",
            "JOIN discord gg slash freestuff for FREE nitro noww",
            "JOIN discord gg/slash freestuff for FREE nitro now 2",
            "JOIN d1scord gg slash freestuff for FREE nitro now",
            "JOIN discord gg slash freestuff for FREE nitr0 now",
            "join discord gg slash freestuff 4 FREE nitro now",
        ]
        ordinary = [
            "hello everyone",
            "what game is this",
            "love the stream tonight",
            "first time here, hi",
            "lol that was close",
        ]
        async with running(Daemon(settings, clock=clock, handle_signals=False)) as daemon:
            await fake.wait_connected("host_handle")
            said: list[tuple[m.Viewer, str]] = []
            for i, (raider, text) in enumerate(zip(raiders, texts, strict=True)):
                said.append((raider, text))
                if i < len(chatters):
                    said.append((chatters[i], ordinary[i]))
            for pair in said:
                chat(fake, pair)
                clock.advance(0.5)
            await until(lambda: {r.user_id for r in raiders} <= set(room.mutes))
            await until(lambda: daemon.sweeper.recent.statistics().comments >= 15)
            assert not {c.user_id for c in chatters} & set(room.mutes)
            assert len(fake.calls_to("mute")) == 10
            rows = [e for e in await actions(state) if e.action == "mute"]
            assert sorted(e.user_id for e in rows) == sorted(r.user_id for r in raiders)
            (incident,) = {e.params["incident"] for e in rows}
            assert {e.rule for e in rows} == {"raid"}
            assert {e.status for e in rows} == {"done"}
            code, out = await cli("undo", "--incident", str(incident), "--state-dir", str(state))
            assert code == 0, out
            assert out.count("undone by #") == 10
            assert room.mutes == {}

    async def test_ordinary_chat_starts_no_sweep(
        self,
        fake: FakeEuler,
        fake_server: LoopbackServer,
        clock: FakeClock,
        state: Path,
        tmp_path: Path,
    ) -> None:
        """Different texts from many viewers trip nothing and mute nobody."""
        settings = settings_for(fake, fake_server, state, rules_dir=rules_dir(tmp_path, RAID_RULES))
        room = fake.streamer("host_handle")
        chatters = viewers("c", len(CHATTER), 6_870_000_000_000_000_000)
        async with running(Daemon(settings, clock=clock, handle_signals=False)) as daemon:
            await fake.wait_connected("host_handle")
            chat(fake, *zip(chatters, CHATTER, strict=True))
            await until(lambda: daemon.sweeper.recent.statistics().comments >= len(CHATTER))
            assert daemon.sweeper.statistics().started == 0
        assert room.mutes == {}


class TestMigration:
    async def test_a_version_2_database_gains_the_requests_table(self, tmp_path: Path) -> None:
        """The previous schema is upgraded in place: its rows stay, requests work."""
        path = tmp_path / "audit.db"
        db = sqlite3.connect(path)
        for script in MIGRATIONS[:2]:
            db.executescript(script)
        db.execute("PRAGMA user_version = 2")
        db.execute(
            "INSERT INTO actions (ts, streamer, rule, action, mode, status, updated)"
            " VALUES ('2026-01-01T00:00:00.000Z', 'h', 'slurs', 'ban', 'enforce', 'done', 'x')"
        )
        db.commit()
        db.close()
        clock = FakeClock()
        async with AuditStore.open(path) as store:
            ((version,),) = await store.execute("PRAGMA user_version")
            assert version == VERSION >= 3
            assert await store.count() == 1
            request_id = await requests.submit(store, "nuke", {"pattern": "x"}, clock.now())
            assert await requests.take(store, request_id, clock.now(), "me")
            assert not await requests.take(store, request_id, clock.now(), "another")
            assert not await requests.expire(store, request_id, clock.now())


def nuke_args(pattern: str, for_s: float) -> dict[str, Any]:
    return {"pattern": pattern, "then": "mute 5m", "since_s": 120.0, "for_s": for_s}


class TestStopping:
    @pytest.mark.usefixtures("cli_env")
    async def test_undo_of_a_nuke_stops_it(
        self,
        fake: FakeEuler,
        fake_server: LoopbackServer,
        clock: FakeClock,
        state: Path,
        tmp_path: Path,
    ) -> None:
        """`undo --incident N` of a nuke still running ends its sweep: a matching comment
        after the undo is not acted on (before, the sweep muted on until its --for)."""
        settings = settings_for(
            fake, fake_server, state, rules_dir=rules_dir(tmp_path, QUIET_RULES)
        )
        room = fake.streamer("host_handle")
        a, c = viewers("s", 2, 6_890_000_000_000_000_000)
        async with running(Daemon(settings, clock=clock, handle_signals=False)) as daemon:
            await fake.wait_connected("host_handle")
            chat(fake, (a, "buy followers cheap"))
            await until(lambda: daemon.sweeper.recent.statistics().comments >= 1)
            code, out = await cli(
                "nuke", "buy followers", "--for", "5m", "--state-dir", str(state), "--json"
            )
            assert code == 0, out
            incident = json.loads(out)["incident"]
            assert len(daemon.sweeper.sweeps) == 1
            code, out = await cli("undo", "--incident", str(incident), "--state-dir", str(state))
            assert code == 0, out
            assert out.count("undone by #") == 1
            await until(lambda: not daemon.sweeper.sweeps)
            chat(fake, (c, "buy followers here"))
            await until(lambda: daemon.sweeper.recent.statistics().comments >= 2)
            await until(lambda: daemon.stats.events >= 2)
        assert c.user_id not in room.mutes
        assert [e.user_id for e in await actions(state) if e.rule == "nuke"] == [a.user_id]
        assert len(fake.calls_to("mute")) == 1
        async with AuditStore.open(default_db(state)) as store:
            assert await incidents.stopped_among(store, [incident]) == {incident}

    async def test_a_target_queued_before_the_stop_is_not_acted_on(
        self,
        fake: FakeEuler,
        fake_server: LoopbackServer,
        clock: FakeClock,
        state: Path,
        tmp_path: Path,
    ) -> None:
        """A comment the sweep reached before its incident was stopped, still waiting for
        a free slot, is not acted on when its turn comes (_act looks before each call)."""
        settings = settings_for(
            fake, fake_server, state, rules_dir=rules_dir(tmp_path, QUIET_RULES)
        )
        room = fake.streamer("host_handle")
        people = viewers("q", AT_ONCE + 1, 6_891_000_000_000_000_000)
        async with running(Daemon(settings, clock=clock, handle_signals=False)) as daemon:
            await fake.wait_connected("host_handle")
            assert daemon.store is not None
            store = daemon.store
            request_id = await requests.submit(
                store, "nuke", nuke_args("buy followers", 300.0), clock.now()
            )
            await until_answered(store, [request_id])
            found = await requests.get(store, request_id)
            assert found is not None
            assert found.answer is not None
            incident = found.answer["incident"]
            # The first AT_ONCE mutes hang at the fake: the last target waits its turn.
            fake.inject("mute", Fault(latency=1.0, times=AT_ONCE))
            chat(fake, *((p, f"buy followers {i}") for i, p in enumerate(people)))
            await until(lambda: daemon.sweeper.statistics().acted >= AT_ONCE)
            assert await incidents.stop_incident(store, incident, clock.now())
            await until(lambda: daemon.sweeper.statistics().acted >= AT_ONCE + 1)
            await until(lambda: daemon.sweeper._limit.value == AT_ONCE)
            assert not daemon.sweeper.sweeps
        assert people[-1].user_id not in room.mutes
        rows = [e for e in await actions(state) if e.rule == "nuke"]
        assert people[-1].user_id not in {e.user_id for e in rows}
        assert len(rows) == AT_ONCE

    async def test_a_daemon_stopped_mid_nuke_answers_its_request(
        self,
        fake: FakeEuler,
        fake_server: LoopbackServer,
        clock: FakeClock,
        state: Path,
        tmp_path: Path,
    ) -> None:
        """A stop while the nuke's calls are out still answers the request (failed, with
        the incident): the command is not left waiting on a row `taken` for ever."""
        settings = settings_for(
            fake, fake_server, state, rules_dir=rules_dir(tmp_path, QUIET_RULES)
        )
        (a,) = viewers("z", 1, 6_892_000_000_000_000_000)
        fake.inject("mute", Fault(latency=3.0, times=1))
        async with running(Daemon(settings, clock=clock, handle_signals=False)) as daemon:
            await fake.wait_connected("host_handle")
            chat(fake, (a, "free coins here"))
            await until(lambda: daemon.sweeper.recent.statistics().comments >= 1)
            assert daemon.store is not None
            store = daemon.store
            request_id = await requests.submit(
                store, "nuke", nuke_args("free coins", 0.0), clock.now()
            )
            await until(lambda: daemon.sweeper.statistics().acted >= 1)
            # the mute's call is out (it hangs at the fake): stop now
        async with AuditStore.open(default_db(state)) as store:
            found = await requests.get(store, request_id)
        assert found is not None
        assert found.status == "failed", found
        assert found.answer is not None
        incident = found.answer["incident"]
        assert found.answer["error"] == (
            f"the daemon stopped during the nuke; incident #{incident}"
        )

    async def test_a_request_taken_by_a_dead_daemon_expires_at_the_next_start(
        self, tmp_path: Path
    ) -> None:
        """A `taken` row whose daemon died is expired at a start; one a live process on
        this machine took is left to it."""
        dead = await anyio.run_process([sys.executable, "-c", "import os; print(os.getpid())"])
        dead_pid = int(dead.stdout)
        host = socket.gethostname()
        clock = FakeClock()
        async with AuditStore.open(tmp_path / "audit.db") as store:
            ids = [
                await requests.submit(store, "nuke", nuke_args(p, 0.0), clock.now())
                for p in ("one", "two", "three")
            ]
            assert await requests.take(store, ids[0], clock.now(), f"{host}:{dead_pid}")
            assert await requests.take(store, ids[1], clock.now(), f"{host}:{os.getppid()}")
            assert await requests.take(store, ids[2], clock.now(), "not a daemon")
            clock.advance(5)
            assert await requests.expire_stale(store, clock.now()) == 2
            rows = [await requests.get(store, i) for i in ids]
        assert [r.status if r else None for r in rows] == ["expired", "taken", "expired"]
        assert rows[0] is not None
        assert rows[0].answer == {"error": "the daemon that took it stopped before it answered"}
