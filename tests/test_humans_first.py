"""Humans first, end to end: moderators' own actions arrive on the real WebSocket from the
fake server, are recorded as done by a moderator in a real SQLite file, and modbot's
timers never contradict them; hostile member messages are counted and skipped."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from modbot.actions.humans import is_own
from modbot.daemon import Daemon
from modbot.euler.decode import Decoder
from modbot.euler.oauth import TokenManager, TokenStore
from modbot.euler.tokens import token_set_from_answer
from modbot.events import User
from modbot.fake import messages as m
from modbot.fake.clock import FakeClock
from modbot.fake.moderators import echo_own_calls, moderator_acts
from modbot.fake.server import FakeEuler
from modbot.loopback import LoopbackServer
from tests.helpers import until
from tests.test_daemon import settings_for
from tests.test_nuke import actions, rules_dir, running

pytestmark = pytest.mark.usefixtures("isolated")

MUTE_RULES = """version: 1
rules:
  - id: rude
    on: comment
    when: {text.words: zzrude}
    then: [mute 10m]
"""
COMMENTS_RULES = """version: 1
rules:
  - id: calm
    on: comment
    when: {text.words: zzcalm}
    then: [{comments: {enabled: false, for: 2m}}]
"""
MOD = m.Viewer("a_mod", "6891000000000000099", moderator=True)
RUDE = m.Viewer("rude_one", "6891000000000000001")
OTHER = m.Viewer("rude_two", "6891000000000000002")


@pytest.fixture
def state(tokens: TokenManager, tmp_path: Path) -> Path:
    del tokens
    return tmp_path / "state"


def say(fake: FakeEuler, viewer: m.Viewer, text: str) -> None:
    room = fake.streamer("host_handle").room_id
    fake.emit("host_handle", [m.chat(room, viewer, text, fake.now_ms())])


def timers(state: Path) -> list[tuple[str, str, str, str | None]]:
    with sqlite3.connect(state / "audit.db") as conn:
        return list(conn.execute("SELECT kind, user_id, status, error FROM timers ORDER BY id"))


def daemon_for(
    fake: FakeEuler, server: LoopbackServer, state: Path, clock: FakeClock, rules: Path
) -> Daemon:
    return Daemon(
        settings_for(fake, server, state, rules_dir=rules), clock=clock, handle_signals=False
    )


SCOPES = (
    "webcast:bulk_live_check",
    "webcast:chat",
    "webcast:mute",
    "webcast:ban",
    "webcast:comments",
    "webcast:moderators",
    "user:info",
)


class TestTimersRespectModerators:
    async def test_a_human_mute_after_modbots_survives_its_unmute_timer(
        self,
        fake: FakeEuler,
        fake_server: LoopbackServer,
        clock: FakeClock,
        state: Path,
        tmp_path: Path,
    ) -> None:
        """modbot mutes two viewers for 10 minutes; a moderator mutes one of them again
        after; at expiry the other is unmuted, the first is not: the timer ends with a
        note, and a skipped unmute row says why. The streamer's own account (modbot's)
        acting is modbot's echo: not recorded as a moderator."""
        daemon = daemon_for(fake, fake_server, state, clock, rules_dir(tmp_path, MUTE_RULES))
        room = fake.streamer("host_handle")
        async with running(daemon):
            await fake.wait_connected("host_handle")
            say(fake, RUDE, "zzrude")
            say(fake, OTHER, "zzrude")
            await until(lambda: len(fake.calls_to("mute", ok_only=True)) == 2)
            clock.advance(5)
            moderator_acts(fake, "host_handle", "mute", operator=room.owner, target=OTHER)
            moderator_acts(fake, "host_handle", "mute", operator=MOD, target=RUDE)
            await until(lambda: daemon.humans.counts["mute"] == 1)
            await until(lambda: daemon.humans.counts["own"] == 1)
            await until(lambda: any(r.rule == "moderator" for r in rows_now(state)))
            clock.advance(600)
            await until(lambda: all(t[2] != "pending" for t in timers(state)), timeout=15)
        unmutes = [c.params["user_id"] for c in fake.calls_to("unmute", ok_only=True)]
        assert unmutes == [OTHER.user_id]
        assert RUDE.user_id in room.mutes
        by_user = {t[1]: t for t in timers(state)}
        assert by_user[OTHER.user_id][2] == "done"
        kind, _, status, note = by_user[RUDE.user_id]
        assert (kind, status) == ("unmute", "cancelled")
        assert note is not None
        assert "the human's mute wins" in note
        rows = await actions(state)
        (human,) = [r for r in rows if r.rule == "moderator"]
        assert (human.action, human.status, human.user_id) == ("mute", "done", RUDE.user_id)
        assert human.params["operator_id"] == MOD.user_id
        assert human.params["operator"] == MOD.unique_id
        (skipped,) = [r for r in rows if r.action == "unmute" and r.status == "skipped"]
        assert skipped.user_id == RUDE.user_id
        assert "the human's mute wins" in skipped.detail

    async def test_comments_a_human_turned_off_after_modbot_stay_off(
        self,
        fake: FakeEuler,
        fake_server: LoopbackServer,
        clock: FakeClock,
        state: Path,
        tmp_path: Path,
    ) -> None:
        """modbot turns comments off for 2 minutes; a moderator turns them on and off
        again after; the comments-on timer does not turn them on."""
        daemon = daemon_for(fake, fake_server, state, clock, rules_dir(tmp_path, COMMENTS_RULES))
        room = fake.streamer("host_handle")
        async with running(daemon):
            await fake.wait_connected("host_handle")
            say(fake, RUDE, "zzcalm")
            await until(lambda: not room.comments_enabled)
            clock.advance(5)
            moderator_acts(fake, "host_handle", "comments_on", operator=MOD)
            clock.advance(5)
            moderator_acts(fake, "host_handle", "comments_off", operator=MOD)
            await until(lambda: daemon.humans.counts["comments_off"] == 1)
            await until(lambda: len([r for r in rows_now(state) if r.rule == "moderator"]) == 2)
            clock.advance(130)
            await until(lambda: all(t[2] != "pending" for t in timers(state)), timeout=15)
        toggles = [c.params.get("enabled") for c in fake.calls_to("toggle_comments")]
        assert toggles == ["false"]
        assert not room.comments_enabled
        ((kind, _, status, note),) = timers(state)
        assert (kind, status) == ("comments_on", "cancelled")
        assert note is not None
        assert "they stay off" in note
        humans = [r for r in await actions(state) if r.rule == "moderator"]
        assert [(r.action, r.params["enabled"]) for r in humans] == [
            ("comments", True),
            ("comments", False),
        ]

    async def test_without_user_info_or_an_owner_modbots_echoed_mute_keeps_its_timer(
        self,
        fake: FakeEuler,
        fake_server: LoopbackServer,
        clock: FakeClock,
        state: Path,
        tmp_path: Path,
        token_store: TokenStore,
    ) -> None:
        """The grant lacks user:info and roomInfo names no owner; TikTok echoes modbot's
        own mute (operator: the streamer's account, not flagged as the owner). The echo
        is modbot's own: no moderator row, and the 10-minute mute is lifted at expiry."""
        answer = fake.issue_tokens([s for s in SCOPES if s != "user:info"])
        token_store.save(token_set_from_answer(answer, clock.now().timestamp()))
        room = fake.streamer("host_handle")
        room.room_info_owner = False
        echo_own_calls(fake)
        daemon = daemon_for(fake, fake_server, state, clock, rules_dir(tmp_path, MUTE_RULES))
        async with running(daemon):
            await fake.wait_connected("host_handle")
            say(fake, RUDE, "zzrude")
            await until(lambda: daemon.humans.counts["own"] == 1)
            clock.advance(600)
            await until(lambda: all(t[2] != "pending" for t in timers(state)), timeout=15)
            await until(lambda: daemon.humans.counts["own"] == 2)
        assert [c.params["user_id"] for c in fake.calls_to("unmute", ok_only=True)] == [
            RUDE.user_id
        ]
        assert RUDE.user_id not in room.mutes
        ((kind, _, status, _),) = timers(state)
        assert (kind, status) == ("unmute", "done")
        assert not [r for r in await actions(state) if r.rule == "moderator"]
        assert daemon.humans.counts["mute"] == 0

    async def test_comments_turned_on_by_modbots_own_account_are_on_for_the_gate(
        self,
        fake: FakeEuler,
        fake_server: LoopbackServer,
        clock: FakeClock,
        state: Path,
        tmp_path: Path,
    ) -> None:
        """modbot turns comments off; `modbot comments on` from the CLI (the same
        account: its echo is modbot's own) turns them on; the rule's next `comments off`
        is called, not skipped as "already off"."""
        daemon = daemon_for(fake, fake_server, state, clock, rules_dir(tmp_path, COMMENTS_RULES))
        room = fake.streamer("host_handle")
        async with running(daemon):
            await fake.wait_connected("host_handle")
            say(fake, RUDE, "zzcalm")
            await until(lambda: not room.comments_enabled)
            clock.advance(5)
            moderator_acts(fake, "host_handle", "comments_on", operator=room.owner)
            await until(lambda: daemon.humans.counts["own"] == 1)
            assert room.comments_enabled
            say(fake, OTHER, "zzcalm")
            await until(lambda: not room.comments_enabled)
        toggles = [c.params.get("enabled") for c in fake.calls_to("toggle_comments")]
        assert toggles == ["false", "false"]
        assert not [r for r in await actions(state) if r.rule == "moderator"]

    async def test_hostile_member_messages_are_counted_and_the_next_one_counts(
        self,
        fake: FakeEuler,
        fake_server: LoopbackServer,
        clock: FakeClock,
        state: Path,
        tmp_path: Path,
    ) -> None:
        """Bad action numbers, a missing operator, huge ids, a missing target: each is
        skipped (no row, no crash), and a good moderator message after them is recorded."""
        daemon = daemon_for(fake, fake_server, state, clock, rules_dir(tmp_path, MUTE_RULES))
        room = fake.streamer("host_handle")
        async with running(daemon):
            await fake.wait_connected("host_handle")
            fake.emit("host_handle", hostile(room.room_id, fake.now_ms()))
            moderator_acts(fake, "host_handle", "kick", operator=MOD, target=RUDE)
            await until(lambda: daemon.humans.counts["kick"] == 1)
            await until(lambda: len([r for r in rows_now(state) if r.rule == "moderator"]) == 2)
        # The one valid hostile message (action "3": Euler's int64 as a string), then the kick.
        mute, kick = [r for r in await actions(state) if r.rule == "moderator"]
        assert (mute.action, mute.user_id) == ("mute", RUDE.user_id)
        assert (kick.action, kick.user_id, kick.params["kick"]) == ("ban", RUDE.user_id, True)
        assert daemon.humans.counts["errors"] == 0
        assert daemon.stats.errors == 0


