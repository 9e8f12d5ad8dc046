"""Undo: reverse done actions (unmute, unban, comments back), each at most once (I/O).

The reversal is recorded as a new audit entry linked both ways (``undo_of`` on the new
entry, ``undone_by`` on the original); ``undo_of`` is UNIQUE, so a second undo of the
same action is refused by the database even when two undos race. A reversal that
fails is unlinked again, so the action can be undone later. A mute or comments-off
undone before its expiry has its expiry timer cancelled. A ban that was carried into
later lives (``modbot.actions.rebans``: rows of rule ``remembered`` linked to it) is
undone there too: :func:`carried_bans` names those rows, and the caller reverses them.
"""

from __future__ import annotations

from dataclasses import dataclass

from modbot.actions.executor import AlreadyRecorded, Executor
from modbot.actions.plan import NotUndoable, inverse
from modbot.audit.query import AuditFilter
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


async def undo_carried(
    executor: Executor, store: AuditStore, entry_id: int, *, reason: str | None = None
) -> list[UndoResult]:
    """Reverse one audit entry and, when that worked, the bans that carried it into later
    lives (each at most once); the first result is the entry's own."""
    results = [await undo(executor, store, entry_id, reason=reason)]
    if results[0].ok:
        results.extend(
            [
                await undo(executor, store, c, reason=reason)
                for c in await carried_bans(store, entry_id)
            ]
        )
    return results


async def carried_bans(store: AuditStore, entry_id: int) -> list[int]:
    """The done, not undone bans that carried ban ``entry_id`` into later lives."""
    rows = await store.query(
        AuditFilter(rule="remembered", action="ban", status="done", limit=None, oldest_first=True)
    )
    return [e.id for e in rows if e.params.get("remembered") == entry_id and e.undone_by is None]
