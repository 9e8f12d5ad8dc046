"""Whether an intent is carried out, observed or skipped, and why (pure: no I/O, no clock).

:func:`gate` is the executor's policy as one function of the intent, the gate's state
and the time (``now``, epoch seconds, passed in). In order:

1. an action modbot does not know is skipped; one that calls nothing passes as it is;
2. a chat message the speech check refuses (the rules' own text checks) is skipped;
3. an action whose OAuth scope is not granted, or was refused by the API, is observed
   instead (the caller says so once per rule and scope: ``Gated.missing_scope``);
4. an action without a room id is skipped;
5. under ``--dry-run`` everything is observed;
6. a chat message is skipped within ``reply_interval`` of the last one in its room
   (TikTok drops bursts);
7. comments are never turned off while already off;
8. anything else is skipped when the same action on the same user in the same room
   was sent within ``dedup_window`` and was at least as strong (a longer mute is no
   repeat).

The state is the gate's memory of what it let through; ``gate`` writes only to it, and
:func:`called` and :func:`failed` tell it what became of a call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from modbot.actions.plan import Intent
from modbot.actions.table import kind_of, severity
from modbot.inert import is_blank

Speech = Callable[[str], str | None]
"""Why a chat message must not be said (None: it may)."""

RECENT_MOST = 50_000  # remembered calls before the old ones are forgotten


def only_blank(text: str) -> str | None:
    """The speech check without rules: only a blank message is held back."""
    return "the message is empty" if is_blank(text) else None


@dataclass(frozen=True)
class GatePolicy:
    """The settings the gate applies."""

    dry_run: bool = False
    reply_interval: float = 3.0
    dedup_window: float = 30.0
    speech: Speech = only_blank


@dataclass
class GateState:
    """What the gate remembers: the grant, and what it let through lately."""

    granted: frozenset[str] | None = None  # None: not known, nothing is held back for scope
    denied: set[str] = field(default_factory=set)  # scopes the API refused despite the grant
    warned: set[tuple[str, str]] = field(default_factory=set)  # (rule, scope) said once
    last_chat: dict[str, float] = field(default_factory=dict)  # room -> when
    comments_off: dict[str, bool] = field(default_factory=dict)  # room -> off
    recent: dict[tuple[str, str, str], tuple[float, tuple[int, float]]] = field(
        default_factory=dict
    )  # (room, user, action) -> (when, severity)

    def regrant(self, granted: frozenset[str]) -> None:
        """A new grant: what the API refused and what was said about it start over."""
        self.granted = granted
        self.denied.clear()
        self.warned.clear()


@dataclass(frozen=True)
class Gated:
    """The gated intent, and a scope to say is missing (the first time for its rule)."""

    intent: Intent
    missing_scope: str | None = None


def unsaid(intent: Intent, speech: Speech) -> str | None:
    """Why a chat intent's text must not be said (None: it may, or it is no chat)."""
    kind = kind_of(intent.action)
    if kind is None or not kind.chat:
        return None
    problem = speech(intent.text or "")
    return None if problem is None else f"not said: {problem}"


def gate(intent: Intent, state: GateState, now: float, policy: GatePolicy) -> Gated:
    """Apply the policy (see the module docstring) to one intent at ``now``."""
    kind = kind_of(intent.action)
    if kind is None:
        if intent.suppressed is None:
            return Gated(intent.skipped(f"{intent.action!r} is not an action modbot knows"))
        return Gated(intent)
    if not intent.calls_api:
        return Gated(intent)
    if (problem := unsaid(intent, policy.speech)) is not None:
        return Gated(intent.skipped(problem))
    scope = kind.scope
    if scope is not None and (
        scope in state.denied or (state.granted is not None and scope not in state.granted)
    ):
        said = (intent.rule, scope) in state.warned
        state.warned.add((intent.rule, scope))
        observed = intent.changed(
            mode="observe", detail=f"{intent.decision.detail}; observe: no scope {scope}"
        )
        return Gated(observed, None if said else scope)
    room = intent.room_id
    if not room:
        return Gated(intent.skipped("the room id is not known yet"))
    if policy.dry_run:
        return Gated(intent.changed(mode="observe", detail=f"{intent.decision.detail}; dry run"))
    if kind.chat:
        last = state.last_chat.get(room)
        if last is not None and now - last < policy.reply_interval:
            why = f"one chat message per {policy.reply_interval:g}s in a room (TikTok drops bursts)"
            return Gated(intent.skipped(why))
        state.last_chat[room] = now
        return Gated(intent)
    if kind.takes == "toggle":
        off = not intent.enabled
        if off and state.comments_off.get(room, False):
            return Gated(intent.skipped("comments are already off"))
        state.comments_off[room] = off
        return Gated(intent)
    return Gated(_once(intent, state, now, policy.dedup_window))


def _once(intent: Intent, state: GateState, now: float, window: float) -> Intent:
    """The intent, or skipped as a repeat of an at least as strong call in ``window``."""
    key = (intent.room_id, intent.user_id, intent.action)
    seen = state.recent.get(key)
    weight = severity(intent.action, intent.decision.duration_s)
    if seen is not None and now - seen[0] < window and weight <= seen[1]:
        return intent.skipped(
            f"the same {intent.action} was sent {now - seen[0]:.0f}s ago in this burst"
        )
    state.recent[key] = (now, weight)
    if len(state.recent) > RECENT_MOST:
        state.recent = {k: v for k, v in state.recent.items() if now - v[0] < window}
    return intent


def called(intent: Intent, state: GateState) -> None:
    """A call went through: a comments toggle sets the room's state."""
    kind = kind_of(intent.action)
    if kind is not None and kind.takes == "toggle":
        state.comments_off[intent.room_id] = not intent.enabled


def failed(intent: Intent, state: GateState) -> None:
    """A call failed: a room's comment state is not known any more."""
    kind = kind_of(intent.action)
    if kind is not None and kind.takes == "toggle":
        state.comments_off.pop(intent.room_id, None)


def refused(scope: str | None, state: GateState) -> None:
    """The API refused a scope the grant has: its actions are observed from now on."""
    if scope:
        state.denied.add(scope)
