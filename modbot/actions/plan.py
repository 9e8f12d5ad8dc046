"""Decisions to intents, and intents to their inverse (pure: no I/O, no clock).

An ``Intent`` is one API call to make (or not, with the reason): the engine's
``Decision`` plus where (room) and how (the API's mute duration, a timer for the rest).
``inverse()`` gives the call that reverses a done action, for ``modbot undo``; expiry
timers use the same calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from modbot.audit.records import Entry, NewEntry
from modbot.euler.policy import plan_mute
from modbot.euler.scopes import ACTION_SCOPES
from modbot.events import Event
from modbot.inert import encodable
from modbot.rules.engine import Decision

CALLS = frozenset({"mute", "ban", "reply", "warn", "comments", "unmute", "unban"})
SCOPES: dict[str, str | None] = {**ACTION_SCOPES, "unmute": "webcast:mute", "unban": "webcast:ban"}
UNDO_RULE = "undo"


@dataclass(frozen=True)
class Intent:
    """One action to carry out, with everything the API call and the audit row need."""

    action: str  # mute ban reply warn comments log unmute unban
    ts: datetime
    streamer: str
    room_id: str
    rule: str
    mode: str = "enforce"
    user_id: str = ""
    unique_id: str = ""
    rule_hash: str = ""
    detail: str = ""
    msg_id: str = ""
    msg_text: str = ""
    duration_s: float | None = None  # mute: wanted length, None = forever
    text: str | None = None  # reply/warn
    enabled: bool | None = None  # comments
    for_s: float | None = None  # comments: back on after
    strike: int | None = None
    skip: str | None = None  # why it will not be called
    undo_of: int | None = None
    reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def calls_api(self) -> bool:
        return self.action in CALLS and self.mode == "enforce" and self.skip is None

    @property
    def scope(self) -> str | None:
        return SCOPES.get(self.action)

    @property
    def api_duration(self) -> int | None:
        return plan_mute(self.duration_s).api_duration if self.action == "mute" else None

    @property
    def unmute_after(self) -> float | None:
        return plan_mute(self.duration_s).unmute_after if self.action == "mute" else None

    def params(self) -> dict[str, Any]:
        """What the audit row keeps about the call (never viewer-controlled code)."""
        out: dict[str, Any] = dict(self.extra)
        if self.action == "mute":
            out["duration_s"] = self.duration_s
            out["api_duration"] = self.api_duration
            if self.unmute_after is not None:
                out["unmute_after_s"] = self.unmute_after
        if self.text is not None:
            out["text"] = encodable(self.text)
        if self.action == "comments":
            out["enabled"] = self.enabled
            if self.for_s:
                out["for_s"] = self.for_s
        if self.strike is not None:
            out["strike"] = self.strike
        return out

    def status_before_call(self) -> str:
        """The status written with the intent: ``pending`` for a call to make."""
        if self.skip is not None:
            return "skipped"
        if self.mode == "observe":
            return "observed"
        if self.action == "log":
            return "done"
        return "pending"

    def entry(self) -> NewEntry:
        return NewEntry(
            ts=self.ts,
            streamer=self.streamer,
            rule=self.rule,
            action=self.action,
            mode=self.mode,
            status=self.status_before_call(),
            room_id=self.room_id,
            user_id=self.user_id,
            unique_id=encodable(self.unique_id),
            rule_hash=self.rule_hash,
            params=self.params(),
            detail=encodable(
                self.detail if self.skip is None else f"{self.detail}; not done: {self.skip}"
            ),
            msg_id=self.msg_id,
            msg_text=encodable(self.msg_text),
            undo_of=self.undo_of,
            reason=self.reason,
        )

    def skipped(self, why: str) -> Intent:
        return replace(self, skip=why)


def intent_for(decision: Decision, event: Event) -> Intent:
    """The intent of one engine decision on one event (suppressed ones are skipped)."""
    return Intent(
        action=decision.action,
        ts=event.ts,
        streamer=event.streamer,
        room_id=event.room_id,
        rule=decision.rule_id,
        mode=decision.mode,
        user_id=decision.user_id,
        unique_id=decision.unique_id,
        rule_hash=decision.rule_hash,
        detail=decision.detail,
        msg_id=event.msg_id,
        msg_text=event.text,
        duration_s=decision.duration_s,
        text=decision.text,
        enabled=decision.comments_enabled,
        for_s=decision.comments_for_s,
        strike=decision.strike,
        skip=decision.suppressed,
    )


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
    if entry.action in ("reply", "warn"):
        msg = f"#{entry.id} is a chat message; a sent message cannot be taken back"
        raise NotUndoable(msg)
    if entry.action == "log":
        msg = f"#{entry.id} only logged; there is nothing to undo"
        raise NotUndoable(msg)
    if entry.action in ("unmute", "unban") or entry.rule == UNDO_RULE:
        msg = f"#{entry.id} reversed an earlier action; it cannot be undone"
        raise NotUndoable(msg)
    if entry.status != "done":
        msg = f"#{entry.id} was not carried out (status {entry.status}); there is nothing to undo"
        raise NotUndoable(msg)
    if entry.params.get("reversed_at_expiry"):
        msg = f"#{entry.id} already ended at its expiry ({entry.params['reversed_at_expiry']})"
        raise NotUndoable(msg)
    if not entry.room_id:
        msg = f"#{entry.id} has no room id to act in"
        raise NotUndoable(msg)
    base = Intent(
        action=entry.action,
        ts=now,
        streamer=entry.streamer,
        room_id=entry.room_id,
        rule=UNDO_RULE,
        user_id=entry.user_id,
        unique_id=entry.unique_id,
        detail=f"undo of #{entry.id} ({entry.rule}: {entry.action})",
        undo_of=entry.id,
        reason=reason,
    )
    if entry.action == "mute":
        return replace(base, action="unmute")
    if entry.action == "ban":
        return replace(base, action="unban")
    if entry.action == "comments":
        turned_on = bool(entry.params.get("enabled"))
        return replace(base, action="comments", enabled=not turned_on)
    msg = f"#{entry.id}: the action {entry.action!r} has no inverse"
    raise NotUndoable(msg)
