"""Decisions to API calls, each one audited before and after (I/O).

For each event's decisions (already merged by the engine: one enforcement per user per
event) the executor:

1. plans the intents and gates them (:mod:`modbot.actions.gate`, the policy as a pure
   function: scope, dry run, reply pacing, comment state, de-duplication, the speech
   check), saying once per rule and scope when one only observes for want of a scope;
2. writes the intents that call the API to the audit store (``pending``) in one
   statement per batch, before their calls and without waiting for the batch before;
   the others go to a writer of their own (:mod:`modbot.actions.writers`);
3. makes the calls concurrently, bounded in total and per route
   (:mod:`modbot.actions.slots`); a ``RateLimited`` answer pauses that route only, then
   the call is tried again;
4. hands the outcomes (:mod:`modbot.actions.outcomes`) with their expiry timers to the
   outcome writer.

The same ``perform()`` serves decisions, expiry timers, crash recovery
(:mod:`modbot.actions.recovery`) and undo; first tries' delays go to
:mod:`modbot.actions.latency`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import NamedTuple

import anyio
import structlog
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream

from modbot.actions import gate as gating
from modbot.actions import recovery
from modbot.actions.gate import GatePolicy, GateState, Speech
from modbot.actions.latency import CallLatency, Delays, Stamps
from modbot.actions.outcomes import ERROR_LIMIT, Outcome, failure, timers_for
from modbot.actions.plan import Intent, intent_for
from modbot.actions.slots import Slots
from modbot.actions.table import kind_of, routes
from modbot.actions.writers import Writers, more
from modbot.audit.records import Entry, NewEntry
from modbot.audit.store import AuditStore
from modbot.clock import Clock, epoch
from modbot.errors import ApiError, AuthExpired, PlanOrScopeDenied, RateLimited
from modbot.euler.client import EulerClient
from modbot.events import Event
from modbot.inert import shown
from modbot.log import scrub
from modbot.rules.engine import Decision

__all__ = ["AlreadyRecorded", "CallLatency", "Executor", "Work", "failure"]

log = structlog.get_logger("modbot.executor")

RATE_LIMIT_ATTEMPTS = 5


class AlreadyRecorded(RuntimeError):
    """The audit log already has this entry (a duplicate delivery, or a second undo)."""


class Work(NamedTuple):
    """One event and the engine's decisions for it."""

    event: Event
    decisions: list[Decision]
    received: float | None = None  # monotonic time the event's bundle reached the daemon
    decided: float | None = None  # monotonic time the engine decided


class ExecutorStatistics(NamedTuple):
    decided: int
    called: int
    done: int
    failed: int
    skipped: int
    observed: int
    errors: int  # decisions that could not be made into an intent (logged with the event)
    in_flight: int
    paused_routes: int


