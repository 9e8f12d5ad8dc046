"""The daemon's side of humans first: record moderators' actions, and let them stand (I/O).

The engine loop hands every ``moderation`` event (a moderator's action on the
WebSocket) to :meth:`Humans.observe` (plain code, no waiting): an unban is forgotten by
the ban memory at once, and the event goes onto a bounded queue. :meth:`Humans.run`
drops modbot's own (TikTok echoes modbot's calls with modbot's account as the operator:
the account of the OAuth grant, asked once from ``userinfo`` when the grant allows it,
else the streamer's), writes the others as rule ``moderator``, status ``done``
(:func:`modbot.actions.humans.moderator_entry`), and tells the gate whenever comments
were turned off or on (by anyone: the echo is the room's state). An own unban that
modbot did not call (none pending or just done) is the streamer's by hand: written too. :func:`kept_by_humans` is what an expiry timer asks before
it acts: whether a moderator acted after modbot's action.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import anyio
import structlog
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from modbot.actions.executor import Executor
from modbot.actions.humans import (
    MODERATOR_RULE,
    RESPECTS,
    is_own,
    moderator_entry,
    overruled,
)
from modbot.actions.memory import BanMemory
from modbot.audit.handles import Handles
from modbot.audit.records import Entry, NewEntry, Timer
from modbot.audit.store import AuditStore
from modbot.clock import Clock
from modbot.events import Event, format_ts

log = structlog.get_logger("modbot.moderators")

OWN_UNBAN_WINDOW = 60.0  # seconds: an own unban echo this soon after modbot's is modbot's
QUEUE = 10_000  # moderators' actions waiting to be written
BATCH = 500


class Humans:
    """Moderators' actions for one daemon (see the module docstring)."""

    def __init__(self, clock: Clock, memory: BanMemory | None = None) -> None:
        self.clock = clock
        self.memory = memory
        self.own_ids: frozenset[str] | None = None  # the grant's account (None: not known)
        self.counts: Counter[str] = Counter()
        self._asked = False
        self._streamer_ids: dict[str, str] = {}  # handle (lower case) -> user id, once known
        self._queue: MemoryObjectSendStream[Event] | None = None

    def observe(self, event: Event) -> None:
        """Take a moderation event; never raises."""
        try:
            m = event.moderation
            if m is None:
                return
            if m.action == "unban" and event.user is not None and self.memory is not None:
                # Whoever let them back in (a human, or modbot's own unban), the memory
                # must not ban them again before the database's record comes back.
                self.memory.forget(event.user.user_id, event.streamer)
            if self._queue is None:
                self.counts["not recorded: not running"] += 1
                return
            try:
                self._queue.send_nowait(event)
            except anyio.WouldBlock:
                self.counts["not recorded: queue full"] += 1
        except Exception:  # one event never stops the others
            self.counts["errors"] += 1
            log.exception("moderators.observe_failed", msg_id=event.msg_id)

    async def run(
        self, executor: Executor, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Write the moderators' actions as they come, until cancelled."""
        send, receive = anyio.create_memory_object_stream[Event](QUEUE)
        self._queue = send
        try:
            async with send, receive:
                task_status.started()
                await self._write(receive, executor)
        finally:
            self._queue = None

    async def _write(self, receive: MemoryObjectReceiveStream[Event], executor: Executor) -> None:
        async for first in receive:
            batch = [first]
            while len(batch) < BATCH:
                try:
                    batch.append(receive.receive_nowait())
                except anyio.WouldBlock:
                    break
            await self._own(executor)
            if self.own_ids is None:
                await self._streamers(executor, batch)
            mine = await self._modbots_unbans(executor, batch)
            entries: list[NewEntry] = []
            for event in batch:
                try:
                    entry = self._entry(event, executor, mine)
                except Exception:  # a bad one is counted, the others are written
                    self.counts["errors"] += 1
                    log.exception("moderators.entry_failed", msg_id=event.msg_id)
                    continue
                if entry is not None:
                    entries.append(entry)
            if entries:
                with anyio.CancelScope(shield=True):
                    await executor.store.record(entries, self.clock.now())

    def _entry(
        self, event: Event, executor: Executor, mine: frozenset[tuple[str, str]] = frozenset()
    ) -> NewEntry | None:
        m = event.moderation
        assert m is not None
        if m.action in ("comments_on", "comments_off") and event.room_id:
            # The echo is the room's state, whoever did it: modbot's own account also
            # toggles from the CLI (`modbot comments on`), so an own echo counts too.
            executor.gates.comments_off[event.room_id] = m.action == "comments_off"
        streamer_id = self._streamer_ids.get(event.streamer.lower())
        if is_own(m.operator, self.own_ids, streamer=event.streamer, streamer_id=streamer_id):
            if m.action != "unban" or event.user is None or _key(event) in mine:
                self.counts["own"] += 1
                return None
            # The account's own unban that modbot did not call: the streamer let the
            # viewer back in by hand; recorded, so its row ends the remembered ban in the
            # database too (a restart must not ban them again).
            self.counts["own unban by hand"] += 1
        self.counts[m.action] += 1
        log.info(
            "moderator.acted",
            streamer=event.streamer,
            action=m.action,
            operator=m.operator.unique_id,
            user=event.user.unique_id if event.user else None,
        )
        return moderator_entry(event)

    async def _modbots_unbans(
        self, executor: Executor, batch: list[Event]
    ) -> frozenset[tuple[str, str]]:
        """(streamer, viewer) of the unbans in ``batch`` that modbot itself called: an
        unban of that viewer on that streamer in flight, or done in the last
        ``OWN_UNBAN_WINDOW`` seconds (its echo)."""
        wanted = {
            _key(e)
            for e in batch
            if e.moderation is not None and e.moderation.action == "unban" and e.user is not None
        }
        if not wanted:
            return frozenset()
        since = format_ts(self.clock.now() - timedelta(seconds=OWN_UNBAN_WINDOW))
        found: set[tuple[str, str]] = set()
        for streamer, user_id in wanted:
            try:
                rows = await executor.store.execute(
                    "SELECT 1 FROM actions WHERE action = 'unban' AND rule != ? AND user_id = ?"
                    " AND streamer = ? COLLATE NOCASE"
                    " AND (status = 'pending' OR (status = 'done' AND updated >= ?)) LIMIT 1",
                    (MODERATOR_RULE, user_id, streamer, since),
                )
            except Exception as exc:  # noqa: BLE001 (then the echo is taken as modbot's)
                log.warning("moderators.own_unban_unknown", error=type(exc).__name__)
                found.add((streamer, user_id))
                continue
            if rows:
                found.add((streamer, user_id))
        return frozenset(found)

    async def _streamers(self, executor: Executor, batch: list[Event]) -> None:
        """The streamers' user ids (the watcher's cache of their handles), for telling
        modbot's echoes when the grant's account is not known."""
        for handle in {e.streamer.lower() for e in batch} - self._streamer_ids.keys():
            try:
                user_id = await Handles(executor.store).user_id(handle)
            except Exception as exc:  # noqa: BLE001 (then the handle alone tells)
                log.warning("moderators.streamer_id_unknown", error=type(exc).__name__)
                continue
            if user_id:
                self._streamer_ids[handle] = user_id

    async def _own(self, executor: Executor) -> None:
        """Learn the grant's account, once (only when the grant allows ``userinfo``)."""
        if self._asked:
            return
        self._asked = True
        granted = executor.gates.granted
        if executor.client is None or granted is None or "user:info" not in granted:
            log.info("moderators.own_account", known=False, taken_as="the streamer")
            return
        try:
            info = await executor.client.userinfo()
        except Exception as exc:  # noqa: BLE001 (then the streamer's account is taken as modbot's)
            log.warning("moderators.own_account_unknown", error=type(exc).__name__)
            return
        self.own_ids = frozenset({info.user_id})
        log.info("moderators.own_account", known=True)


def _key(event: Event) -> tuple[str, str]:
    return event.streamer.lower(), event.user.user_id if event.user is not None else ""


async def kept_by_humans(store: AuditStore, timer: Timer, original: Entry | None) -> str | None:
    """Why an expiry timer must not act because a moderator acted after modbot's action
    (None: it may act)."""
    counts = RESPECTS.get(timer.kind)
    if original is None or not counts:
        return None
    sql = (
        "WHERE rule = ? AND status = 'done'"
        " AND streamer = ? COLLATE NOCASE AND ts >= ? AND action IN (?, ?)"
    )
    pair = (*counts, *counts)[:2]  # one or two actions count: the second may repeat the first
    args: list[object] = [MODERATOR_RULE, timer.streamer, original.ts, *pair]
    if timer.user_id:
        sql += " AND user_id = ?"
        args.append(timer.user_id)
    later = await store.entries(sql + " ORDER BY ts, id", args)
    return overruled(timer.kind, original.id, later)
