"""The gate as a table: (what came before, the intent, the time) -> carried out, observed
or skipped, and why. No server, no store, no clock: ``now`` is a number."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from modbot.actions.gate import GatePolicy, GateState, called, failed, gate, refused
from modbot.actions.plan import Intent, intent_for
from modbot.events import Event, User
from modbot.rules.engine import Decision

ROOM = "7300000000000000001"
T0 = 1_000_000.0


def intent(action: str, *, room: str = ROOM, user: int = 1, **facts: Any) -> Intent:
    """An intent of rule ``r`` on a comment of viewer ``user`` in ``room``."""
    event = Event(
        kind="comment",
        ts=datetime(2026, 12, 1, tzinfo=UTC),
        streamer="host",
        room_id=room,
        msg_id="7390000000000000001",
        user=User(user_id=f"68{user:017d}", unique_id=f"viewer_{user}"),
        text="bad words",
    )
    decision = Decision(
        rule=facts.pop("rule", "r"),
        rule_hash="h",
        action=action,
        mode=facts.pop("mode", "enforce"),
        detail="test",
        user_id=f"68{user:017d}",
        unique_id=f"viewer_{user}",
        **facts,
    )
    return intent_for(decision, event)


@dataclass(frozen=True)
class Row:
    """Intents gated in turn (each with its ``now``); the last one's verdict is checked."""

    name: str
    steps: tuple[tuple[Intent, float], ...]
    expect: str  # "call", "observe", or the start of the reason it is skipped
    policy: GatePolicy = field(default_factory=GatePolicy)
    state: dict[str, Any] = field(default_factory=dict)
    detail: str | None = None  # a text the gated intent's detail must end with


def reply(text: str = "please stop", **facts: Any) -> Intent:
    return intent("reply", text=text, **facts)


MUTE_5M = intent("mute", duration_s=300.0)

ROWS = (
    Row("a mute passes", ((MUTE_5M, T0),), "call"),
    Row("an unknown action is skipped", ((intent("shout"), T0),), "'shout' is not an action"),
    Row("a log calls nothing and passes as it is", ((intent("log"), T0),), "call"),
    Row("an observe rule is left as it is", ((intent("ban", mode="observe"), T0),), "observe"),
    Row("a blank reply is not said", ((reply(" \u200b "), T0),), "not said: the message is empty"),
    Row(
        "the speech check holds a message back",
        ((reply("buy cheap coins"), T0),),
        "not said: it says coins",
        policy=GatePolicy(speech=lambda t: "it says coins" if "coins" in t else None),
    ),
    Row(
        "no scope: observed",
        ((intent("ban"), T0),),
        "observe",
        state={"granted": frozenset({"webcast:mute"})},
        detail="; observe: no scope webcast:ban",
    ),
    Row(
        "a scope the API refused: observed",
        ((intent("ban"), T0),),
        "observe",
        state={"denied": {"webcast:ban"}},
    ),
    Row("no room id yet: skipped", ((intent("ban", room=""), T0),), "the room id is not known"),
    Row(
        "dry run: observed",
        ((MUTE_5M, T0),),
        "observe",
        policy=GatePolicy(dry_run=True),
        detail="; dry run",
    ),
    Row(
        "a second chat message within the interval is skipped",
        ((reply("one"), T0), (intent("warn", text="two", user=2), T0 + 2.9)),
        "one chat message per 3s in a room",
    ),
    Row(
        "a chat message after the interval is said",
        ((reply("one"), T0), (reply("two"), T0 + 3.0)),
        "call",
    ),
    Row(
        "chat is paced per room",
        ((reply("one"), T0), (reply("two", room="7300000000000000002"), T0)),
        "call",
    ),
    Row(
        "comments are not turned off while off",
        ((intent("comments", enabled=False), T0),) * 2,
        "comments are already off",
    ),
    Row(
        "comments go back on while off",
        (
            (intent("comments", enabled=False), T0),
            (intent("comments", enabled=True), T0 + 1),
        ),
        "call",
    ),
    Row(
        "the same mute in a burst is skipped", ((MUTE_5M, T0), (MUTE_5M, T0 + 29)), "the same mute"
    ),
    Row(
        "a longer mute is no repeat",
        ((MUTE_5M, T0), (intent("mute", duration_s=600.0), T0 + 1)),
        "call",
    ),
    Row(
        "a shorter mute is a repeat",
        ((intent("mute", duration_s=600.0), T0), (MUTE_5M, T0 + 1)),
        "the same mute was sent 1s ago",
    ),
    Row(
        "a forever mute outweighs any length",
        ((intent("mute", duration_s=86400.0), T0), (intent("mute"), T0 + 1)),
        "call",
    ),
    Row("after the window it is sent again", ((MUTE_5M, T0), (MUTE_5M, T0 + 30)), "call"),
    Row(
        "another user is no repeat",
        ((MUTE_5M, T0), (intent("mute", user=2, duration_s=300.0), T0)),
        "call",
    ),
    Row("the same ban is skipped", ((intent("ban"), T0), (intent("ban"), T0 + 5)), "the same ban"),
)


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_the_gate_table(row: Row) -> None:
    """Each row's last intent ends as the row says, and with the row's note."""
    state = GateState(**row.state)
    gated = None
    for item, now in row.steps:
        gated = gate(item, state, now, row.policy)
    assert gated is not None
    out = gated.intent
    if row.expect == "call":
        assert out.suppressed is None
        assert out.mode == row.steps[-1][0].mode
    elif row.expect == "observe":
        assert out.suppressed is None
        assert out.mode == "observe"
        assert not out.calls_api
    else:
        assert out.suppressed is not None
        assert out.suppressed.startswith(row.expect), out.suppressed
        assert out.entry().status == "skipped"
    if row.detail is not None:
        assert out.decision.detail.endswith(row.detail)


