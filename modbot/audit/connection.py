"""How the audit store uses its one SQLite connection: whose turn it is, and how a
write waits out a failure that can pass.

- :class:`Turns`: aiosqlite runs one connection's calls in its own thread, in order. A
  statement that stands alone goes while others are on their way (``shared``); a
  transaction, or a write that reads the change count, has the connection to itself
  (``alone``).
- :class:`Patience` and :class:`Retrying`: a write that fails for a reason that can
  pass (a full disk, a busy or read-only file) is tried again, doubling the wait, for
  as long as it takes; without patience (the commands a person runs) it is an
  :class:`~modbot.errors.AuditError` at once.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import anyio
import structlog

from modbot.errors import AuditError

log = structlog.get_logger("modbot.audit")
T = TypeVar("T")

# Failures a write can wait out: the disk is full, the device fails to write, another
# writer holds the database past the busy timeout, the file was made read-only.
# Anything else (a corrupt file, a bug) is raised at once.
PASSING = frozenset(
    {
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_READONLY,
    }
)


@dataclass(frozen=True)
class Patience:
    """How a write waits out a failure that can pass (see ``PASSING``).

    The daemon never acts on an intent it has not written, and never forgets an
    outcome: its writes try again after ``first`` seconds, doubling up to ``longest``,
    for as long as it takes, with an error logged at each try and a line when writes
    resume. Meanwhile the pipeline fills up and stops reading the sockets; nothing is
    dropped. Without patience (the commands a person runs) a failed write is an
    :class:`AuditError` at once.
    """

    first: float = 1.0
    longest: float = 30.0
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep


def passes(exc: sqlite3.Error) -> bool:
    """Whether a failed write may succeed if tried again later."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.OperationalError) and code is not None and code & 0xFF in PASSING


class Retrying:
    """One database's writes, tried again after failures that can pass."""

    def __init__(self, path: Path, patience: Patience | None) -> None:
        self.path = path
        self.patience = patience
        self.failing: str | None = None  # while writes wait out a failure: the error
        self.given_up = False

    def failed(self, exc: sqlite3.Error) -> AuditError:
        return AuditError(f"cannot write to the audit database {self.path}: {exc}")

    async def patiently(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """``attempt()`` (one statement, atomic), again after a failure that can pass.

        A statement that fails changes nothing, so trying it again writes it once.
        """
        patience = self.patience
        waited, delay = 0.0, patience.first if patience else 0.0
        while True:
            try:
                result = await attempt()
            except sqlite3.OperationalError as exc:
                if patience is None or not passes(exc) or self.given_up:
                    raise self.failed(exc) from None
                error = self.failing = str(exc)
            else:
                if waited:
                    self.failing = None
                    log.warning("audit.write_resumed", db=str(self.path), waited=round(waited, 1))
                return result
            log.error(
                "audit.write_failed",
                error=error,
                db=str(self.path),
                waited=round(waited, 1),
                retry_in=delay,
                message="no moderation call is made before its intent is written; trying again",
            )
            await patience.sleep(delay)
            waited += delay
            delay = min(delay * 2, patience.longest)


class Turns:
    """Whose turn it is on the connection.

    aiosqlite runs one connection's calls in its own thread, in the order they were
    made. A statement that stands alone (atomic by itself, needing nothing from the
    connection afterwards) can go while others are on their way. A transaction, or a
    write that reads the connection's change count, needs the connection to itself:
    it waits for those on their way, and new ones wait for it.
    """

    def __init__(self) -> None:
        self._alone = anyio.Lock()
        self._on_the_way = 0
        self._drained: anyio.Event | None = None

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        while self._alone.locked():
            async with self._alone:
                pass
        self._on_the_way += 1
        try:
            yield
        finally:
            self._on_the_way -= 1
            if not self._on_the_way and self._drained is not None:
                self._drained.set()
                self._drained = None

    @contextlib.asynccontextmanager
    async def alone(self) -> AsyncIterator[None]:
        async with self._alone:
            while self._on_the_way:
                self._drained = self._drained or anyio.Event()
                await self._drained.wait()
            yield
