"""The daemon's side of bans that outlive the live: carry them into each new room (I/O).

At start the ban list is read from the audit database (``modbot.audit.bans``) into a
:class:`~modbot.actions.memory.BanMemory`; every ``POLL`` seconds what changed since is
read back (a ban done by a rule or by ``modbot ban`` in another process, an unban or an
undo that ended one). The engine loop hands every event to :meth:`Rebans.observe` (plain
code, no waiting): a viewer the memory says must be banned in this room goes onto a
bounded queue, and :meth:`Rebans.run` bans them as a rule's action is banned (the gate,
the audit intent, the call, the outcome), as rule ``remembered`` with params
``{"remembered": ORIGINAL_ID}``, a few at a time.
"""

from __future__ import annotations

import anyio
import structlog
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from modbot.actions.executor import AlreadyRecorded, Executor
from modbot.actions.memory import BanMemory, Carry
from modbot.actions.plan import Intent
from modbot.audit import bans
from modbot.audit.store import AuditStore
from modbot.clock import Clock, epoch
from modbot.errors import AuditError
from modbot.events import Event
from modbot.rules.engine import Decision

log = structlog.get_logger("modbot.rebans")

POLL = 1.0  # seconds between two reads of the ban list's changes
QUEUE = 1_000  # bans waiting to be carried
AT_ONCE = 8  # carried bans in flight together


class Rebans:
    """Remembered bans for one daemon (see the module docstring)."""

    def __init__(self, clock: Clock, *, poll: float = POLL) -> None:
        self.clock = clock
        self.poll = poll
        self.memory = BanMemory()
        self.version = 0  # the ban list's version last read
        self.errors = 0
        self._queue: MemoryObjectSendStream[Carry] | None = None
        self._limit = anyio.Semaphore(AT_ONCE)
        self.loaded = anyio.Event()

    # --- the engine loop's side (no waiting) -------------------------------------------

    def observe(self, event: Event, decisions: list[Decision]) -> None:
        """Queue a ban if this event's viewer is remembered as banned; never raises."""
        try:
            if self._queue is None:
                return
            carry = self.memory.check(event, epoch(self.clock))
            if carry is None:
                return
            if any(
                d.enforced and d.action == "ban" and d.user_id == carry.user_id for d in decisions
            ):
                self.memory.counts["a rule bans them here already"] += 1
                return  # that ban is remembered in its turn
            try:
                self._queue.send_nowait(carry)
            except anyio.WouldBlock:
                self.memory.done(carry, ok=False, now=epoch(self.clock))
                self.memory.counts["dropped: queue full"] += 1
        except Exception:  # one event never stops the others
            if self._count_error():
                log.exception("rebans.observe_failed", msg_id=event.msg_id, errors=self.errors)

    def _count_error(self) -> bool:
        """Count an error; whether to log it (the 1st, 10th, 100th, every 1000th)."""
        self.errors += 1
        return self.errors in (1, 10, 100) or self.errors % 1000 == 0

    # --- the task ------------------------------------------------------------------------

    async def run(
        self, executor: Executor, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Load the list, then carry bans and follow the list's changes until cancelled."""
        store = executor.store
        records, self.version = await bans.remembered(store)
        self.memory.load(records, await bans.carried(store))
        log.info("rebans.loaded", remembered=len(self.memory))
        send, receive = anyio.create_memory_object_stream[Carry](QUEUE)
        self._queue = send
        self.loaded.set()
        try:
            async with anyio.create_task_group() as tg, send, receive:
                tg.start_soon(self._work, receive, executor, tg)
                task_status.started()
                while True:
                    await anyio.sleep(self.poll)
                    try:
                        await self.sync(store)
                    except AuditError:
                        raise
                    except Exception:  # the next poll tries again
                        if self._count_error():
                            log.exception("rebans.sync_failed", errors=self.errors)
        finally:
            self._queue = None

    async def sync(self, store: AuditStore) -> int:
        """Read the list's changes since the last read into the memory; how many."""
        changed = await bans.changed_since(store, self.version)
        for record in changed:
            self.memory.apply(record)
            self.version = max(self.version, record.version)
        return len(changed)

    async def _work(
        self, receive: MemoryObjectReceiveStream[Carry], executor: Executor, tg: anyio.abc.TaskGroup
    ) -> None:
        async for carry in receive:
            await self._limit.acquire()
            tg.start_soon(self._act_released, carry, executor)

    async def _act_released(self, carry: Carry, executor: Executor) -> None:
        try:
            await self.carry(carry, executor)
        finally:
            self._limit.release()

    async def carry(self, carry: Carry, executor: Executor) -> str:
        """Ban the viewer in the room, linked to the original ban; the row's status.

        Never raises: a failure is the row's (and may be tried again later)."""
        decision = Decision(
            rule=bans.REMEMBERED_RULE,
            rule_hash="",
            action="ban",
            mode="enforce",
            detail=carry.detail(),
            user_id=carry.user_id,
            unique_id=carry.unique_id,
        )
        intent = Intent(
            decision,
            ts=self.clock.now(),
            streamer=carry.streamer,
            room_id=carry.room_id,
            msg_id=carry.msg_id,
            extra={"remembered": carry.original},
        )
        status = "failed"
        try:
            entry, _ = await executor.carry_out(executor.gate(intent))
            status = entry.status
        except AlreadyRecorded:
            status = "skipped"  # this message was seen before (a reconnect)
        except AuditError:
            raise
        except Exception:  # one viewer never stops the others
            if self._count_error():
                log.exception(
                    "rebans.action_failed", user_id=carry.user_id, original=carry.original
                )
        self.memory.done(carry, ok=status != "failed", now=epoch(self.clock))
        log.info(
            "rebans.carried",
            user=carry.unique_id,
            user_id=carry.user_id,
            streamer=carry.streamer,
            original=carry.original,
            status=status,
        )
        return status