class _Row(NamedTuple):
    rule: str
    action: str


def rows_now(state: Path) -> list[_Row]:
    with sqlite3.connect(state / "audit.db") as conn:
        return [_Row(*r) for r in conn.execute("SELECT rule, action FROM actions")]


def hostile(room_id: str, now_ms: int) -> list[dict[str, Any]]:
    """Member messages no moderator action can be read from, and one unknown action."""

    def with_(**data: Any) -> dict[str, Any]:
        message = m.member_action(room_id, MOD, "mute", now_ms, target=RUDE)
        message["data"].update(data)
        return message

    no_operator = m.member_action(room_id, MOD, "mute", now_ms, target=RUDE)
    del no_operator["data"]["operator"]
    no_target = m.member_action(room_id, MOD, "ban", now_ms)
    return [
        with_(action="3"),  # a string of digits is a number, but ...
        with_(action="mute"),
        with_(action=3.0),
        with_(action=True),
        with_(action=10**30),
        with_(action="9" * 5000),
        with_(action=-3),  # no such action: unknown
        with_(action=99),
        no_operator,
        with_(operator="root"),
        with_(operator={"userId": "9" * 40, "uniqueId": "huge"}),
        with_(user={"userId": "1" * 25}),
        no_target,
    ]


class TestDecoder:
    def test_hostile_member_messages_are_counted_and_skipped(self) -> None:
        decoder = Decoder("host_handle", room_id="7301234567890123456")
        events = decoder.decode(m.bundle(hostile("7301234567890123456", 1_795_550_400_000), 1))
        # Only the string of digits ("3") is a valid action (Euler writes int64 as strings).
        assert [(e.kind, e.moderation.action if e.moderation else None) for e in events] == [
            ("moderation", "mute")
        ]
        assert sum(decoder.malformed.values()) == 10
        assert decoder.unknown == {"WebcastMemberMessage with another action": 2}
        assert decoder.malformed["member moderation action without operator"] == 2

    def test_a_moderators_action_is_read_with_its_operator_and_target(self) -> None:
        decoder = Decoder("host_handle", room_id="7301234567890123456")
        bundle = m.bundle(
            [
                m.member_action(
                    "7301234567890123456", MOD, "unban", 1_795_550_400_000, target=RUDE
                ),
                m.member_action("7301234567890123456", MOD, "comments_off", 1_795_550_400_000),
                m.join("7301234567890123456", RUDE, 1_795_550_400_000),
            ],
            1,
        )
        unban, off, joined = decoder.decode(bundle)
        assert unban.moderation is not None
        assert (unban.moderation.action, unban.moderation.code) == ("unban", 10)
        assert unban.moderation.operator.user_id == MOD.user_id
        assert unban.user is not None
        assert unban.user.user_id == RUDE.user_id
        assert off.moderation is not None
        assert (off.moderation.action, off.user) == ("comments_off", None)
        assert joined.kind == "join"
        assert joined.moderation is None


class TestOwnAccount:
    def test_the_streamers_account_is_modbots_when_the_grants_is_not_known(self) -> None:
        """Without the grant's account: the room's owner, else the streamer's user id,
        else its handle in any case is modbot's; anyone else is a human."""
        host = User(user_id="42", unique_id="Host_Handle")
        renamed = User(user_id="42", unique_id="new_name")
        mod = User(user_id="99", unique_id="a_mod")
        fake_host = User(user_id="99", unique_id="host_handle_")
        assert is_own(host, None, streamer="host_handle")
        assert is_own(renamed, None, streamer="host_handle", streamer_id="42")
        assert not is_own(renamed, None, streamer="host_handle")
        assert not is_own(mod, None, streamer="host_handle", streamer_id="42")
        assert not is_own(fake_host, None, streamer="host_handle", streamer_id="42")
        assert not is_own(mod, None)
        assert is_own(mod, frozenset({"99"}), streamer="host_handle")
        assert not is_own(host, frozenset({"99"}), streamer="host_handle")
