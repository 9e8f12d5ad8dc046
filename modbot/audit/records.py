"""What the audit log holds, as plain rows (pure: no I/O).

``NewEntry`` is a row to write (built by :meth:`modbot.actions.plan.Intent.entry`),
``Entry`` a row as stored and read back, ``Timer`` a reversal due later. The store
(:mod:`modbot.audit.store`) turns them into SQL and back; everything upstream of it
(the plan, undo, the views) knows these types and nothing of SQLite.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class NewEntry:
    """An audit row to write."""

    ts: datetime
    streamer: str
    rule: str
    action: str
    mode: str
    status: str
    room_id: str = ""
    user_id: str = ""
    unique_id: str = ""
    rule_hash: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    detail: str = ""
    error: str | None = None
    msg_id: str = ""
    msg_text: str = ""
    undo_of: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Entry:
    """An audit row as stored."""

    id: int
    ts: str
    streamer: str
    room_id: str
    user_id: str
    unique_id: str
    rule: str
    rule_hash: str
    action: str
    params: dict[str, Any]
    mode: str
    status: str
    detail: str
    error: str | None
    msg_id: str
    msg_text: str
    undo_of: int | None
    undone_by: int | None
    reason: str | None
    updated: str

    @property
    def incident(self) -> int | None:
        """The incident the row belongs to (its params' ``incident``; the database's
        ``incident`` column reads the same), None when it belongs to none."""
        value = self.params.get("incident")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def to_json(self) -> dict[str, Any]:
        """The ``modbot audit --format json`` object (cli.md's fields and a few more)."""
        return {
            "id": self.id,
            "ts": self.ts,
            "streamer": self.streamer,
            "room_id": self.room_id,
            "user_id": self.user_id,
            "unique_id": self.unique_id,
            "rule": self.rule,
            "rule_hash": self.rule_hash,
            "action": self.action,
            "params": self.params,
            "mode": self.mode,
            "status": self.status,
            "undo_of": self.undo_of,
            "undone_by": self.undone_by,
            "detail": self.detail,
            "error": self.error,
            "msg_id": self.msg_id,
            "text": self.msg_text,
            "reason": self.reason,
            "updated": self.updated,
            "incident": self.incident,
        }


@dataclass(frozen=True)
class Timer:
    """A reversal due later: unmute at a mute's expiry, or comments back on."""

    id: int
    due: float
    kind: str  # unmute | comments_on
    streamer: str
    room_id: str
    user_id: str
    action_id: int