class Executor:
    """Carries out intents through the Euler client and records them in the audit store."""

    def __init__(
        self,
        client: EulerClient | None,
        store: AuditStore,
        clock: Clock,
        *,
        dry_run: bool = False,
        granted_scopes: frozenset[str] | None = None,
        reply_interval: float = 3.0,
        dedup_window: float = 30.0,
        max_in_flight: int = 64,
        per_route: int = 8,
        batch_max: int = 500,
        speech: Speech | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.clock = clock
        self.batch_max = batch_max
        # speech: why a chat message must not be said (the rules' own text checks);
        # without it, only a blank message is held back.
        self.policy = GatePolicy(
            dry_run=dry_run,
            reply_interval=reply_interval,
            dedup_window=dedup_window,
            speech=speech or gating.only_blank,
        )
        self.gates = GateState(granted=granted_scopes)
        self.slots = Slots(clock, max_in_flight=max_in_flight, per_route=per_route, routes=routes())
        self.writers = Writers(store, clock, batch_max=batch_max)
        self.delays = Delays(clock)
        self._counts = dict.fromkeys(
            ("decided", "called", "done", "failed", "skipped", "observed", "errors"), 0
        )

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def dedup_window(self) -> float:
        return self.policy.dedup_window

    @dedup_window.setter
    def dedup_window(self, seconds: float) -> None:
        self.policy = replace(self.policy, dedup_window=seconds)

    def update_scopes(self, granted: frozenset[str]) -> None:
        """The token was refreshed: gate actions by the new grant from now on."""
        self.gates.regrant(granted)

    def latency(self) -> dict[str, CallLatency]:
        """Delays before moderation calls, over the last 100,000 first tries
        (:meth:`modbot.actions.latency.Delays.percentiles`)."""
        return self.delays.percentiles()

    def statistics(self) -> ExecutorStatistics:
        return ExecutorStatistics(
            in_flight=self.slots.running, paused_routes=self.slots.paused(), **self._counts
        )

    async def run(
        self,
        receive: MemoryObjectReceiveStream[list[Work]],
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Take work (in batches) until the stream closes; then finish the calls in flight.

        Whatever has queued up meanwhile goes into the next batch. Its intents that call
        the API are written while earlier ones are on their way (there are few: about
        one decision in twenty under a raid); the others go to their writer.
        """
        async with self.writers.running(), anyio.create_task_group() as calls:
            task_status.started()
            async with receive:
                async for first in receive:
                    works = more(receive, [first], self.batch_max)
                    await self._intake([w for ws in works for w in ws], calls)

    async def _intake(self, batch: list[Work], calls: TaskGroup) -> None:
        """Gate the intents of a batch and hand them on to be written.

        The intents that call the API go to a task that writes them and then makes
        their calls (intake does not wait for it), in chunks of as many as may be in
        flight, each chunk's slots taken here. The others go to their writer; no call
        waits for them.
        """
        now = self.clock.now()
        calling: list[tuple[Intent, Stamps, NewEntry]] = []
        others: list[NewEntry] = []
        for w in batch:
            stamp = Stamps(w.received, w.decided)
            for d in w.decisions:
                try:
                    intent = self.gate(intent_for(d, w.event))
                    entry = intent.entry()
                except Exception:  # one decision never stops the others
                    self._counts["errors"] += 1
                    log.exception(
                        "intent.failed", rule=d.rule, action=d.action, msg_id=w.event.msg_id
                    )
                    continue
                self._count(intent)
                if intent.calls_api:
                    calling.append((intent, stamp, entry))
                else:
                    others.append(entry)
        if not calling:
            await self.writers.keep(others)
            return
        step = self.slots.max_in_flight
        for start in range(0, len(calling), step):
            chunk = calling[start : start + step]
            await self.slots.take(len(chunk))
            after = others if start + step >= len(calling) else []
            calls.start_soon(self._write_and_perform, chunk, after, now, calls)

    async def _write_and_perform(
        self,
        calling: list[tuple[Intent, Stamps, NewEntry]],
        others: list[NewEntry],
        now: datetime,
        calls: TaskGroup,
    ) -> None:
        """Write intents (their in-flight slots taken), then make their calls.

        Intake goes on meanwhile: a decision does not wait for the write of the batch
        before its own. The last call is made in this task, the others in tasks of their
        own (a new task starts a turn of the loop later). The same batch's intents that
        call nothing (``others``) go to their writer once the calls' rows are in, so a
        skipped repeat's row never comes before the row of the call it repeats.
        """
        try:
            ids = await self.store.add([entry for _, _, entry in calling], now)
        except BaseException:
            self.slots.free(len(calling))
            raise
        new = [(i, e, s) for (i, s, _), e in zip(calling, ids, strict=True) if e is not None]
        self.slots.free(len(calling) - len(new))  # delivered before (a reconnect replayed it)
        for args in new[:-1]:
            calls.start_soon(self._perform_and_report, *args)
        await self.writers.keep(others)
        if new:
            await self._perform_and_report(*new[-1])

    async def _perform_and_report(self, intent: Intent, entry_id: int, stamps: Stamps) -> None:
        try:
            await self.writers.report(await self.perform(intent, entry_id, stamps=stamps))
        finally:
            self.slots.free(1)

    def _count(self, intent: Intent) -> None:
        self._counts["decided"] += 1
        status = intent.status_before_call()
        if status in ("skipped", "observed"):
            self._counts[status] += 1

    def gate(self, intent: Intent) -> Intent:
        """The gate's verdict on one intent (:func:`modbot.actions.gate.gate`), saying
        once per rule and scope when a rule only observes for want of a scope."""
        gated = gating.gate(intent, self.gates, epoch(self.clock), self.policy)
        scope = gated.missing_scope
        if scope is not None:
            rule, action = intent.rule, intent.action
            log.warning(
                "scope.missing",
                rule=rule,
                scope=scope,
                action=action,
                message=f"rule {rule!r} only observes: its {action} needs the OAuth scope "
                f"{scope}, which the grant lacks; run `modbot auth login`",
            )
        return gated.intent

    # --- calling ------------------------------------------------------------------------

    async def perform(
        self, intent: Intent, entry_id: int, *, stamps: Stamps | None = None
    ) -> Outcome:
        """Make the call of one recorded intent; the outcome to write (never raises).

        Whatever goes wrong, the intent ends ``failed`` with the error's class and
        message, and the next intent goes on. ``stamps`` say when the event arrived and
        was decided: the first try's delays go into :meth:`latency`.
        """
        try:
            return await self._perform(intent, entry_id, stamps)
        except Exception as exc:  # one intent never stops the others
            self._counts["failed"] += 1
            log.exception("action.crashed", action=intent.action, rule=intent.rule, entry=entry_id)
            return Outcome(entry_id, "failed", failure(exc))

    async def _perform(self, intent: Intent, entry_id: int, stamps: Stamps | None) -> Outcome:
        kind = kind_of(intent.action)
        route = kind.route if kind is not None else None
        if kind is None or kind.call is None or route is None:
            return Outcome(entry_id, "failed", f"{intent.action} is not an API call")
        if self.client is None:
            return Outcome(entry_id, "failed", "no API client (offline)")
        self._counts["called"] += 1
        error: str | None = None
        retryable = False
        for _ in range(RATE_LIMIT_ATTEMPTS):
            await self.slots.wait_route(route)
            try:
                async with self.slots.route(route):
                    first_try, stamps = stamps, None
                    with self.delays.timed(first_try):
                        await kind.call(self.client, intent)
            except RateLimited as exc:
                pause = exc.retry_after if exc.retry_after is not None else 10.0
                self.slots.pause(route, pause)
                log.warning("route.paused", route=route, seconds=round(pause, 1))
                error = scrub(str(exc))
                retryable = True
                continue
            except PlanOrScopeDenied as exc:
                gating.refused(intent.scope, self.gates)
                error = scrub(str(exc))
                break
            except AuthExpired as exc:
                error = scrub(f"{exc} (run `modbot auth login`)")
                break
            except ApiError as exc:
                error = scrub(str(exc))
                retryable = exc.retryable
                break
            except Exception as exc:  # one call never stops the others: it failed, and why
                error = failure(exc)
                log.exception(
                    "action.crashed", action=intent.action, rule=intent.rule, entry=entry_id
                )
                break
            else:
                gating.called(intent, self.gates)
                self._counts["done"] += 1
                timers = timers_for(intent, entry_id, epoch(self.clock))
                return Outcome(entry_id, "done", None, timers)
        self._counts["failed"] += 1
        error = shown(error, ERROR_LIMIT) if error is not None else None
        gating.failed(intent, self.gates)
        log.warning(
            "action.failed", action=intent.action, rule=intent.rule, entry=entry_id, error=error
        )
        return Outcome(entry_id, "failed", error, retryable=retryable)

    # --- one-off paths: undo, timers, recovery -----------------------------------------

    async def carry_out(self, intent: Intent) -> tuple[Entry, bool]:
        """Record, call and finish one intent now (undo, expiry).

        Returns the final entry and whether a failure is worth trying again later.
        """
        row = intent.entry()
        if intent.calls_api:  # a restart meanwhile leaves the row to this process
            row = replace(row, params={**row.params, **recovery.process_mark()})
        (entry_id,) = await self.store.add([row], self.clock.now())
        if entry_id is None:
            msg = "the audit log already has this entry"
            raise AlreadyRecorded(msg)
        retryable = False
        if intent.calls_api:
            outcome = await self.perform(intent, entry_id)
            retryable = outcome.retryable
            with anyio.CancelScope(shield=True):
                await self.writers.write([outcome])
        entry = await self.store.get(entry_id)
        assert entry is not None
        return entry, retryable

    async def recover(self) -> tuple[int, int]:
        """Resolve ``pending`` intents a crash left (:mod:`modbot.actions.recovery`).

        Returns (retried, given up)."""
        return await recovery.recover(self)
