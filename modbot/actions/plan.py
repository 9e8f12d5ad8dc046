"""Decisions to intents, and intents to their inverse (pure: no I/O, no clock).

An ``Intent`` is one API call to make (or not, with the reason): the engine's
``Decision`` itself plus where (room) and how (the API's mute duration, a timer for the
rest). What each action calls, needs and undoes is the action table's
(:mod:`modbot.actions.table`).
``inverse()`` gives the call that reverses a done action, for ``modbot undo``; expiry
timers use the same calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar

from modbot.actions.table import kind_of
from modbot.audit.records import Entry, NewEntry
from modbot.euler.policy import plan_mute
from modbot.events import Event
from modbot.inert import encodable
from modbot.rules.engine import Decision

T = TypeVar("T")

UNDO_RULE = "undo"


@dataclass(frozen=True)
class Intent:
    """One action to carry out: the engine's decision, where, and for what.

    One name per fact from the rule file to the audit row: the decision's ``rule``,
    ``enabled``, ``for_s``, ``duration_s`` are the row's column and params keys (and the
    rule language's), and the intent's ``unmute_after_s`` is the params key too. The
    intent adds the event's place and time, and the links an undo or an expiry carries. Undo, expiry timers and crash recovery make
    decisions of modbot's own (:func:`own`).
    """

    decision: Decision
    ts: datetime
    streamer: str
    room_id: str
    msg_id: str = ""
    msg_text: str = ""
    undo_of: int | None = None
    reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def action(self) -> str:
        return self.decision.action

    @property
    def rule(self) -> str:
        return self.decision.rule

    @property
    def mode(self) -> str:
        return self.decision.mode

    @property
    def user_id(self) -> str:
        return self.decision.user_id

    @property
    def text(self) -> str | None:
        return self.decision.text

    @property
    def enabled(self) -> bool | None:
        return self.decision.enabled

    @property
    def suppressed(self) -> str | None:
        return self.decision.suppressed

    @property
    def calls_api(self) -> bool:
        kind = kind_of(self.decision.action)
        return kind is not None and kind.calls_api and self.decision.enforced

    @property
    def scope(self) -> str | None:
        kind = kind_of(self.decision.action)
        return None if kind is None else kind.scope

    @property
    def api_duration(self) -> int | None:
        kind = kind_of(self.decision.action)
        if kind is None or not kind.stepped_duration:
            return None
        return plan_mute(self.decision.duration_s).api_duration

    @property
    def unmute_after_s(self) -> float | None:
        kind = kind_of(self.decision.action)
        if kind is None or not kind.stepped_duration:
            return None
        return plan_mute(self.decision.duration_s).unmute_after

    def changed(self, **facts: Any) -> Intent:
        """This intent with some of its decision's facts changed."""
        return replace(self, decision=self.decision._replace(**facts))

    def skipped(self, why: str) -> Intent:
        return self.changed(suppressed=why)

    def params(self) -> dict[str, Any]:
        """What the audit row keeps about the call (never viewer-controlled code)."""
        d = self.decision
        kind = kind_of(d.action)
        takes = kind.takes if kind is not None else "nothing"
        out: dict[str, Any] = dict(self.extra)
        if takes == "duration":
            out["duration_s"] = d.duration_s
            if kind is not None and kind.stepped_duration:
                out["api_duration"] = self.api_duration
                if self.unmute_after_s is not None:
                    out["unmute_after_s"] = self.unmute_after_s
        if d.text is not None:
            out["text"] = encodable(d.text)
        if takes == "toggle":
            out["enabled"] = d.enabled
            if d.for_s:
                out["for_s"] = d.for_s
        if d.strike is not None:
            out["strike"] = d.strike
        if d.everywhere:
            out["everywhere"] = True  # the ban list's scope (modbot.audit.bans)
        return out

    def status_before_call(self) -> str:
        """The status written with the intent: ``pending`` for a call to make."""
        if self.decision.suppressed is not None:
            return "skipped"
        if self.decision.mode == "observe":
            return "observed"
        kind = kind_of(self.decision.action)
        if kind is not None and not kind.calls_api:
            return "done"
        return "pending"

    def entry(self) -> NewEntry:
        """The audit row of this intent (the store's columns: ``rule`` is the rule id)."""
        d = self.decision
        return NewEntry(
            ts=self.ts,
            streamer=self.streamer,
            rule=d.rule,
            action=d.action,
            mode=d.mode,
            status=self.status_before_call(),
            room_id=self.room_id,
            user_id=d.user_id,
            unique_id=encodable(d.unique_id),
            rule_hash=d.rule_hash,
            params=self.params(),
            detail=encodable(
                d.detail if d.suppressed is None else f"{d.detail}; not done: {d.suppressed}"
            ),
            msg_id=self.msg_id,
            msg_text=encodable(self.msg_text),
            undo_of=self.undo_of,
            reason=self.reason,
        )


