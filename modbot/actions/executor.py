"""Decisions to API calls, each one audited before and after (I/O).

For each event's decisions (already merged by the engine: one enforcement per user per
event) the executor:

1. plans the intents and gates them (:mod:`modbot.actions.gate`, the policy as a pure
   function: scope, dry run, reply pacing, comment state, de-duplication, the speech
   check), saying once per rule and scope when one only observes for want of a scope;
2. writes the intents that call the API to the audit store (``pending``) in one
   statement per batch, before their calls and without waiting for the batch before;
   the others (observed, skipped, logged: most of a raid's decisions) go to a writer
   of their own, so the write a call waits for stays small;
3. makes the calls concurrently (bounded in total and per route); a ``RateLimited``
   answer pauses that route only, then the call is tried again;
4. writes the outcomes (``done`` or ``failed`` with the error) in batches, together
   with the expiry timers (unmute after a long mute, comments back on).

The same ``perform()`` serves decisions, expiry timers, crash recovery and undo.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

import anyio
import structlog
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from modbot.actions import gate as gating
from modbot.actions.gate import GatePolicy, GateState, Speech
from modbot.actions.plan import Intent, intent_for, intent_from_entry
from modbot.actions.table import RECOVER_AGE, kind_of, routes
from modbot.audit.records import Entry, NewEntry
from modbot.audit.store import AuditStore
from modbot.clock import Clock, epoch
from modbot.errors import (
    ApiError,
    AuthExpired,
    PlanOrScopeDenied,
    RateLimited,
)
from modbot.euler.client import EulerClient
from modbot.euler.watcher import hand_on
from modbot.events import Event
from modbot.inert import shown
from modbot.log import scrub
from modbot.rules.engine import Decision

log = structlog.get_logger("modbot.executor")
T = TypeVar("T")

RATE_LIMIT_ATTEMPTS = 5
RECOVER_CALL_LIMIT = 30.0  # one replay at start-up: then it failed, and start-up goes on
RECOVER_BUDGET = 60.0  # all replays at start-up together: the rest fail with why
ERROR_LIMIT = 500  # characters of an error kept in the audit row


class AlreadyRecorded(RuntimeError):
    """The audit log already has this entry (a duplicate delivery, or a second undo)."""


class Work(NamedTuple):
    """One event and the engine's decisions for it."""

    event: Event
    decisions: list[Decision]
    received: float | None = None  # monotonic time the event's bundle reached the daemon
    decided: float | None = None  # monotonic time the engine decided


class Stamps(NamedTuple):
    """When an intent's event arrived and when it was decided (monotonic seconds)."""

    received: float | None = None
    decided: float | None = None


