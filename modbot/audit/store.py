"""The audit store: every decision and action in SQLite (aiosqlite, WAL).

One connection per process; the daemon and ``modbot audit``/``undo`` may have the
database open at once (WAL readers never block the writer, and writers wait up to
``BUSY_TIMEOUT_MS`` for each other). Intents are committed before their API call, so
a kill between the two leaves a ``pending`` row that the next start resolves.
Writes come in batches (one transaction for many rows), so a raid of thousands of
decisions per second costs a few commits, not thousands.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiosqlite
import anyio

from modbot.audit.query import AuditFilter
from modbot.audit.schema import MIGRATIONS, VERSION
from modbot.errors import AuditError, ConfigError
from modbot.events import format_ts

BUSY_TIMEOUT_MS = 10_000
DB_NAME = "audit.db"
MAX_TEXT_STORED = 2_000  # characters of the triggering message kept

_COLUMNS = (
    "id, ts, streamer, room_id, user_id, unique_id, rule, rule_hash, action, params, mode,"
    " status, detail, error, msg_id, msg_text, undo_of, undone_by, reason, updated"
)


@dataclass(frozen=True)
class NewEntry:
    """An audit row to write."""

    ts: datetime
    streamer: str
    rule: str
    action: str
    mode: str
    status: str
    room_id: str = ""
    user_id: str = ""
    unique_id: str = ""
    rule_hash: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    detail: str = ""
    error: str | None = None
    msg_id: str = ""
    msg_text: str = ""
    undo_of: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Entry:
    """An audit row as stored."""

    id: int
    ts: str
    streamer: str
    room_id: str
    user_id: str
    unique_id: str
    rule: str
    rule_hash: str
    action: str
    params: dict[str, Any]
    mode: str
    status: str
    detail: str
    error: str | None
    msg_id: str
    msg_text: str
    undo_of: int | None
    undone_by: int | None
    reason: str | None
    updated: str

    def to_json(self) -> dict[str, Any]:
        """The ``modbot audit --format json`` object (cli.md's fields and a few more)."""
        return {
            "id": self.id,
            "ts": self.ts,
            "streamer": self.streamer,
            "room_id": self.room_id,
            "user_id": self.user_id,
            "unique_id": self.unique_id,
            "rule": self.rule,
            "rule_hash": self.rule_hash,
            "action": self.action,
            "params": self.params,
            "mode": self.mode,
            "status": self.status,
            "undo_of": self.undo_of,
            "undone_by": self.undone_by,
            "detail": self.detail,
            "error": self.error,
            "msg_id": self.msg_id,
            "text": self.msg_text,
            "reason": self.reason,
            "updated": self.updated,
        }


@dataclass(frozen=True)
class Timer:
    """A reversal due later: unmute at a mute's expiry, or comments back on."""

    id: int
    due: float
    kind: str  # unmute | comments_on
    streamer: str
    room_id: str
    user_id: str
    action_id: int


def _entry(row: sqlite3.Row | tuple[Any, ...]) -> Entry:
    values = list(row)
    try:
        params = json.loads(values[9]) if values[9] else {}
    except ValueError:
        params = {"unreadable": values[9]}
    values[9] = params if isinstance(params, dict) else {"value": params}
    return Entry(*values)


def default_db(state_dir: Path) -> Path:
    return state_dir / DB_NAME


_INSERT = (
    "INSERT OR IGNORE INTO actions (ts, streamer, room_id, user_id, unique_id,"
    " rule, rule_hash, action, params, mode, status, detail, error, msg_id,"
    " msg_text, undo_of, reason, updated)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


_INSERT_MANY = _INSERT.split(" VALUES ", 1)[0] + " VALUES {values}"
_FINISH_MANY = (
    "UPDATE actions SET status = v.column1, error = v.column2, updated = v.column3"
    " FROM (VALUES {values}) AS v WHERE actions.id = v.column4"
)
_TIMERS_MANY = (
    "INSERT INTO timers (due, kind, streamer, room_id, user_id, action_id) VALUES {values}"
)
_ROWS_PER_STATEMENT = 500  # at most 18 parameters each: far below SQLite's 32,766


def _values(rows: int, width: int) -> str:
    """Placeholders for a multi-row VALUES list."""
    one = "(" + ", ".join(["?"] * width) + ")"
    return ", ".join([one] * rows)


def _many(template: str, rows: Sequence[tuple[Any, ...]]) -> tuple[str, list[Any]]:
    """One statement for ``rows`` (a template with ``{values}``) and its parameters."""
    return template.format(values=_values(len(rows), len(rows[0]))), [v for r in rows for v in r]


def _chunks(rows: Sequence[tuple[Any, ...]]) -> Iterator[Sequence[tuple[Any, ...]]]:
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        yield rows[start : start + _ROWS_PER_STATEMENT]


def _key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """(msg_id, rule, action) of a row built by :func:`_row`."""
    return (row[13], row[5], row[7])


def _row(e: NewEntry, stamp: str) -> tuple[Any, ...]:
    return (
        format_ts(e.ts),
        e.streamer,
        e.room_id,
        e.user_id,
        e.unique_id,
        e.rule,
        e.rule_hash,
        e.action,
        json.dumps(e.params, sort_keys=True),
        e.mode,
        e.status,
        e.detail,
        e.error,
        e.msg_id,
        e.msg_text[:MAX_TEXT_STORED],
        e.undo_of,
        e.reason,
        stamp,
    )


class AuditStore:
    """The audit database. Use ``async with AuditStore.open(path) as store``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        # One connection serves every task: write transactions take turns (two tasks
        # beginning at once would nest, which SQLite refuses).
        self._writing = anyio.Lock()

    @classmethod
    def open(cls, path: Path) -> AuditStore:
        return cls(path)

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            msg = "the audit store is not open; use `async with AuditStore.open(path)`"
            raise RuntimeError(msg)
        return self._db

    async def connect(self) -> None:
        """Open (creating if needed, mode 0600 in a 0700 directory) and migrate."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not self.path.exists():
                fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
                os.close(fd)
            self._db = await aiosqlite.connect(self.path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            msg = f"cannot open the audit database {self.path}: {exc}"
            raise AuditError(msg) from None
        db = self._db
        try:
            await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = NORMAL")
            await db.execute("PRAGMA foreign_keys = ON")
            await self._migrate()
        except sqlite3.DatabaseError as exc:
            await self.close()
            msg = f"the audit database {self.path} cannot be used: {exc}"
            raise AuditError(msg) from None
        except BaseException:
            await self.close()
            raise

    async def _migrate(self) -> None:
        async with self.db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        version = int(row[0]) if row else 0
        if version > VERSION:
            msg = (
                f"the audit database {self.path} has schema version {version}, newer than "
                f"this modbot knows ({VERSION}); upgrade modbot"
            )
            raise ConfigError(msg)
        for number in range(version, VERSION):
            async with self._transaction():
                # Statement by statement: executescript() would commit on its own.
                for statement in (s.strip() for s in MIGRATIONS[number].split(";")):
                    if statement:
                        await self.db.execute(statement)
                await self.db.execute(f"PRAGMA user_version = {number + 1}")

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        """One write transaction: committed as a whole, or rolled back (also on cancel)."""
        db = self.db
        async with self._writing:
            await db.execute("BEGIN IMMEDIATE")
            try:
                yield
                await db.execute("COMMIT")
            except BaseException:
                with anyio.CancelScope(shield=True), contextlib.suppress(sqlite3.Error):
                    await db.execute("ROLLBACK")
                raise

    async def _write(self, sql: str, params: Sequence[Any]) -> int:
        """Run one writing statement in one trip to SQLite's thread; the rows it changed.

        Every write holds ``_writing`` (this, ``_transaction`` and ``add``), so the
        connection's change count moves only by the statement in hand: read before and
        after, it says what a cursor's rowcount would, without a second trip to close
        the cursor (the statement's cursor is made and dropped in SQLite's thread).
        """
        db = self.db
        async with self._writing:
            before = db.total_changes
            await db.execute_fetchall(sql, params)
            return db.total_changes - before

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    # --- writing ------------------------------------------------------------------------

    async def add(self, entries: Sequence[NewEntry], now: datetime) -> list[int | None]:
        """Write entries atomically; the id of each (None: a duplicate delivery).

        A batch without undo links is one multi-row ``INSERT`` per 500 rows (one trip
        to SQLite's thread each, atomic by itself); entries that undo another also link
        the original, row by row in one transaction.
        """
        if not entries:
            return []
        stamp = format_ts(now)
        rows = [_row(e, stamp) for e in entries]
        if all(e.undo_of is None for e in entries):
            ids: list[int | None] = []
            async with self._writing:
                for chunk in _chunks(rows):
                    ids += await self._insert(chunk)
            return ids
        db = self.db
        ids = []
        async with self._transaction():
            for e, row in zip(entries, rows, strict=True):
                cursor = await db.execute(_INSERT, row)
                ids.append(cursor.lastrowid if cursor.rowcount == 1 else None)
                await cursor.close()
                if e.undo_of is not None and cursor.rowcount == 1:
                    await db.execute(
                        "UPDATE actions SET undone_by = ?, updated = ? WHERE id = ?",
                        (cursor.lastrowid, stamp, e.undo_of),
                    )
        return ids

    async def _insert(self, rows: Sequence[tuple[Any, ...]]) -> list[int | None]:
        """One statement for many rows; which of them went in.

        One statement is one step of SQLite (its own transaction), so SQLite's thread
        takes the interpreter lock once, not once per row (under load the lock is
        busy, and each retake waited). SQLite inserts VALUES rows in order and gives
        each new row the next rowid, so the new rows' ids are consecutive, ending at
        the last insert id. A row left out is a duplicate of a stored one or of an
        earlier row of the batch (same msg_id, rule and action); if any was, the new
        rows' keys are read back to learn which.
        """
        db = self.db
        before = db.total_changes  # see _write (the caller holds _writing)
        found_last = await db.execute_insert(*_many(_INSERT_MANY, rows))
        inserted, last = db.total_changes - before, int(found_last[0]) if found_last else 0
        if inserted == len(rows):
            return list(range(last - inserted + 1, last + 1))
        if inserted <= 0:
            return [None] * len(rows)
        found = await db.execute_fetchall(
            "SELECT id, msg_id, rule, action FROM actions WHERE id > ? AND id <= ? ORDER BY id",
            (last - inserted, last),
        )
        ids: list[int | None] = []
        pending = iter(found)
        new = next(pending, None)
        for row in rows:
            if new is not None and tuple(new[1:]) == _key(row):
                ids.append(int(new[0]))
                new = next(pending, None)
            else:
                ids.append(None)
        return ids

    async def finish(
        self,
        outcomes: Iterable[tuple[int, str, str | None]],
        now: datetime,
        *,
        timers: Iterable[tuple[float, str, str, str, str, int]] = (),
        params: dict[int, dict[str, Any]] | None = None,
    ) -> None:
        """Set the final status (and error) of entries, add timers, in one transaction.

        ``outcomes`` are ``(id, status, error)``; ``timers`` are ``(due, kind, streamer,
        room_id, user_id, action_id)``; ``params`` merges into an entry's params.
        """
        stamp = format_ts(now)
        db = self.db
        finished = [(status, error, stamp, entry_id) for entry_id, status, error in outcomes]
        patches = [(json.dumps(extra, sort_keys=True), i) for i, extra in (params or {}).items()]
        new_timers = list(timers)
        # Each a statement for many rows (one step of SQLite each, see _insert).
        if not patches and not new_timers and 0 < len(finished) <= _ROWS_PER_STATEMENT:
            # The usual batch: one statement, atomic by itself, one trip.
            await self._write(*_many(_FINISH_MANY, finished))
            return
        async with self._transaction():
            for chunk in _chunks(finished):
                await db.execute(*_many(_FINISH_MANY, chunk))
            if patches:
                await db.executemany(
                    "UPDATE actions SET params = json_patch(params, ?) WHERE id = ?", patches
                )
            for chunk in _chunks(new_timers):
                await db.execute(*_many(_TIMERS_MANY, chunk))

    # --- reading ------------------------------------------------------------------------

    async def query(self, where: AuditFilter) -> list[Entry]:
        clause, params = where.sql()
        async with self.db.execute(f"SELECT {_COLUMNS} FROM actions {clause}", params) as cursor:  # noqa: S608 (the clause is built from fixed column names)
            return [_entry(row) for row in await cursor.fetchall()]

    async def get(self, entry_id: int) -> Entry | None:
        found = await self.query(AuditFilter(ids=(entry_id,), limit=None))
        return found[0] if found else None

    async def pending(self) -> list[Entry]:
        return await self.query(AuditFilter(status="pending", limit=None, oldest_first=True))

    async def count(self, status: str | None = None) -> int:
        sql = "SELECT count(*) FROM actions WHERE ? IS NULL OR status = ?"
        async with self.db.execute(sql, (status, status)) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    # --- timers -------------------------------------------------------------------------

    async def due_timers(self, now_epoch: float, limit: int = 100) -> list[Timer]:
        async with self.db.execute(
            "SELECT id, due, kind, streamer, room_id, user_id, action_id FROM timers"
            " WHERE status = 'pending' AND due <= ? ORDER BY due LIMIT ?",
            (now_epoch, limit),
        ) as cursor:
            return [Timer(*row) for row in await cursor.fetchall()]

    async def next_due(self) -> float | None:
        async with self.db.execute(
            "SELECT min(due) FROM timers WHERE status = 'pending'"
        ) as cursor:
            row = await cursor.fetchone()
        return float(row[0]) if row and row[0] is not None else None

    async def pending_timers(self, action_id: int | None = None) -> list[Timer]:
        sql = (
            "SELECT id, due, kind, streamer, room_id, user_id, action_id FROM timers"
            " WHERE status = 'pending'"
        )
        args: tuple[object, ...] = ()
        if action_id is not None:
            sql += " AND action_id = ?"
            args = (action_id,)
        async with self.db.execute(sql + " ORDER BY due", args) as cursor:
            return [Timer(*row) for row in await cursor.fetchall()]

    async def end_timer(self, timer_id: int, status: str, error: str | None = None) -> bool:
        """Close a pending timer; False when it was no longer pending (someone else did)."""
        changed = await self._write(
            "UPDATE timers SET status = ?, error = ? WHERE id = ? AND status = 'pending'",
            (status, error, timer_id),
        )
        return changed == 1

    async def reschedule_timer(self, timer_id: int, due: float, error: str) -> None:
        await self._write(
            "UPDATE timers SET due = ?, error = ? WHERE id = ? AND status = 'pending'",
            (due, error, timer_id),
        )

    async def patch_params(self, entry_id: int, extra: dict[str, Any], now: datetime) -> None:
        await self._write(
            "UPDATE actions SET params = json_patch(params, ?), updated = ? WHERE id = ?",
            (json.dumps(extra, sort_keys=True), format_ts(now), entry_id),
        )

    async def unlink_undo(self, undo_id: int, now: datetime) -> None:
        """A failed undo frees its original for another try (``undo_of`` is UNIQUE)."""
        db = self.db
        async with self._transaction():
            await db.execute(
                "UPDATE actions SET undone_by = NULL, updated = ? WHERE undone_by = ?",
                (format_ts(now), undo_id),
            )
            await db.execute(
                "UPDATE actions SET params = json_set(params, '$.failed_undo_of', undo_of),"
                " undo_of = NULL, updated = ? WHERE id = ?",
                (format_ts(now), undo_id),
            )

    # --- handles ------------------------------------------------------------------------

    async def handle_user_id(self, unique_id: str) -> str | None:
        async with self.db.execute(
            "SELECT user_id FROM handles WHERE unique_id = ? COLLATE NOCASE", (unique_id,)
        ) as cursor:
            row = await cursor.fetchone()
        return str(row[0]) if row else None

    async def save_handle(self, unique_id: str, user_id: str, now: datetime) -> None:
        await self._write(
            "INSERT INTO handles (unique_id, user_id, resolved) VALUES (?, ?, ?)"
            " ON CONFLICT(unique_id) DO UPDATE SET user_id = excluded.user_id,"
            " resolved = excluded.resolved",
            (unique_id.lower(), user_id, format_ts(now)),
        )
