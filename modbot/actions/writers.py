"""The executor's two audit writers, each writing in batches what has queued up.

- The intents that call nothing (observed, skipped, logged: most of a raid's
  decisions) are written by one writer, so the write a call waits for stays small.
- The outcomes of calls (``done`` or ``failed`` with the error), with the expiry timers
  they set, are written by the other.

Writes are shielded from cancellation: a row handed on is a row written, also while
the daemon stops.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from modbot.actions.outcomes import Outcome
from modbot.audit.records import NewEntry
from modbot.audit.store import AuditStore
from modbot.clock import Clock
from modbot.streams import send_nowait_or_wait

T = TypeVar("T")


class Writers:
    """Writes intents that call nothing, and the outcomes of calls, in batches."""

    def __init__(self, store: AuditStore, clock: Clock, *, batch_max: int) -> None:
        self.store = store
        self.clock = clock
        self.batch_max = batch_max
        self._outcomes: MemoryObjectSendStream[Outcome] | None = None
        self._records: MemoryObjectSendStream[list[NewEntry]] | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The writers run inside; leaving waits until all handed on is written."""
        send, outcomes = anyio.create_memory_object_stream[Outcome](10_000)
        keep, records = anyio.create_memory_object_stream[list[NewEntry]](1_000)
        async with anyio.create_task_group() as writers:
            writers.start_soon(self._write_outcomes, outcomes)
            writers.start_soon(self._write_records, records)
            async with send, keep:
                self._outcomes, self._records = send, keep
                try:
                    yield
                finally:
                    self._outcomes = self._records = None

    async def keep(self, entries: list[NewEntry]) -> None:
        """Hand intents that call nothing to their writer."""
        if entries:
            assert self._records is not None
            await send_nowait_or_wait(self._records, entries)

    async def report(self, outcome: Outcome) -> None:
        """Hand a call's outcome to its writer (shielded: it is written whatever happens)."""
        assert self._outcomes is not None
        with anyio.CancelScope(shield=True):
            await self._outcomes.send(outcome)

    async def write(self, batch: list[Outcome]) -> None:
        """Write outcomes now (the one-off paths: undo, expiry, recovery)."""
        await self.store.finish(
            [(o.entry_id, o.status, o.error) for o in batch],
            self.clock.now(),
            timers=[t for o in batch for t in o.timers],
            params={o.entry_id: o.params for o in batch if o.params},
        )

    async def _write_outcomes(self, outcomes: MemoryObjectReceiveStream[Outcome]) -> None:
        async with outcomes:
            async for first in outcomes:
                batch = more(outcomes, [first], self.batch_max)
                with anyio.CancelScope(shield=True):
                    await self.write(batch)

    async def _write_records(self, records: MemoryObjectReceiveStream[list[NewEntry]]) -> None:
        """Write the intents that call nothing: what queued up meanwhile goes together."""
        async with records:
            async for first in records:
                lists = more(records, [first], self.batch_max)
                entries = [e for entries in lists for e in entries]
                with anyio.CancelScope(shield=True):
                    await self.store.record(entries, self.clock.now())


def more(receive: MemoryObjectReceiveStream[T], batch: list[T], most: int) -> list[T]:
    """``batch`` and what has queued up on ``receive`` behind it, ``most`` items in all."""
    while len(batch) < most:
        try:
            batch.append(receive.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream):
            break
    return batch
