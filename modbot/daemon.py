"""``modbot run``: the composition root, and the only owner of long-lived tasks (I/O).

    watcher (bulk live check, one WebSocket source per live streamer)
        -> events (bounded stream) -> engine loop (rules, one try per event)
        -> work (bounded stream) -> executor (audit intent, API call, outcome)
    timers (unmute at expiry, comments back on), signals (HUP reload, TERM/INT stop),
    rule-file watcher (debounced reload), systemd notify (READY, STATUS, WATCHDOG)

Shutdown: the sources are cancelled first (no new intake); the engine drains what was
received and the executor finishes the calls in flight, within ``grace`` seconds;
whatever is still in flight then is recorded as failed ("interrupted by shutdown"),
so no intent is left pending; the database is closed last.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import anyio
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from modbot.__about__ import build
from modbot.actions.executor import Executor, Work
from modbot.actions.moderators import Humans
from modbot.actions.rebans import Rebans
from modbot.actions.sweeper import Sweeper
from modbot.actions.timers import Timers
from modbot.audit.handles import Handles
from modbot.audit.store import AuditStore, Patience, default_db
from modbot.clock import Clock, SystemClock
from modbot.config import Settings
from modbot.errors import AuditError, ConfigError
from modbot.euler.oauth import grant_unsaved
from modbot.euler.session import api_session, websocket_factory
from modbot.euler.tokens import TokenSet
from modbot.euler.watcher import Arrival, Watcher
from modbot.euler.ws import EulerWebSocket
from modbot.events import Event
from modbot.files import check_state_dir
from modbot.rules.compile import CompiledRuleset, load_ruleset
from modbot.rules.diagnostics import Diagnostic, errors
from modbot.rules.engine import Decision, Engine
from modbot.rules.loader import one_line
from modbot.runtime import tuned_runtime
from modbot.sdnotify import Notifier, watchdog_interval
from modbot.streams import send_nowait_or_wait

log = structlog.get_logger("modbot.daemon")

EVENT_BUFFER = 1_000  # bundles (a WebSocket frame's events each)
WORK_BUFFER = 1_000  # batches of events with decisions
GRACE = 10.0
RULE_POLL = 2.0
RELOAD_LIMIT = 30.0  # seconds a load of the rules may take; then it is abandoned
STATUS_EVERY = 5.0
ENGINE_SLICE = 8  # events decided between two turns of the other tasks
LAG_PROBE = 0.05  # how often the event loop's lateness is measured
STALL = 0.05  # a lateness above this is a stall (logged, counted)


@dataclass
class DaemonStatistics:
    events: int = 0
    decisions: int = 0
    errors: int = 0
    reloads: int = 0
    failed_reloads: int = 0
    loop_stalls: int = 0  # times the event loop was late by more than STALL seconds
    max_loop_lag_ms: float = 0.0
    gc_full: int = 0  # full (generation 2) garbage collections
    max_gc_pause_ms: float = 0.0  # the longest collection (it stops the event loop)


class Daemon:
    """Everything ``modbot run`` does; ``run()`` returns the exit code."""

    def __init__(
        self,
        settings: Settings,
        *,
        rule_paths: Sequence[Path] | None = None,
        clock: Clock | None = None,
        notifier: Notifier | None = None,
        handle_signals: bool = True,
        grace: float = GRACE,
        ws_factory: Callable[[str], EulerWebSocket] | None = None,
        on_decisions: Callable[[Event, list[Decision]], None] | None = None,
        patience: Patience | None = None,
        reload_limit: float = RELOAD_LIMIT,
    ) -> None:
        self.settings = settings
        self.rule_paths = list(rule_paths or [settings.rules_dir])
        self.clock: Clock = clock or SystemClock()
        self.notifier = notifier or Notifier()
        self.handle_signals = handle_signals
        self.grace = grace
        self.patience = patience or Patience()  # how audit writes wait out a full disk
        self._ws_factory = ws_factory
        self._on_decisions = on_decisions
        self.engine = Engine()
        self.sweeper = Sweeper(self.engine, self.clock, settings.streamers)  # nukes, raids
        self.rebans = Rebans(self.clock)  # bans carried into later lives
        self.humans = Humans(self.clock, self.rebans.memory)  # moderators' own actions
        self.stats = DaemonStatistics()
        self.stopping = anyio.Event()
        self.started = anyio.Event()
        self.executor: Executor | None = None
        self.watcher: Watcher | None = None
        self.store: AuditStore | None = None
        self._rule_mtimes: dict[Path, float] = {}
        self.reload_limit = reload_limit
        self._reload_lock = anyio.Lock()
        self._reload_wanted = anyio.Event()
        self._loaded: threading.Event | None = None  # set when the last load has ended
        self.granted: frozenset[str] | None = None

    # --- the whole life -----------------------------------------------------------------

    async def run(self) -> int:
        settings = self.settings
        if not settings.streamers:
            msg = "no streamers to watch: set streamers (MODBOT_STREAMERS=handle1,handle2)"
            raise ConfigError(msg, setting="streamers")
        warning = check_state_dir(settings.state_dir)
        if warning:
            log.warning("state_dir.open", message=warning)
        async with AsyncExitStack() as stack:
            runtime = stack.enter_context(tuned_runtime(self.stats))
            client, tokens, grant = await stack.enter_async_context(
                api_session(settings, self.clock)
            )
            self.granted = grant.scopes
            if not await self.reload(initial=True):
                return 1
            store = await stack.enter_async_context(
                AuditStore.open(default_db(settings.state_dir), patience=self.patience)
            )
            self.store = store
            executor = Executor(
                client,
                store,
                self.clock,
                dry_run=settings.dry_run,
                granted_scopes=grant.scopes,
                speech=self.engine.speech_problem,
            )
            self.executor = executor
            tokens.on_refresh.append(self._refreshed)
            retried, given_up = await executor.recover()
            if retried or given_up:
                log.info("recovered", retried=retried, given_up=given_up)
            timers = Timers(executor, store, self.clock)
            runtime.settle()  # start-up is done: freeze it, tune the interpreter
            watcher = Watcher(
                client,
                settings.streamers,
                self._ws_factory or websocket_factory(settings),
                cache=Handles(store),
                clock_now=self.clock.now,
                interval=settings.live_check_interval,
                monotonic=self.clock.monotonic,
            )
            self.watcher = watcher
            await self._serve(executor, timers, watcher)
        self.notifier.close()
        latency: dict[str, float] = {}
        if self.executor is not None:
            for name, figures in self.executor.latency().items():
                latency.update({f"{name}_{k}": v for k, v in figures._asdict().items()})
        log.info("stopped", **self.stats.__dict__, **latency)
        return 0

    async def _serve(self, executor: Executor, timers: Timers, watcher: Watcher) -> None:
        events_send, events_recv = anyio.create_memory_object_stream[Arrival](EVENT_BUFFER)
        work_send, work_recv = anyio.create_memory_object_stream[list[Work]](WORK_BUFFER)
        pipeline_done = anyio.Event()

        async def pipeline() -> None:
            try:
                async with anyio.create_task_group() as stages:
                    await stages.start(executor.run, work_recv)
                    stages.start_soon(self._engine_loop, events_recv, work_send)
            finally:
                pipeline_done.set()

        gave_up = False
        try:
            async with anyio.create_task_group() as main:
                if self.handle_signals:  # first: a TERM during the starts below stops cleanly
                    main.start_soon(self._signals)
                main.start_soon(pipeline)
                await main.start(timers.run)
                await main.start(self.sweeper.run, executor)
                await main.start(self.rebans.run, executor)
                await main.start(self.humans.run, executor)
                main.start_soon(self._reloader)
                main.start_soon(self._watch_rule_files)
                main.start_soon(self._heartbeat)
                main.start_soon(self._loop_lag)
                async with anyio.create_task_group() as sources:
                    await sources.start(watcher.run, events_send)
                    self.notifier.ready(self._status())
                    self.started.set()
                    log.info(
                        "ready",
                        streamers=len(watcher.streams),
                        rules=len(self.engine.ruleset.rules),
                        dry_run=self.settings.dry_run,
                        build=build(),
                    )
                    await self.stopping.wait()
                    self.notifier.stopping()
                    log.info("stopping", grace=self.grace)
                    sources.cancel_scope.cancel()
                with anyio.move_on_after(self.grace):
                    await pipeline_done.wait()
                if self.store is not None and not pipeline_done.is_set():
                    gave_up = True
                    self.store.stop_waiting()  # a full disk does not hold the shutdown up
                main.cancel_scope.cancel()
        except* AuditError:
            if not gave_up:
                raise
            # The writes that gave up at the stop: said by _close_pending below.
        with anyio.CancelScope(shield=True):
            await self._close_pending()

    async def _close_pending(self) -> None:
        """After the grace period: record what is still pending, so nothing is left open."""
        store = self.store
        if store is None:
            return
        if store.failing:
            log.error(
                "stopped_with_audit_failing",
                error=store.failing,
                message="decisions made while audit writes failed were not recorded and not"
                " acted on; their decision lines are in this log",
            )
        left = await store.pending()
        if left:
            closing = [
                (e.id, "failed", "interrupted by shutdown before the API answered") for e in left
            ]
            error = None
            try:
                await store.finish(closing, self.clock.now())
            except AuditError as exc:
                error = str(exc)
            if error is not None:
                log.error(
                    "stopped_with_pending",
                    count=len(left),
                    error=error,
                    message="the next start resolves them",
                )
                return
            log.warning("stopped_with_calls_in_flight", count=len(left))

    def stop(self) -> None:
        self.stopping.set()

    # --- stages -------------------------------------------------------------------------

    async def _engine_loop(
        self,
        arrivals: MemoryObjectReceiveStream[Arrival],
        work: MemoryObjectSendStream[list[Work]],
    ) -> None:
        """Decide every event, in slices of ``ENGINE_SLICE`` events between turns.

        The executor and the sockets get their turn after each slice, so a decision
        waits for a slice, not for a whole bundle; bundles already queued are taken
        without a turn of the loop each (a quiet stream's bundle is one event).
        """
        async with arrivals, work:
            batch: list[Work] = []
            since_turn = 0
            while True:
                try:
                    events, received = arrivals.receive_nowait()
                except anyio.WouldBlock:
                    if batch:
                        await send_nowait_or_wait(work, batch)
                        batch = []
                    try:
                        events, received = await arrivals.receive()
                    except anyio.EndOfStream:
                        break
                    since_turn = 0
                except anyio.EndOfStream:
                    break
                for event in events:
                    decisions = self._decide(event)
                    if decisions:
                        batch.append(Work(event, decisions, received, self.clock.monotonic()))
                    since_turn += 1
                    if since_turn >= ENGINE_SLICE:
                        if batch:
                            await send_nowait_or_wait(work, batch)
                            batch = []
                        await anyio.lowlevel.checkpoint()
                        since_turn = 0
            if batch:
                await send_nowait_or_wait(work, batch)

    def _decide(self, event: Event) -> list[Decision]:
        """The engine's decisions for one event, logged; none if the event failed."""
        self.stats.events += 1
        if event.kind == "moderation":  # a moderator's own action: recorded, never judged
            self.humans.observe(event)
            return []
        try:
            decisions = self.engine.evaluate(event, event.ts)
            if decisions:
                self._log_decisions(event, decisions)
        except Exception:  # one bad event never stops the daemon
            self.stats.errors += 1
            log.exception("event.failed", streamer=event.streamer, msg_id=event.msg_id)
            return []
        self.rebans.observe(event, decisions)  # never raises
        return self.sweeper.observe(event, decisions)  # never raises

    def _log_decisions(self, event: Event, decisions: list[Decision]) -> None:
        self.stats.decisions += len(decisions)
        for d in decisions:
            # What is done is logged at info; decisions held back (cooldown, a more
            # severe one, observe) are in the audit log, and at debug here, so a raid
            # does not flood the journal.
            # The audit row's names: the viewer's text is msg_text, ``text`` what modbot
            # says (README, "Operating the service").
            facts = d.logged() | {"streamer": event.streamer, "msg_text": event.text[:200]}
            (log.info if d.enforced else log.debug)("decision", **facts)
        if self._on_decisions is not None:
            self._on_decisions(event, decisions)

    async def _signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    # Never the reload itself here: a stuck one would hold up SIGTERM.
                    log.info("signal", signal="SIGHUP")
                    self.request_reload()
                else:
                    log.info("signal", signal=signal.Signals(signum).name)
                    self.stop()
                    return

    def request_reload(self) -> None:
        """Ask for a reload (SIGHUP, a changed file); requests made while one runs are
        one more reload after it."""
        self._reload_wanted.set()

    async def _reloader(self) -> None:
        """Do the reloads asked for, one at a time (see ``request_reload``)."""
        while True:
            await self._reload_wanted.wait()
            self._reload_wanted = anyio.Event()
            await self.reload()

    async def _watch_rule_files(self) -> None:
        """Reload when a rule file changes (polled; debounced by one quiet interval)."""
        self._rule_mtimes = await self._scan()
        while True:
            await anyio.sleep(RULE_POLL)
            seen = await self._scan()
            if seen == self._rule_mtimes:
                continue
            # Wait until the files stop changing (an editor writes in several steps).
            while True:
                await anyio.sleep(RULE_POLL / 2)
                again = await self._scan()
                if again == seen:
                    break
                seen = again
            self._rule_mtimes = seen
            log.info("rules.changed")
            self.request_reload()

    async def _scan(self) -> dict[Path, float]:
        # Only stat() calls; abandoned when the daemon stops, so a slow disk never holds
        # the stop up.
        return await anyio.to_thread.run_sync(self._scan_rules, abandon_on_cancel=True)

    def _scan_rules(self) -> dict[Path, float]:
        found: dict[Path, float] = {}
        for root in self.rule_paths:
            candidates = [root] if root.is_file() else sorted(root.rglob("*"))
            for path in candidates:
                try:
                    if path.is_file():
                        found[path] = path.stat().st_mtime
                except OSError:
                    continue
        return found

    async def _heartbeat(self) -> None:
        watchdog = watchdog_interval()
        every = min(STATUS_EVERY, watchdog) if watchdog else STATUS_EVERY
        last_status = ""
        while True:
            if watchdog:
                self.notifier.watchdog()
            status = self._status()
            if status != last_status:
                self.notifier.status(status)
                last_status = status
            await anyio.sleep(every)

    async def _loop_lag(self) -> None:
        """Measure how late the event loop wakes up: a stuck loop delays every stream."""
        while True:
            before = anyio.current_time()
            await anyio.sleep(LAG_PROBE)
            lag = anyio.current_time() - before - LAG_PROBE
            if lag > STALL:
                self.stats.loop_stalls += 1
                if self.stats.loop_stalls == 1 or self.stats.loop_stalls % 100 == 0:
                    log.warning(
                        "loop.stall", lag_ms=round(lag * 1000), stalls=self.stats.loop_stalls
                    )
            self.stats.max_loop_lag_ms = max(self.stats.max_loop_lag_ms, round(lag * 1000, 1))

    def _status(self) -> str:
        live = streams = 0
        if self.watcher is not None:
            ws = self.watcher.statistics()
            live, streams = ws.live, ws.streams
        done = self.executor.statistics().done if self.executor else 0
        status = (
            f"{live}/{streams} streams live, {self.stats.events} events, "
            f"{self.stats.decisions} decisions, {done} actions done"
        )
        if self.store is not None and self.store.failing:
            status = f"audit writes failing ({self.store.failing}), waiting; " + status
        unsaved = grant_unsaved(self.settings.state_dir)
        if unsaved:
            status = f"OAuth grant not on disk ({unsaved}), retrying; " + status
        return status

    # --- rules and grants ---------------------------------------------------------------

    async def reload(self, *, initial: bool = False) -> bool:
        """Load the rules and swap them in only when they check; False if they were not.

        One reload at a time (a second call waits for the first). The load runs in a
        thread of its own for at most ``reload_limit`` seconds; one that takes longer
        is abandoned (its thread is left to end, and its result is dropped) and is a
        failed reload, as is any exception it raises: the old rules stay in use.
        """
        async with self._reload_lock:
            if not initial:
                self.notifier.reloading()
            try:
                return await self._reload(initial)
            finally:
                if not initial:
                    self.notifier.ready(self._status())

    async def _reload(self, initial: bool) -> bool:
        granted = self.granted
        paths = list(self.rule_paths)
        ruleset: CompiledRuleset | None = None
        diagnostics: list[Diagnostic] = []
        failure = None
        try:
            ruleset, diagnostics = await self._load(
                lambda: load_ruleset(paths, granted_scopes=granted)
            )
        except TimeoutError:
            failure = (
                f"loading the rules took more than {self.reload_limit:g} s and was abandoned"
                " (is a file on a stuck disk?)"
            )
        except _StillLoading as exc:
            failure = str(exc)
        except Exception as exc:  # noqa: BLE001 (any failure of the load keeps the old rules)
            failure = f"loading the rules failed: {one_line(exc)}"
        for d in diagnostics:
            (log.error if d.severity == "error" else log.warning)("rules.problem", problem=str(d))
        ok = failure is None and ruleset is not None and not errors(diagnostics)
        if ok and ruleset is not None:
            self.engine.swap(ruleset)
            if not initial:
                self.stats.reloads += 1
            log.info("rules.loaded", rules=len(ruleset.rules), files=len(ruleset.files))
            return True
        self.stats.failed_reloads += not initial
        log.error(
            "rules.rejected",
            message=(failure or "the rules have errors")
            + ("; nothing is loaded" if initial else "; the previous rules stay in use"),
            failed_reloads=self.stats.failed_reloads,
        )
        return False

    async def _load(
        self, load: Callable[[], tuple[CompiledRuleset | None, list[Diagnostic]]]
    ) -> tuple[CompiledRuleset | None, list[Diagnostic]]:
        """``load()`` in a daemon thread of its own, waited for ``reload_limit`` seconds.

        Not anyio's worker threads: one stuck in a read would outlive the daemon and
        keep the process from exiting after SIGTERM. A daemon thread does not; while
        one is still running (stuck), no second one is started (``_StillLoading``).
        """
        if self._loaded is not None and not self._loaded.is_set():
            raise _StillLoading
        loaded = self._loaded = threading.Event()
        done = anyio.Event()
        token = anyio.lowlevel.current_token()
        results: list[tuple[CompiledRuleset | None, list[Diagnostic]]] = []
        failures: list[BaseException] = []

        def work() -> None:
            try:
                results.append(load())
            except BaseException as exc:  # noqa: BLE001 (handed to the event loop)
                failures.append(exc)
            finally:
                loaded.set()
                # RuntimeError: the event loop is gone (nobody waits any more).
                with contextlib.suppress(RuntimeError):
                    anyio.from_thread.run_sync(done.set, token=token)

        threading.Thread(target=work, name="modbot-rules-load", daemon=True).start()
        with anyio.fail_after(self.reload_limit):
            await done.wait()
        if failures:
            error = failures[0]
            if isinstance(error, Exception):
                raise error
            msg = f"the load ended with {one_line(error)}"
            raise RuntimeError(msg)
        return results[0]

    def _refreshed(self, tokens: TokenSet) -> None:
        """A refreshed grant may have other scopes: gate actions by it from now on."""
        self.granted = tokens.scopes
        if self.executor is not None:
            self.executor.update_scopes(tokens.scopes)


class _StillLoading(Exception):
    """The previous load of the rules has not ended (its time ran out): none is started."""

    def __init__(self) -> None:
        super().__init__(
            "the previous load of the rules is still running in its thread (it took too"
            " long and was abandoned); no second one is started until it ends (restart the"
            " daemon if it does not)"
        )
