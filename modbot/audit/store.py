"""The audit store: every decision and action in SQLite (aiosqlite, WAL).

One connection per process; the daemon and ``modbot audit``/``undo`` may have the
database open at once (WAL readers never block the writer, and writers wait up to
``BUSY_TIMEOUT_MS`` for each other). Intents are committed before their API call, so
a kill between the two leaves a ``pending`` row that the next start resolves.
Writes come in batches (one statement for many rows), so a raid of thousands of
decisions per second costs a few commits, not thousands. A statement that stands
alone (a batch of intents, a batch of outcomes) does not wait for another's round trip
to end: several go to SQLite's thread at once and run there in order, so the executor's
intents are not held up behind the outcomes it is writing meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Self

import aiosqlite
import anyio
import structlog

from modbot.audit.connection import Patience, Retrying, Turns
from modbot.audit.query import AuditFilter
from modbot.audit.records import Entry, NewEntry, Timer
from modbot.audit.schema import MIGRATIONS, REPORTS, VERSION
from modbot.errors import AuditError, ConfigError
from modbot.events import format_ts

__all__ = [  # the row types are at home in records.py, and importable from here too
    "BUSY_TIMEOUT_MS",
    "DB_NAME",
    "MAX_TEXT_STORED",
    "RETURNING",
    "AuditStore",
    "Entry",
    "NewEntry",
    "Patience",
    "Timed",
    "Timer",
    "default_db",
]

BUSY_TIMEOUT_MS = 10_000
# INSERT ... RETURNING (SQLite 3.35, 2021) tells which rows of a batch went in within
# the statement itself; older libraries (RHEL 9 ships 3.34) learn it from the change
# count, which needs the connection to themselves.
RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)
DB_NAME = "audit.db"
MAX_TEXT_STORED = 2_000  # characters of the triggering message kept
log = structlog.get_logger("modbot.audit")

_COLUMNS = (
    "id, ts, streamer, room_id, user_id, unique_id, rule, rule_hash, action, params, mode,"
    " status, detail, error, msg_id, msg_text, undo_of, undone_by, reason, updated"
)


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
_INSERT_MANY_RETURNING = _INSERT_MANY + " RETURNING id, msg_id, rule, action"
_OUTCOMES_MANY = (
    "INSERT INTO outcomes (id, status, error, updated, patch, due, kind, streamer, room_id,"
    " user_id) VALUES {values}"
)
_ROWS_PER_STATEMENT = 500  # at most 18 parameters each: far below SQLite's 32,766

Timed = tuple[float, str, str, str, str, int]  # (due, kind, streamer, room_id, user_id, action)
_NO_TIMER: tuple[None, None, None, None, None, None] = (None,) * 6


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


def _match(rows: Sequence[tuple[Any, ...]], new: Iterable[Sequence[Any]]) -> list[int | None]:
    """The id of each row of a batch, from the ``(id, msg_id, rule, action)`` of the
    rows that went in; None for a row left out.

    SQLite inserts VALUES rows in order and gives each new row the next rowid, so in
    order of id the new rows follow the batch; a row left out is a duplicate of a
    stored one or of an earlier row of the batch (same msg_id, rule and action).
    """
    ids: list[int | None] = []
    found = iter(sorted(new, key=lambda r: int(r[0])))
    nxt = next(found, None)
    for row in rows:
        if nxt is not None and tuple(nxt[1:]) == _key(row):
            ids.append(int(nxt[0]))
            nxt = next(found, None)
        else:
            ids.append(None)
    return ids


def _statements(script: str) -> Iterator[str]:
    """The statements of a migration, each whole (a trigger's body has semicolons)."""
    statement = ""
    for piece in script.split(";"):
        statement += piece + ";"
        if sqlite3.complete_statement(statement):
            if statement.strip("; \n"):
                yield statement.strip()
            statement = ""


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

    def __init__(self, path: Path, *, patience: Patience | None = None) -> None:
        self.path = path
        self._writes = Retrying(path, patience)
        self._db: aiosqlite.Connection | None = None
        # One connection serves every task: a transaction has it to itself (two tasks
        # beginning at once would nest, which SQLite refuses, and a statement sent
        # meanwhile would join the transaction).
        self._turns = Turns()
        self._readonly = False

    @classmethod
    def open(cls, path: Path, *, patience: Patience | None = None) -> AuditStore:
        return cls(path, patience=patience)

    @classmethod
    def open_readonly(cls, path: Path) -> AuditStore:
        """For reading only (``modbot audit``): the file is never created, written or
        migrated, so a read cannot turn some other file into a database."""
        store = cls(path)
        store._readonly = True
        return store

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            msg = "the audit store is not open; use `async with AuditStore.open(path)`"
            raise RuntimeError(msg)
        return self._db

    async def connect(self) -> None:
        """Open (creating if needed, mode 0600 in a 0700 directory) and migrate."""
        if self._readonly:
            await self._connect_readonly()
            return
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

    async def _connect_readonly(self) -> None:
        if not self.path.is_file():
            msg = f"there is no audit database at {self.path}"
            raise AuditError(msg)
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        try:
            self._db = await aiosqlite.connect(uri, uri=True, isolation_level=None)
            await self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            async with self._db.execute("PRAGMA user_version") as cursor:
                row = await cursor.fetchone()
        except (OSError, sqlite3.Error) as exc:
            await self.close()
            msg = f"the audit database {self.path} cannot be read: {exc}"
            raise AuditError(msg) from None
        version = int(row[0]) if row else 0
        if version == VERSION:
            return
        await self.close()
        if version == 0:
            msg = f"{self.path} is not a modbot audit database (it has no audit tables)"
            raise AuditError(msg)
        if version > VERSION:
            msg = (
                f"the audit database {self.path} has schema version {version}, newer than "
                f"this modbot knows ({VERSION}); upgrade modbot"
            )
            raise ConfigError(msg)
        msg = (
            f"the audit database {self.path} has schema version {version}, older than this "
            f"modbot's ({VERSION}); `modbot run` or `modbot undo` upgrades it"
        )
        raise AuditError(msg)

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
                for statement in _statements(MIGRATIONS[number]):
                    await self.db.execute(statement)
                await self.db.execute(f"PRAGMA user_version = {number + 1}")
                if number + 1 in REPORTS and version > 0:  # an upgrade, not a new file
                    event, query = REPORTS[number + 1]
                    async with self.db.execute(query) as cursor:
                        counted = await cursor.fetchone()
                    log.info(event, count=int(counted[0]) if counted else 0)

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        """One write transaction: committed as a whole, or rolled back (also on cancel)."""
        db = self.db
        async with self._turns.alone():
            try:
                await db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise self._writes.failed(exc) from None
            try:
                yield
                await db.execute("COMMIT")
            except BaseException as exc:
                with anyio.CancelScope(shield=True), contextlib.suppress(sqlite3.Error):
                    await db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError):
                    raise self._writes.failed(exc) from None
                raise

    def stop_waiting(self) -> None:
        """Writes stop waiting out failures: the next failed try is an :class:`AuditError`.

        For a shutdown that cannot wait for the disk: what is not written stays pending,
        and the next start resolves it as it does after a crash.
        """
        self._writes.given_up = True

    @property
    def failing(self) -> str | None:
        """While writes wait out a failure: the error."""
        return self._writes.failing

    @property
    def patience(self) -> Patience | None:
        return self._writes.patience

    @patience.setter
    def patience(self, patience: Patience | None) -> None:
        self._writes.patience = patience

    async def _write(self, sql: str, params: Sequence[Any]) -> Iterable[sqlite3.Row]:
        """Run one statement that stands alone, in one trip to SQLite's thread; its rows.

        It goes while other such statements are on their way (not inside a transaction).
        Once sent it runs whatever happens here, so a cancelled caller still waits for
        it: the connection is never handed over with a statement of ours still queued.
        """
        db = self.db

        async def attempt() -> Iterable[sqlite3.Row]:
            async with self._turns.shared():
                with anyio.CancelScope(shield=True):
                    rows = await db.execute_fetchall(sql, params)
            return rows

        return await self._writes.patiently(attempt)

    async def _write_counted(self, sql: str, params: Sequence[Any]) -> int:
        """Run one writing statement, alone on the connection; the rows it changed.

        With nothing else on its way, the connection's change count moves only by the
        statement in hand: read before and after, it says what a cursor's rowcount
        would, without a second trip to close the cursor.
        """
        db = self.db

        async def attempt() -> int:
            async with self._turns.alone():
                before = db.total_changes
                await db.execute_fetchall(sql, params)
                return db.total_changes - before

        return await self._writes.patiently(attempt)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """One statement of a table kept by another module (``audit/requests.py``), run
        as the store's own writes are: in turn, waiting out a failure that can pass."""
        return list(await self._write(sql, params))

    async def execute_counted(self, sql: str, params: Sequence[Any] = ()) -> int:
        """As :meth:`execute`, alone on the connection; the rows it changed."""
        return await self._write_counted(sql, params)

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    # --- writing ------------------------------------------------------------------------

    async def add(self, entries: Sequence[NewEntry], now: datetime) -> list[int | None]:
        """Write entries atomically; the id of each (None: a duplicate delivery).

        A batch without undo links is one multi-row ``INSERT`` per 500 rows (one trip
        to SQLite's thread each, atomic by itself, sent while outcomes are on their
        way); entries that undo another also link the original, row by row in one
        transaction.
        """
        if not entries:
            return []
        stamp = format_ts(now)
        rows = [_row(e, stamp) for e in entries]
        if all(e.undo_of is None for e in entries):
            ids: list[int | None] = []
            if RETURNING:
                for chunk in _chunks(rows):
                    ids += _match(chunk, await self._write(*_many(_INSERT_MANY_RETURNING, chunk)))
                return ids
            async with self._turns.alone():
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

    async def record(self, entries: Sequence[NewEntry], now: datetime) -> None:
        """Write entries whose ids nobody waits for (no call depends on them).

        One multi-row ``INSERT`` per 500 rows (each atomic), without ``RETURNING``:
        SQLite's thread hands the interpreter lock back and forth once per row that a
        statement returns, and each hand-back waits out the busy main thread's switch
        interval, so a batch whose ids are not needed costs one step, not one per row.
        A duplicate delivery is left out, as in :meth:`add`.
        """
        if any(e.undo_of is not None for e in entries):
            await self.add(entries, now)
            return
        stamp = format_ts(now)
        for chunk in _chunks([_row(e, stamp) for e in entries]):
            await self._write(*_many(_INSERT_MANY, chunk))

    async def _insert(self, rows: Sequence[tuple[Any, ...]]) -> list[int | None]:
        """One statement for many rows, without RETURNING; which of them went in.

        The caller has the connection alone, so the change count is this statement's
        (see :meth:`_write_counted`). The new rows' ids are consecutive, ending at the
        last insert id (see :func:`_match`); if any row was left out, the new rows'
        keys are read back to learn which.
        """
        db = self.db
        before = db.total_changes
        sql, params = _many(_INSERT_MANY, rows)
        found_last = await self._writes.patiently(lambda: db.execute_insert(sql, params))
        inserted, last = db.total_changes - before, int(found_last[0]) if found_last else 0
        if inserted == len(rows):
            return list(range(last - inserted + 1, last + 1))
        if inserted <= 0:
            return [None] * len(rows)
        found = await db.execute_fetchall(
            "SELECT id, msg_id, rule, action FROM actions WHERE id > ? AND id <= ?",
            (last - inserted, last),
        )
        return _match(rows, found)

    async def finish(
        self,
        outcomes: Iterable[tuple[int, str, str | None]],
        now: datetime,
        *,
        timers: Iterable[Timed] = (),
        params: dict[int, dict[str, Any]] | None = None,
    ) -> None:
        """Set the final status (and error) of entries and add their expiry timers.

        ``outcomes`` are ``(id, status, error)``; ``timers`` are ``(due, kind, streamer,
        room_id, user_id, action_id)``, at most one for each entry finished here;
        ``params`` merges into an entry's params. An entry's status, params and timer
        are written together (one row of the ``outcomes`` view); 500 entries are one
        statement, sent while other statements are on their way.
        """
        stamp = format_ts(now)
        patches = params or {}
        timed: dict[int, Timed] = {}
        for timer in timers:
            if timer[5] in timed:
                msg = f"two timers for entry {timer[5]}: an entry has at most one"
                raise ValueError(msg)
            timed[timer[5]] = timer
        rows = []
        for entry_id, status, error in outcomes:
            patch = patches.get(entry_id)
            due, kind, streamer, room_id, user_id, _ = timed.pop(entry_id, _NO_TIMER)
            rows.append(
                (
                    entry_id,
                    status,
                    error,
                    stamp,
                    json.dumps(patch, sort_keys=True) if patch else None,
                    due,
                    kind,
                    streamer,
                    room_id,
                    user_id,
                )
            )
        if timed:
            msg = f"timers for entries not finished here: {sorted(timed)}"
            raise ValueError(msg)
        for chunk in _chunks(rows):
            await self._write(*_many(_OUTCOMES_MANY, chunk))

    # --- reading ------------------------------------------------------------------------

    async def query(self, where: AuditFilter) -> list[Entry]:
        clause, params = where.sql()
        async with self.db.execute(f"SELECT {_COLUMNS} FROM actions {clause}", params) as cursor:  # noqa: S608 (the clause is built from fixed column names)
            return [_entry(row) for row in await cursor.fetchall()]

    async def entries(self, clause: str, params: Sequence[Any] = ()) -> list[Entry]:
        """Whole rows of ``actions`` chosen by ``clause`` (what follows ``FROM actions``:
        WHERE and ORDER BY, a ``?`` for each of ``params``), read as :meth:`execute`
        runs its statement: in turn, waiting out a failure that can pass."""
        rows = await self.execute(f"SELECT {_COLUMNS} FROM actions {clause}", params)  # noqa: S608 (the caller's clause names fixed columns)
        return [_entry(row) for row in rows]

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
        changed = await self._write_counted(
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