def test_a_missing_scope_is_said_once_per_rule() -> None:
    """The first intent of a rule without its scope asks to say so; the next does not;
    another rule asks again."""
    state = GateState(granted=frozenset())
    policy = GatePolicy()
    said = [gate(intent("ban", rule=r), state, T0, policy).missing_scope for r in "aab"]
    assert said == ["webcast:ban", None, "webcast:ban"]
    state.regrant(frozenset({"webcast:ban"}))
    assert gate(intent("ban", rule="a"), state, T0, policy).intent.calls_api


def test_a_refused_scope_observes_until_the_next_grant() -> None:
    """A scope the API refused despite the grant makes its actions observe; a new grant
    forgets it."""
    state = GateState(granted=frozenset({"webcast:ban"}))
    refused("webcast:ban", state)
    assert gate(intent("ban"), state, T0, GatePolicy()).intent.mode == "observe"
    state.regrant(frozenset({"webcast:ban"}))
    assert gate(intent("ban", user=2), state, T0, GatePolicy()).intent.mode == "enforce"


def test_a_failed_toggle_forgets_the_room_state() -> None:
    """After a failed comments call the room's state is unknown: comments off is sent
    again; a call that went through sets the state."""
    state, policy = GateState(), GatePolicy()
    off = intent("comments", enabled=False)
    assert gate(off, state, T0, policy).intent.suppressed is None
    failed(off, state)
    assert gate(off, state, T0, policy).intent.suppressed is None
    called(off, state)
    assert gate(off, state, T0, policy).intent.suppressed == "comments are already off"


def test_the_gate_changes_only_its_state() -> None:
    """The intent given is not changed (frozen), and the same inputs give the same verdict."""
    first, second = GateState(), GateState()
    a = gate(MUTE_5M, first, T0, GatePolicy())
    b = gate(MUTE_5M, second, T0, GatePolicy())
    assert a == b
    assert first == second
    assert MUTE_5M.suppressed is None
