"""Durable expiries: unmute when a long mute ends, comments back on (I/O).

Timers live in the audit database, so they survive restarts: an expiry that passed
while modbot was down fires at the next start. A reversal that fails for a reason
worth retrying (the API unreachable, rate limited) is tried again a minute later;
one the API refuses (the room is gone) is closed as failed, with the error, and the
reversal's own audit entry says so.
"""

from __future__ import annotations

import anyio
import structlog
from anyio.abc import TaskStatus

from modbot.actions.executor import Executor
from modbot.actions.moderators import kept_by_humans
from modbot.actions.outcomes import failure
from modbot.actions.plan import own
from modbot.actions.table import expiry
from modbot.audit.records import Timer
from modbot.audit.store import AuditStore
from modbot.clock import Clock, epoch
from modbot.errors import AuditError
from modbot.events import format_ts

log = structlog.get_logger("modbot.timers")

RETRY_AFTER = 60.0
POLL = 1.0


class Timers:
    """Fires due timers through the executor; ``poke()`` after adding one."""

    def __init__(self, executor: Executor, store: AuditStore, clock: Clock) -> None:
        self.executor = executor
        self.store = store
        self.clock = clock
        self.fired = 0
        self._wake = anyio.Event()

    def poke(self) -> None:
        self._wake.set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Fire timers as they fall due (those overdue at start at once)."""
        await self.fire_due()
        task_status.started()
        while True:
            due = await self.store.next_due()
            wait = POLL if due is None else max(0.0, min(POLL, due - epoch(self.clock)))
            with anyio.move_on_after(wait):
                await self._wake.wait()
            self._wake = anyio.Event()
            await self.fire_due()

    async def fire_due(self) -> int:
        """Carry out every timer due now; how many were carried out."""
        count = 0
        for timer in await self.store.due_timers(epoch(self.clock)):
            try:
                await self._fire(timer)
            except AuditError:
                raise  # the store waits out a failing disk itself; this is the stop
            except Exception as exc:  # one timer never stops the others
                log.exception("timer.crashed", kind=timer.kind, action=timer.action_id)
                await self.store.end_timer(timer.id, "failed", failure(exc))
            count += 1
        return count

    async def _fire(self, timer: Timer) -> None:
        original = await self.store.get(timer.action_id)
        rule = original.rule if original else "timer"
        does = expiry(timer.kind)
        if does is None:
            msg = f"a timer of kind {timer.kind!r}, which no action sets"
            raise ValueError(msg)
        intent = own(
            does.action,
            ts=self.clock.now(),
            streamer=timer.streamer,
            room_id=timer.room_id,
            rule=rule,
            user_id=timer.user_id,
            unique_id=original.unique_id if original else "",
            detail=f"the {does.ends} of #{timer.action_id} expired",
            enabled=does.enabled,
            extra={"expiry_of": timer.action_id},
        )
        kept = await kept_by_humans(self.store, timer, original)
        if kept is not None:  # humans first: a moderator acted after modbot did
            await self.executor.carry_out(intent.skipped(kept))
            await self.store.end_timer(timer.id, "cancelled", kept)
            log.info("timer.kept_by_moderator", kind=timer.kind, action=timer.action_id)
            return
        entry, retryable = await self.executor.carry_out(intent)
        now = self.clock.now()
        if entry.status == "done":
            await self.store.end_timer(timer.id, "done")
            await self.store.patch_params(
                timer.action_id, {"reversed_at_expiry": format_ts(now)}, now
            )
            self.fired += 1
            log.info("timer.fired", kind=timer.kind, action=timer.action_id, entry=entry.id)
        elif retryable:
            await self.store.reschedule_timer(
                timer.id, epoch(self.clock) + RETRY_AFTER, entry.error or "failed"
            )
            log.warning("timer.retry", kind=timer.kind, action=timer.action_id, error=entry.error)
        else:
            await self.store.end_timer(timer.id, "failed", entry.error)
            log.warning("timer.failed", kind=timer.kind, action=timer.action_id, error=entry.error)
