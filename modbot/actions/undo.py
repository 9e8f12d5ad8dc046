"""Undo: reverse done actions (unmute, unban, comments back), each at most once (I/O).

The reversal is recorded as a new audit entry linked both ways (``undo_of`` on the new
entry, ``undone_by`` on the original); ``undo_of`` is UNIQUE, so a second undo of the
same action is refused by the database even when two undos race. A reversal that
fails is unlinked again, so the action can be undone later. A mute or comments-off
undone before its expiry has its expiry timer cancelled.
"""

from __future__ import annotations

from dataclasses import dataclass

from modbot.actions.executor import AlreadyRecorded, Executor
from modbot.actions.plan import NotUndoable, inverse
from modbot.audit.records import Entry
from modbot.audit.store import AuditStore


@dataclass(frozen=True)
class UndoResult:
    """What happened to one requested undo."""

    original_id: int
    entry: Entry | None  # the reversal's audit entry (None when refused)
    refused: str | None = None

    @property
    def ok(self) -> bool:
        return self.entry is not None and self.entry.status == "done"


async def undo(
    executor: Executor, store: AuditStore, entry_id: int, *, reason: str | None = None
) -> UndoResult:
    """Reverse one audit entry (see the module docstring)."""
    original = await store.get(entry_id)
    if original is None:
        return UndoResult(entry_id, None, f"#{entry_id} is not in the audit log")
    try:
        intent = inverse(original, executor.clock.now(), reason=reason)
    except NotUndoable as exc:
        return UndoResult(entry_id, None, str(exc))
    try:
        entry, _ = await executor.carry_out(intent)
    except AlreadyRecorded:
        fresh = await store.get(entry_id)
        by = fresh.undone_by if fresh else None
        return UndoResult(entry_id, None, f"#{entry_id} was already undone by #{by}")
    if entry.status == "done":
        for timer in await store.pending_timers(entry_id):
            await store.end_timer(timer.id, "cancelled", f"undone by #{entry.id}")
    else:
        await store.unlink_undo(entry.id, executor.clock.now())
        entry = await store.get(entry.id) or entry
    return UndoResult(entry_id, entry)
