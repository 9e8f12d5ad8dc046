"""The daemon's side of nukes and raid sweeps: one incident's actions, each viewer once (I/O).

The engine loop hands every event and its decisions to :meth:`Sweeper.observe` (plain
code, no waiting): the comment goes into the recent-comments memory, an enforced
per-viewer decision of a per-room ``repeat`` rule starts a sweep over the raid's copies
(:mod:`modbot.actions.nuke`), and every running sweep is offered the comment. What a
sweep reaches goes onto a bounded queue (full: the engine's own decision stays where it
was, and the drop is counted) that :meth:`Sweeper.run` works through: it records the
incident once, then each action as a rule's is (the gate: scopes, dry run,
de-duplication; the audit intent; the call; the outcome), a few at a time.

``modbot nuke`` reaches the daemon through the audit database's ``requests`` table
(:mod:`modbot.audit.requests`), polled every ``POLL`` seconds: the request is taken,
its pattern compiled, the sweep started and the recent comments selected in one step
(no comment falls between the two, none is looked at twice), the past ones are acted
on, and the answer says what was done.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import anyio
import structlog
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from modbot.actions import nuke as nk
from modbot.actions.executor import AlreadyRecorded, Executor
from modbot.actions.plan import Intent
from modbot.actions.recent import RecentComments, Said
from modbot.actions.table import format_duration, kind_of
from modbot.audit import incidents, requests
from modbot.clock import Clock, epoch
from modbot.events import Event, format_ts
from modbot.inert import shown
from modbot.rules.compile import CompiledRuleset
from modbot.rules.engine import Decision, Engine

log = structlog.get_logger("modbot.sweeper")

POLL = 0.5  # seconds between two looks at the requests table
QUEUE = 10_000  # targets waiting to be acted on
AT_ONCE = 8  # actions of sweeps in flight together
MAX_SWEEPS = 64  # sweeps running at once (nukes and raids)


class _Job(NamedTuple):
    sweep: nk.Sweep
    target: nk.Target
    decision: Decision | None  # the engine's own (a raid's tipping copy), else made here


class SweeperStatistics(NamedTuple):
    sweeps: int  # running now
    started: int
    acted: int  # targets acted on (whatever the outcome)
    dropped: int  # targets the full queue could not take
    errors: int


@dataclass
class _Tally:
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, status: str) -> None:
        self.counts[status] = self.counts.get(status, 0) + 1


class Sweeper:
    """Nukes and raid sweeps for one daemon (see the module docstring)."""

    def __init__(
        self, engine: Engine, clock: Clock, streamers: Sequence[str], *, poll: float = POLL
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.streamers = list(streamers)
        self.poll = poll
        self.recent = RecentComments()
        self.sweeps: list[nk.Sweep] = []
        self.executor: Executor | None = None
        self._queue: MemoryObjectSendStream[_Job] | None = None
        self._limit = anyio.Semaphore(AT_ONCE)
        self._incident_lock = anyio.Lock()
        # The per-room repeat rules of the ruleset in use: id -> (within, similarity).
        self._raid_rules: tuple[CompiledRuleset | None, dict[str, tuple[float, float]]] = (
            None,
            {},
        )
        self._counts = dict.fromkeys(("started", "acted", "dropped", "errors"), 0)
        self._stopped: set[int] = set()  # incidents `undo --incident N` stopped

    def statistics(self) -> SweeperStatistics:
        return SweeperStatistics(sweeps=len(self.sweeps), **self._counts)

    # --- the engine loop's side (no waiting) -------------------------------------------

    def observe(self, event: Event, decisions: list[Decision]) -> list[Decision]:
        """Note a comment, start or feed sweeps; the decisions left for the executor.

        Never raises: a failure here is counted and logged, and the engine's decisions
        go on as they were.
        """
        try:
            said = self.recent.note(event)
            if said is None or self._queue is None:
                return decisions
            room = RecentComments.room_of(event)
            engine_said = decisions
            if decisions:
                decisions = self._trips(event, said, room, decisions)
            if self.sweeps:
                self._offer(said, event.streamer, room, engine_said)
        except Exception:  # one event never stops the sweeps or the engine's decisions
            self._counts["errors"] += 1
            if self._counts["errors"] in (1, 10, 100) or self._counts["errors"] % 1000 == 0:
                log.exception("sweep.failed", msg_id=event.msg_id, errors=self._counts["errors"])
        return decisions

    def _trips(
        self, event: Event, said: Said, room: str, decisions: list[Decision]
    ) -> list[Decision]:
        """A per-room repeat rule acting on the viewer: its decision joins the raid's
        sweep (started now if none runs for it); the others stay."""
        out: list[Decision] = []
        for d in decisions:
            window = self._raid_window(d)
            if window is None:
                out.append(d)
                continue
            sweep = next((s for s in self.sweeps if s.rule == d.rule and s.room == room), None)
            if sweep is None and len(self.sweeps) < MAX_SWEEPS:
                sweep = self._start_raid(event, said, room, d, window)
            if sweep is None:
                out.append(d)
            elif said.user_id in sweep.acted:
                out.append(d._replace(suppressed="already acted on in this raid's incident"))
            else:
                sweep.acted.add(said.user_id)
                if not self._put(_Job(sweep, nk.Target(said, d.detail, room), d)):
                    sweep.acted.discard(said.user_id)
                    out.append(d)
        return out

    def _raid_window(self, d: Decision) -> tuple[float, float] | None:
        """(within, similarity) when ``d`` is an enforced action on the viewer by a
        per-room repeat rule; else None."""
        kind = kind_of(d.action)
        if not d.enforced or kind is None or kind.severity <= 0:
            return None
        ruleset = self.engine.ruleset
        if self._raid_rules[0] is not ruleset:  # once per ruleset (a reload swaps it)
            self._raid_rules = (
                ruleset,
                {
                    r.id: (r.window.within, r.window.similarity)
                    for r in ruleset.rules
                    if r.window is not None and r.window.kind == "repeat" and r.window.per == "room"
                },
            )
        return self._raid_rules[1].get(d.rule)

    def _start_raid(
        self, event: Event, said: Said, room: str, d: Decision, window: tuple[float, float]
    ) -> nk.Sweep:
        within, similarity = window
        near, copies = nk.cluster(self.recent.since(room, said.t - within), said, similarity)
        rule = self.engine.ruleset.rule(d.rule)
        exempt = rule.exempt if rule is not None else None
        sweep = nk.Sweep(
            streamer=event.streamer,
            match=near,
            then=nk.Then(d.action, d.duration_s),
            until=said.t + within,
            room=room,
            spares=nk.Spares.of(exempt.roles if exempt else (), exempt.ids if exempt else ()),
            extend=within,
            longest=said.t + nk.SWEEP_LONGEST,
            rule=d.rule,
            rule_hash=d.rule_hash,
            detail=f"{d.rule} swept the raid",
        )
        self.sweeps.append(sweep)
        self._counts["started"] += 1
        log.info(
            "sweep.raid",
            rule=d.rule,
            streamer=event.streamer,
            room=room,
            copies=len(copies) + 1,
            keys=len(near.keys),
        )
        for copy in copies:
            target = sweep.take(copy, room, "a near copy of the raid's text")
            if target is not None and not self._put(_Job(sweep, target, None)):
                break
        return sweep

    def _offer(self, said: Said, streamer: str, room: str, decisions: list[Decision]) -> None:
        """Offer a new comment to every running sweep; drop the sweeps that ended."""
        busy = any(d.enforced and d.user_id == said.user_id for d in decisions)
        live = []
        for sweep in self.sweeps:
            if sweep.incident in self._stopped or sweep.ended(said.t):
                log.info(
                    "sweep.ended",
                    incident=sweep.incident,
                    rule=sweep.rule,
                    acted=len(sweep.acted),
                    stopped=sweep.incident in self._stopped,
                )
                continue
            live.append(sweep)
            if busy:
                continue  # a rule acts on this viewer now: no second action for one comment
            target = sweep.offer(said, streamer, room)
            if target is not None and not self._put(_Job(sweep, target, None)):
                sweep.acted.discard(said.user_id)
        self.sweeps = live

    def _put(self, job: _Job) -> bool:
        assert self._queue is not None
        try:
            self._queue.send_nowait(job)
        except anyio.WouldBlock:
            self._counts["dropped"] += 1
            if self._counts["dropped"] in (1, 100) or self._counts["dropped"] % 10_000 == 0:
                log.warning("sweep.queue_full", dropped=self._counts["dropped"], queue=QUEUE)
            return False
        return True

    # --- the task ------------------------------------------------------------------------

    async def run(
        self, executor: Executor, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Act on what the sweeps reach, and take ``modbot nuke`` requests, until cancelled."""
        self.executor = executor
        store = executor.store
        stale = await requests.expire_stale(store, self.clock.now())
        if stale:
            log.info("requests.expired_at_start", count=stale)
        send, receive = anyio.create_memory_object_stream[_Job](QUEUE)
        self._queue = send
        try:
            async with anyio.create_task_group() as tg, send, receive:
                tg.start_soon(self._work, receive, tg)
                task_status.started()
                while True:
                    try:
                        await self._take_requests(tg)
                        await self._drop_stopped()
                    except Exception:  # the next poll tries again; a request is answered once
                        self._counts["errors"] += 1
                        log.exception("requests.poll_failed")
                    await anyio.sleep(self.poll)
        finally:
            self._queue = None

    async def _drop_stopped(self) -> None:
        """Drop the sweeps whose incident ``undo --incident N`` stopped."""
        assert self.executor is not None
        numbers = [s.incident for s in self.sweeps if s.incident is not None]
        stopped = await incidents.stopped_among(self.executor.store, numbers)
        if not stopped:
            return
        self._stopped |= stopped
        for sweep in self.sweeps:
            if sweep.incident in stopped:
                log.info("sweep.stopped", incident=sweep.incident, acted=len(sweep.acted))
        self.sweeps = [s for s in self.sweeps if s.incident not in stopped]

    async def _is_stopped(self, sweep: nk.Sweep) -> bool:
        if sweep.incident is None:
            return False
        if sweep.incident not in self._stopped:
            assert self.executor is not None
            found = await incidents.stopped_among(self.executor.store, [sweep.incident])
            self._stopped |= found
        return sweep.incident in self._stopped

    async def _work(
        self, receive: MemoryObjectReceiveStream[_Job], tg: anyio.abc.TaskGroup
    ) -> None:
        async for job in receive:
            await self._limit.acquire()
            try:
                await self._incident(job.sweep)
            except BaseException:
                self._limit.release()
                raise
            tg.start_soon(self._act_released, job)

    async def _act_released(self, job: _Job) -> None:
        try:
            await self._act(job)
        finally:
            self._limit.release()

    async def _incident(self, sweep: nk.Sweep) -> int:
        """The sweep's incident number, recorded the first time it is needed."""
        async with self._incident_lock:  # one number per sweep, whoever asks first
            if sweep.incident is None:
                assert self.executor is not None
                sweep.incident = await incidents.new_incident(
                    self.executor.store,
                    self.clock.now(),
                    kind="nuke" if sweep.rule == nk.NUKE_RULE else "raid",
                    streamer=sweep.streamer,
                    detail=sweep.detail,
                    by=sweep.by,
                )
            return sweep.incident

    async def _act(self, job: _Job, tally: _Tally | None = None) -> None:
        """Carry out one target's action (gated, audited, called); never raises."""
        executor = self.executor
        assert executor is not None
        sweep, target = job.sweep, job.target
        self._counts["acted"] += 1
        try:
            if await self._is_stopped(sweep):  # undone meanwhile: no one more
                if tally is not None:
                    tally.add("stopped")
                return
            intent = self._intent(sweep, target, job.decision)
            entry, _ = await executor.carry_out(executor.gate(intent))
        except AlreadyRecorded:
            if tally is not None:
                tally.add("skipped")
            return
        except Exception:  # one viewer never stops the others
            self._counts["errors"] += 1
            log.exception(
                "sweep.action_failed", incident=sweep.incident, user_id=target.said.user_id
            )
            if tally is not None:
                tally.add("failed")
            return
        if tally is not None:
            tally.add(entry.status)

    def _intent(self, sweep: nk.Sweep, target: nk.Target, decision: Decision | None) -> Intent:
        said = target.said
        incident = sweep.incident
        made = sweep.decision(target)
        if decision is not None:  # the engine's own, with its detail, in the incident
            made = decision._replace(detail=f"incident #{incident}; {decision.detail}")
        room_id = "" if target.room == sweep.streamer else target.room
        nuked = sweep.rule == nk.NUKE_RULE
        extra: dict[str, Any] = {"incident": incident, "matched_msg_id": said.msg_id}
        if sweep.by:
            extra["by"] = sweep.by
        return Intent(
            made,
            ts=self.clock.now(),
            streamer=sweep.streamer,
            room_id=room_id,
            # A nuke's rows are not keyed by the message: a later nuke (after an undo)
            # may act on the same message again. A raid's are, as the rule's own are.
            msg_id="" if nuked else said.msg_id,
            msg_text=said.text,
            reason=sweep.reason,
            extra=extra,
        )

    # --- modbot nuke ---------------------------------------------------------------------

    async def _take_requests(self, tg: anyio.abc.TaskGroup) -> None:
        executor = self.executor
        assert executor is not None
        store = executor.store
        for request in await requests.pending(store):
            now = self.clock.now()
            if request.kind != "nuke":
                await requests.refuse(
                    store, request.id, now, f"unknown request {shown(request.kind)!r}"
                )
                continue
            if not await requests.take(store, request.id, now, requests.daemon_name()):
                continue  # expired meanwhile, or another daemon took it
            tg.start_soon(self._nuke, request)

    async def _nuke(self, request: requests.Request) -> None:
        begun: list[int] = []  # the incident, once recorded
        # Answered whatever happens, a stop (cancellation) included: a row left `taken`
        # would keep its command waiting, and no start would ever answer it.
        ok = False
        what: dict[str, Any] = {"error": "the daemon stopped before the nuke began"}
        try:
            ok, what = await self._nuke_work(request.args, begun)
        except Exception as exc:  # the answer says it; the daemon goes on
            self._counts["errors"] += 1
            log.exception("nuke.failed", request=request.id)
            ok, what = False, {"error": f"the daemon failed the nuke: {type(exc).__name__}"}
        except BaseException:  # stopped (cancelled) midway: said, then passed on
            if begun:
                what = {
                    "error": f"the daemon stopped during the nuke; incident #{begun[0]}",
                    "incident": begun[0],
                }
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await self._answer(request.id, ok, what)

    async def _answer(self, request_id: int, ok: bool, what: dict[str, Any]) -> None:
        assert self.executor is not None
        try:
            await requests.answer(
                self.executor.store, request_id, self.clock.now(), ok=ok, what=what
            )
        except Exception:  # a stopping daemon's store: the next start expires the row
            self._counts["errors"] += 1
            log.exception("nuke.answer_failed", request=request_id)
            return
        log.info(
            "nuke.answered",
            request=request_id,
            ok=ok,
            **{k: v for k, v in what.items() if k != "error"},
        )

    async def _nuke_work(
        self, args: dict[str, Any], begun: list[int]
    ) -> tuple[bool, dict[str, Any]]:
        try:
            order = NukeOrder.of(args)
            pattern = nk.compile_pattern(order.pattern)
            then = nk.parse_then(order.then)
            streamer = self._streamer(order.streamer)
        except nk.PatternRefused as exc:
            return False, {"error": str(exc)}
        if len(self.sweeps) >= MAX_SWEEPS:
            return False, {"error": f"{MAX_SWEEPS} sweeps are running; wait for one to end"}
        now = epoch(self.clock)
        sweep = nk.Sweep(
            streamer=streamer,
            match=pattern.matches,
            then=then,
            until=now + order.for_s,
            detail=f"nuke {shown(pattern.describe(), 120)}",
            reason=order.reason,
            by=order.by,
        )
        rooms = self.recent.rooms_of(streamer)[-1:]
        # In one step, with no wait: the sweep is in place for the next comment, and
        # every comment before it is in the memory.
        past = nk.select(sweep, [(r, self.recent.since(r, now - order.since_s)) for r in rooms])
        if order.for_s > 0:
            self.sweeps.append(sweep)
        self._counts["started"] += 1
        incident = await self._incident(sweep)
        begun.append(incident)
        log.info(
            "nuke.started",
            incident=incident,
            streamer=streamer,
            pattern=shown(pattern.describe(), 120),
            then=then.describe(),
            past=len(past),
            for_s=order.for_s,
        )
        tally = _Tally()
        async with anyio.create_task_group() as tg:
            for target in past:
                await self._limit.acquire()
                tg.start_soon(self._act_counted, _Job(sweep, target, None), tally)
        what: dict[str, Any] = {
            "incident": incident,
            "streamer": streamer,
            "pattern": pattern.describe(),
            "then": then.describe(),
            "since": format_duration(order.since_s),
            "past": len(past),
            "counts": tally.counts,
            "for": format_duration(order.for_s) if order.for_s else "",
            "until": format_ts(datetime.fromtimestamp(now + order.for_s, UTC))
            if order.for_s
            else "",
        }
        return True, what

    async def _act_counted(self, job: _Job, tally: _Tally) -> None:
        try:
            await self._act(job, tally)
        finally:
            self._limit.release()

    def _streamer(self, wanted: str | None) -> str:
        if wanted:
            name = wanted.removeprefix("@")
            for s in self.streamers:
                if s.casefold() == name.casefold():
                    return s
            msg = f"this daemon does not watch {shown(name)!r} (it watches {', '.join(self.streamers)})"
            raise nk.PatternRefused(msg)
        if len(self.streamers) == 1:
            return self.streamers[0]
        msg = f"give --streamer: this daemon watches {', '.join(self.streamers)}"
        raise nk.PatternRefused(msg)


@dataclass(frozen=True)
class NukeOrder:
    """A nuke request's arguments, checked (a row anyone with the file could write)."""

    pattern: str
    then: str
    since_s: float
    for_s: float
    streamer: str | None
    reason: str | None
    by: str | None

    @classmethod
    def of(cls, args: dict[str, Any]) -> NukeOrder:
        def text(name: str) -> str | None:
            value = args.get(name)
            if value is not None and not isinstance(value, str):
                raise nk.PatternRefused(f"the request's {name} is not text")
            return value

        def needed(name: str) -> str:
            value = text(name)
            if value is None:
                raise nk.PatternRefused(f"the request has no {name}")
            return value

        def seconds(name: str, longest: float) -> float:
            value = args.get(name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 <= value <= longest
            ):
                raise nk.PatternRefused(
                    f"the request's {name} is not a number of seconds up to {longest:g}"
                )
            return float(value)

        pattern = needed("pattern")
        then = needed("then")
        return cls(
            pattern,
            then,
            seconds("since_s", nk.MAX_SINCE),
            seconds("for_s", nk.MAX_FOR),
            text("streamer"),
            text("reason"),
            text("by"),
        )