class CallLatency(NamedTuple):
    """Percentiles of a delay before moderation calls (ms), over the last 100,000 calls."""

    calls: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, delays: Iterable[float]) -> CallLatency:
        ordered = sorted(delays)
        n = len(ordered)
        if not n:
            return cls(0, 0.0, 0.0, 0.0)
        return cls(
            n,
            round(ordered[n // 2] * 1000, 1),
            round(ordered[min(n - 1, int(n * 0.99))] * 1000, 1),
            round(ordered[-1] * 1000, 1),
        )


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


@dataclass
class _Outcome:
    entry_id: int
    status: str
    error: str | None
    timers: list[tuple[float, str, str, str, str, int]]
    params: dict[str, Any] | None = None
    retryable: bool = False


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
        # fast_acquire: taking a free slot does not yield to the loop. Under load every
        # turn of the loop is a few milliseconds, and a call went through two such
        # slots (in flight, route) before it was sent.
        self._in_flight = anyio.Semaphore(max_in_flight, fast_acquire=True)
        self._max_in_flight = max_in_flight
        self._per_route = per_route
        self._route_limits = {
            r: anyio.Semaphore(per_route, fast_acquire=True) for r in sorted(routes())
        }
        self._paused_until: dict[str, float] = {}
        self._outcomes: MemoryObjectSendStream[_Outcome] | None = None
        self._records: MemoryObjectSendStream[list[NewEntry]] | None = None
        self._counts = dict.fromkeys(
            ("decided", "called", "done", "failed", "skipped", "observed", "errors"), 0
        )
        self._running = 0
        # Delays of first tries: arrival -> sent, decision -> sent, decision -> answer.
        self._delays: dict[str, deque[float]] = {
            k: deque(maxlen=100_000) for k in ("arrival", "decision", "answer")
        }

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
        """Delays before moderation calls, over the last 100,000 first tries.

        ``arrival_to_call``: from the event's bundle reaching the daemon to the call
        being sent; ``decision_to_call``: from the engine's decision to the call being
        sent; ``decision_to_answer``: to the API's answer (the whole round trip).
        """
        delays = self._delays
        return {
            "arrival_to_call": CallLatency.of(delays["arrival"]),
            "decision_to_call": CallLatency.of(delays["decision"]),
            "decision_to_answer": CallLatency.of(delays["answer"]),
        }

    def statistics(self) -> ExecutorStatistics:
        now = epoch(self.clock)
        return ExecutorStatistics(
            in_flight=self._running,
            paused_routes=sum(1 for until in self._paused_until.values() if until > now),
            **self._counts,
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
        one decision in twenty under a raid); the others are written together by
        ``_write_records``, as they queue up.
        """
        send, outcomes = anyio.create_memory_object_stream[_Outcome](10_000)
        keep, records = anyio.create_memory_object_stream[list[NewEntry]](1_000)
        async with anyio.create_task_group() as writers:
            writers.start_soon(self._write_outcomes, outcomes)
            writers.start_soon(self._write_records, records)
            async with send, keep, anyio.create_task_group() as calls:
                self._outcomes, self._records = send, keep
                task_status.started()
                async with receive:
                    async for first in receive:
                        works = _more(receive, [first], self.batch_max)
                        await self._intake([w for ws in works for w in ws], calls)
            self._outcomes = self._records = None

    async def _intake(self, batch: list[Work], calls: anyio.abc.TaskGroup) -> None:
        """Gate the intents of a batch and hand them on to be written.

        The intents that call the API go to a task that writes them and then makes
        their calls (intake does not wait for it). The others (observed, skipped,
        logged: most of a raid's decisions) go to a writer of their own; no call waits
        for them.
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
                        "intent.failed", rule=d.rule_id, action=d.action, msg_id=w.event.msg_id
                    )
                    continue
                self._count(intent)
                if intent.calls_api:
                    calling.append((intent, stamp, entry))
                else:
                    others.append(entry)
        if not calling:
            await self._keep(others)
            return
        step = self._max_in_flight
        for start in range(0, len(calling), step):
            chunk = calling[start : start + step]
            for _ in chunk:
                await self._in_flight.acquire()
            self._running += len(chunk)
            after = others if start + step >= len(calling) else []
            calls.start_soon(self._write_and_perform, chunk, after, now, calls)

    async def _keep(self, entries: list[NewEntry]) -> None:
        """Hand intents that call nothing to their writer."""
        if entries:
            assert self._records is not None
            await hand_on(self._records, entries)

    async def _write_and_perform(
        self,
        calling: list[tuple[Intent, Stamps, NewEntry]],
        others: list[NewEntry],
        now: datetime,
        calls: anyio.abc.TaskGroup,
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
            self._finished(len(calling))
            raise
        new = [(i, e, s) for (i, s, _), e in zip(calling, ids, strict=True) if e is not None]
        self._finished(len(calling) - len(new))  # delivered before (a reconnect replayed it)
        for args in new[:-1]:
            calls.start_soon(self._perform_and_report, *args)
        await self._keep(others)
        if new:
            await self._perform_and_report(*new[-1])

    def _finished(self, calls: int) -> None:
        """Calls that are over (or were never made) free their in-flight slots."""
        self._running -= calls
        for _ in range(calls):
            self._in_flight.release()

    def _count(self, intent: Intent) -> None:
        self._counts["decided"] += 1
        status = intent.status_before_call()
        if status in ("skipped", "observed"):
            self._counts[status] += 1

    async def _write_outcomes(self, outcomes: MemoryObjectReceiveStream[_Outcome]) -> None:
        async with outcomes:
            async for first in outcomes:
                batch = _more(outcomes, [first], self.batch_max)
                with anyio.CancelScope(shield=True):
                    await self._record(batch)

    async def _write_records(self, records: MemoryObjectReceiveStream[list[NewEntry]]) -> None:
        """Write the intents that call nothing: what queued up meanwhile goes together."""
        async with records:
            async for first in records:
                lists = _more(records, [first], self.batch_max)
                entries = [e for entries in lists for e in entries]
                with anyio.CancelScope(shield=True):
                    await self.store.record(entries, self.clock.now())

    async def _record(self, batch: list[_Outcome]) -> None:
        await self.store.finish(
            [(o.entry_id, o.status, o.error) for o in batch],
            self.clock.now(),
            timers=[t for o in batch for t in o.timers],
            params={o.entry_id: o.params for o in batch if o.params},
        )

    async def _perform_and_report(self, intent: Intent, entry_id: int, stamps: Stamps) -> None:
        try:
            outcome = await self.perform(intent, entry_id, stamps=stamps)
            assert self._outcomes is not None
            with anyio.CancelScope(shield=True):
                await self._outcomes.send(outcome)
        finally:
            self._finished(1)

    # --- gating -------------------------------------------------------------------------

    def gate(self, intent: Intent) -> Intent:
        """The gate's verdict on one intent (:func:`modbot.actions.gate.gate`), saying
        once per rule and scope when a rule only observes for want of a scope."""
        gated = gating.gate(intent, self.gates, epoch(self.clock), self.policy)
        scope = gated.missing_scope
        if scope is not None:
            rule, action = intent.rule_id, intent.action
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
    ) -> _Outcome:
        """Make the call of one recorded intent; the outcome to write (never raises).

        Whatever goes wrong, the intent ends ``failed`` with the error's class and
        message, and the next intent goes on. ``stamps`` say when the event arrived and
        was decided: the first try's delays go into :meth:`latency`.
        """
        try:
            return await self._perform(intent, entry_id, stamps)
        except Exception as exc:  # one intent never stops the others
            self._counts["failed"] += 1
            log.exception(
                "action.crashed", action=intent.action, rule=intent.rule_id, entry=entry_id
            )
            return _Outcome(entry_id, "failed", failure(exc), [])

    async def _perform(self, intent: Intent, entry_id: int, stamps: Stamps | None) -> _Outcome:
        kind = kind_of(intent.action)
        route = kind.route if kind is not None else None
        if kind is None or kind.call is None or route is None:
            return _Outcome(entry_id, "failed", f"{intent.action} is not an API call", [])
        if self.client is None:
            return _Outcome(entry_id, "failed", "no API client (offline)", [])
        self._counts["called"] += 1
        error: str | None = None
        retryable = False
        for _ in range(RATE_LIMIT_ATTEMPTS):
            await self._wait_route(route)
            try:
                async with self._limit(route):
                    first_try, stamps = stamps, None
                    with self._timed(first_try):
                        await kind.call(self.client, intent)
            except RateLimited as exc:
                pause = exc.retry_after if exc.retry_after is not None else 10.0
                self._paused_until[route] = max(
                    self._paused_until.get(route, 0.0), epoch(self.clock) + pause
                )
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
                    "action.crashed", action=intent.action, rule=intent.rule_id, entry=entry_id
                )
                break
            else:
                gating.called(intent, self.gates)
                self._counts["done"] += 1
                return _Outcome(entry_id, "done", None, self._timers_for(intent, entry_id))
        self._counts["failed"] += 1
        error = shown(error, ERROR_LIMIT) if error is not None else None
        gating.failed(intent, self.gates)
        log.warning(
            "action.failed", action=intent.action, rule=intent.rule_id, entry=entry_id, error=error
        )
        return _Outcome(entry_id, "failed", error, [], retryable=retryable)

    @contextlib.contextmanager
    def _timed(self, stamps: Stamps | None) -> Iterator[None]:
        """Note a first try's delays: arrival and decision to sent, decision to answer."""
        if stamps is None:
            yield
            return
        delays, sent = self._delays, self.clock.monotonic()
        if stamps.received is not None:
            delays["arrival"].append(sent - stamps.received)
        if stamps.decided is not None:
            delays["decision"].append(sent - stamps.decided)
        try:
            yield
        finally:
            if stamps.decided is not None:
                delays["answer"].append(self.clock.monotonic() - stamps.decided)

    async def _wait_route(self, route: str) -> None:
        until = self._paused_until.get(route)
        if until is None:
            return
        delay = until - epoch(self.clock)
        if delay > 0:
            await anyio.sleep(min(delay, 120.0))

    def _limit(self, route: str) -> anyio.Semaphore:
        """The slots of one route (a route added to the action table later gets its own)."""
        limit = self._route_limits.get(route)
        if limit is None:
            limit = self._route_limits[route] = anyio.Semaphore(self._per_route, fast_acquire=True)
        return limit

    def _timers_for(
        self, intent: Intent, entry_id: int
    ) -> list[tuple[float, str, str, str, str, int]]:
        """The durable timer that ends this action later, if it needs one (the table's
        ``expiry``): the rest of a long mute (per viewer), comments off for a while
        (the whole room)."""
        kind = kind_of(intent.action)
        if kind is None or kind.expiry is None:
            return []
        timer, user = kind.expiry.timer, intent.user_id
        if kind.takes == "toggle":
            on = intent.comments_enabled is not False
            after, user = (None if on else intent.decision.comments_for_s), ""
        else:
            after = intent.unmute_after
        if not after:
            return []
        return [(epoch(self.clock) + after, timer, intent.streamer, intent.room_id, user, entry_id)]

    # --- one-off paths: undo, timers, recovery -----------------------------------------

    async def carry_out(self, intent: Intent) -> tuple[Entry, bool]:
        """Record, call and finish one intent now (undo, expiry).

        Returns the final entry and whether a failure is worth trying again later.
        """
        (entry_id,) = await self.store.add([intent.entry()], self.clock.now())
        if entry_id is None:
            msg = "the audit log already has this entry"
            raise AlreadyRecorded(msg)
        retryable = False
        if intent.calls_api:
            outcome = await self.perform(intent, entry_id)
            retryable = outcome.retryable
            with anyio.CancelScope(shield=True):
                await self._record([outcome])
        entry = await self.store.get(entry_id)
        assert entry is not None
        return entry, retryable

    async def recover(self) -> tuple[int, int]:
        """Resolve ``pending`` intents a crash left: call again if still meaningful.

        Returns (retried, given up). Mutes, bans and comment toggles are retried within
        ten minutes of their decision; chat messages within a minute. The others are
        marked ``failed`` with why. Each row is replayed at most once, whatever happens
        to the replay (the row notes the try before the call), for at most
        ``RECOVER_CALL_LIMIT`` seconds, and all of them within ``RECOVER_BUDGET``: no row
        can hold start-up, or crash it twice. A chat message passes the speech check
        again (the rules may have changed since it was decided).
        """
        retried = given_up = 0
        now = self.clock.now()
        deadline = anyio.current_time() + RECOVER_BUDGET
        for entry in await self.store.pending():
            why = self._not_replayed(entry, now)
            intent = None
            if why is None:
                try:
                    intent = intent_from_entry(entry)
                except Exception as exc:  # noqa: BLE001 (a row no modbot wrote: said in the row)
                    why = f"could not be replayed after a restart: {failure(exc)}"
            left = deadline - anyio.current_time()
            if intent is not None and left <= 0:
                intent, why = None, f"not replayed: start-up spends at most {RECOVER_BUDGET:g}s"
            if intent is None:
                await self.store.finish([(entry.id, "failed", why)], now)
                given_up += 1
                continue
            if (problem := gating.unsaid(intent, self.policy.speech)) is not None:
                await self.store.finish([(entry.id, "skipped", problem)], now)
                given_up += 1
                continue
            await self.store.patch_params(entry.id, {"replayed_at_start": True}, now)
            limit = min(RECOVER_CALL_LIMIT, left)
            late = f"its replay after a restart took over {limit:.3g}s"
            outcome = _Outcome(entry.id, "failed", late, [])
            with anyio.move_on_after(limit):
                outcome = await self.perform(intent, entry.id)
            outcome.params = {"recovered_after_restart": True}
            with anyio.CancelScope(shield=True):
                await self._record([outcome])
            retried += 1
        return retried, given_up

    @staticmethod
    def _not_replayed(entry: Entry, now: datetime) -> str | None:
        """Why a pending row is not called again at start-up (None: it is)."""
        if entry.params.get("replayed_at_start"):
            return "interrupted again while it was replayed after a restart; not tried a third time"
        try:
            age = (now - datetime.fromisoformat(entry.ts)).total_seconds()
        except (TypeError, ValueError):
            return f"its time {shown(str(entry.ts), 40)!r} cannot be read; not replayed"
        kind = kind_of(entry.action)
        limit = kind.recover_age if kind is not None else RECOVER_AGE
        if kind is None or kind.route is None or age > limit:
            return (
                f"interrupted by a restart and {age:.0f}s old when modbot came back "
                f"(retried only within {limit:.0f}s)"
            )
        return None


def failure(exc: BaseException) -> str:
    """What went wrong, for the audit row: the error's class and its message, cleaned."""
    message = scrub(str(exc))
    name = type(exc).__name__
    return shown(f"{name}: {message}" if message else name, ERROR_LIMIT)


def _more(receive: MemoryObjectReceiveStream[T], batch: list[T], most: int) -> list[T]:
    """``batch`` and what has queued up on ``receive`` behind it, ``most`` items in all."""
    while len(batch) < most:
        try:
            batch.append(receive.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream):
            break
    return batch