def intent_for(decision: Decision, event: Event) -> Intent:
    """The intent of one engine decision on one event (suppressed ones are skipped)."""
    return Intent(
        decision,
        ts=event.ts,
        streamer=event.streamer,
        room_id=event.room_id,
        msg_id=event.msg_id,
        msg_text=event.text,
    )


def own(
    action: str,
    *,
    ts: datetime,
    streamer: str,
    room_id: str,
    rule: str,
    user_id: str,
    unique_id: str,
    detail: str,
    enabled: bool | None = None,
    undo_of: int | None = None,
    reason: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Intent:
    """An intent of modbot's own making (undo, an expiry), enforced."""
    decision = Decision(
        rule=rule,
        rule_hash="",
        action=action,
        mode="enforce",
        detail=detail,
        user_id=user_id,
        unique_id=unique_id,
        enabled=enabled,
    )
    return Intent(
        decision,
        ts=ts,
        streamer=streamer,
        room_id=room_id,
        undo_of=undo_of,
        reason=reason,
        extra=extra or {},
    )


def intent_from_entry(entry: Entry) -> Intent:
    """Rebuild the intent of a recorded row (crash recovery): :meth:`Intent.entry` back."""
    p = entry.params
    decision = Decision(
        rule=entry.rule,
        rule_hash=entry.rule_hash,
        action=entry.action,
        mode="observe" if entry.mode == "observe" else "enforce",
        detail=entry.detail,
        user_id=entry.user_id,
        unique_id=entry.unique_id,
        duration_s=_recorded(p, "duration_s", float),
        text=_recorded(p, "text", str),
        enabled=_recorded(p, "enabled", bool),
        for_s=_recorded(p, "for_s", float),
        everywhere=p.get("everywhere") is True,
    )
    return Intent(
        decision,
        ts=datetime.fromisoformat(entry.ts),
        streamer=entry.streamer,
        room_id=entry.room_id,
        msg_id=entry.msg_id,
        msg_text=entry.msg_text,
        undo_of=entry.undo_of,
        extra=carried(entry),
    )


def _recorded(params: Mapping[str, Any], name: str, kind: type[T]) -> T | None:
    """A param of a recorded row, if it is of its kind (a float may be recorded as an
    int); a row changed by hand fails as it is rebuilt, saying which param is wrong."""
    value = params.get(name)
    if value is None:
        return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > 2**53:
            msg = f"the row's {name} is out of range"
            raise ValueError(msg)
        value = float(value)
    if not isinstance(value, kind):
        msg = f"the row's {name} is {type(value).__name__}, not {kind.__name__}"
        raise TypeError(msg)
    return value


def carried(entry: Entry) -> dict[str, Any]:
    """The params of a row that its replay and its undo need again (the table's ``carried``)."""
    kind = kind_of(entry.action)
    keys = kind.carried if kind is not None else ()
    return {k: entry.params[k] for k in keys if k in entry.params}


class NotUndoable(ValueError):
    """An audit entry that cannot be reversed (the message says why)."""


def inverse(entry: Entry, now: datetime, *, reason: str | None = None) -> Intent:
    """The call that reverses a done action: unmute, unban, comments back."""
    if entry.undo_of is not None:
        msg = f"#{entry.id} is itself an undo (of #{entry.undo_of}); it cannot be undone"
        raise NotUndoable(msg)
    if entry.undone_by is not None:
        msg = f"#{entry.id} was already undone by #{entry.undone_by}"
        raise NotUndoable(msg)
    kind = kind_of(entry.action)
    if kind is not None and kind.not_undoable is not None:
        msg = f"#{entry.id} {kind.not_undoable}"
        raise NotUndoable(msg)
    if entry.rule == UNDO_RULE:
        msg = f"#{entry.id} reversed an earlier action; it cannot be undone"
        raise NotUndoable(msg)
    if entry.status != "done":
        msg = f"#{entry.id} was not carried out (status {entry.status}); there is nothing to undo"
        raise NotUndoable(msg)
    if entry.params.get("reversed_at_expiry"):
        msg = f"#{entry.id} already ended at its expiry ({entry.params['reversed_at_expiry']})"
        raise NotUndoable(msg)
    if not entry.room_id and (kind is None or kind.needs_room):
        msg = f"#{entry.id} has no room id to act in"
        raise NotUndoable(msg)
    if kind is None or kind.inverse is None:
        msg = f"#{entry.id}: the action {entry.action!r} has no inverse"
        raise NotUndoable(msg)
    back = kind_of(kind.inverse)
    flipped = back is not None and back.takes == "toggle"
    return own(
        kind.inverse,
        ts=now,
        streamer=entry.streamer,
        room_id=entry.room_id,
        rule=UNDO_RULE,
        user_id=entry.user_id,
        unique_id=entry.unique_id,
        detail=f"undo of #{entry.id} ({entry.rule}: {entry.action})",
        enabled=not entry.params.get("enabled") if flipped else None,
        undo_of=entry.id,
        reason=reason,
        extra=carried(entry),
    )
