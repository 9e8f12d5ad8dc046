"""Requests from the console to the running daemon, through the audit database (I/O).

A command that needs the daemon's memory (``modbot nuke``: the recent comments it
keeps, the sockets it reads) cannot do the work itself. It writes a row to the
``requests`` table and waits; the daemon polls the table, takes the row (``pending`` ->
``taken``, one atomic update, so two daemons never both take it), does the work and
writes its answer (``done`` or ``failed``, with a JSON object). A command that gives up
waiting marks its row ``expired`` in the same atomic way, so a daemon that starts later
never does what nobody waits for any more; if the daemon took it meanwhile, the command
knows and waits for the answer instead.

The database is the channel because both sides have it already: it works across
processes and users of one state directory, with nothing more to secure (the file is
0600 in a 0700 directory), and every request stays in the audit trail.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modbot.audit.store import AuditStore
from modbot.events import format_ts
from modbot.inert import encodable

KINDS = ("nuke",)
MAX_ARGS = 20_000  # characters of a request's JSON arguments (a nuke's is far smaller)


@dataclass(frozen=True)
class Request:
    """One request, as stored."""

    id: int
    ts: str
    kind: str
    args: dict[str, Any]
    status: str  # pending taken done failed expired
    answer: dict[str, Any] | None
    taken_by: str | None


def _json(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return {"unreadable": text[:200]}
    return value if isinstance(value, dict) else {"value": value}


def _request(row: Any) -> Request:
    rid, ts, kind, args, status, answer, taken_by = row
    return Request(
        int(rid), str(ts), str(kind), _json(args) or {}, str(status), _json(answer), taken_by
    )


_COLUMNS = "id, ts, kind, args, status, answer, taken_by"


def daemon_name() -> str:
    """Who takes a request: this host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


async def submit(store: AuditStore, kind: str, args: dict[str, Any], now: datetime) -> int:
    """Write a pending request; its id."""
    if kind not in KINDS:
        msg = f"unknown request kind {kind!r}"
        raise ValueError(msg)
    # The nonce finds the row again without RETURNING (SQLite before 3.35 has none).
    text = json.dumps({**args, "nonce": uuid.uuid4().hex}, sort_keys=True, ensure_ascii=True)
    if len(text) > MAX_ARGS:
        msg = f"the request is {len(text):,} characters; at most {MAX_ARGS:,}"
        raise ValueError(msg)
    stamp = format_ts(now)
    await store.execute(
        "INSERT INTO requests (ts, kind, args, updated) VALUES (?, ?, ?, ?)",
        (stamp, kind, text, stamp),
    )
    rows = await store.execute("SELECT id FROM requests WHERE args = ?", (text,))
    return int(rows[0][0])


async def get(store: AuditStore, request_id: int) -> Request | None:
    rows = await store.execute(
        f"SELECT {_COLUMNS} FROM requests WHERE id = ?",  # noqa: S608 (fixed columns)
        (request_id,),
    )
    return _request(rows[0]) if rows else None


async def pending(store: AuditStore, limit: int = 20) -> list[Request]:
    """The oldest pending requests (the partial index makes this cheap to poll)."""
    rows = await store.execute(
        f"SELECT {_COLUMNS} FROM requests WHERE status = 'pending' ORDER BY id LIMIT ?",  # noqa: S608
        (limit,),
    )
    return [_request(r) for r in rows]


async def _move(
    store: AuditStore,
    request_id: int,
    frm: str,
    to: str,
    now: datetime,
    *,
    answer: dict[str, Any] | None = None,
    taken_by: str | None = None,
) -> bool:
    changed = await store.execute_counted(
        "UPDATE requests SET status = ?, updated = ?,"
        " answer = coalesce(?, answer), taken_by = coalesce(?, taken_by)"
        " WHERE id = ? AND status = ?",
        (
            to,
            format_ts(now),
            None if answer is None else json.dumps(encodable_json(answer), sort_keys=True),
            taken_by,
            request_id,
            frm,
        ),
    )
    return changed == 1


async def take(store: AuditStore, request_id: int, now: datetime, by: str) -> bool:
    """pending -> taken; False when it was not pending any more (expired, taken)."""
    return await _move(store, request_id, "pending", "taken", now, taken_by=by)


async def expire(
    store: AuditStore, request_id: int, now: datetime, why: str = "nobody took it"
) -> bool:
    """pending -> expired; False when a daemon took it first."""
    return await _move(store, request_id, "pending", "expired", now, answer={"error": why})


async def refuse(store: AuditStore, request_id: int, now: datetime, why: str) -> bool:
    """pending -> failed without taking it (a request the daemon cannot read)."""
    return await _move(
        store, request_id, "pending", "failed", now, answer={"error": why}, taken_by=daemon_name()
    )


async def answer(
    store: AuditStore, request_id: int, now: datetime, *, ok: bool, what: dict[str, Any]
) -> None:
    """taken -> done (or failed), with what was done."""
    await _move(store, request_id, "taken", "done" if ok else "failed", now, answer=what)


async def expire_stale(store: AuditStore, before: datetime) -> int:
    """Mark pending requests asked before ``before`` expired (a daemon's start: whoever
    asked has given up waiting), and taken ones whose daemon is gone (it died before it
    answered: no one else ever will); how many."""
    count = await store.execute_counted(
        "UPDATE requests SET status = 'expired', updated = ?,"
        ' answer = \'{"error": "asked before the daemon started"}\''
        " WHERE status = 'pending' AND ts < ?",
        (format_ts(before), format_ts(before)),
    )
    rows = await store.execute(
        "SELECT id, taken_by FROM requests WHERE status = 'taken' AND updated < ?",
        (format_ts(before),),
    )
    for rid, taken_by in rows:
        if not _taker_alive(taken_by):
            why = "the daemon that took it stopped before it answered"
            count += await _move(
                store, int(rid), "taken", "expired", now=before, answer={"error": why}
            )
    return count


def _taker_alive(taken_by: object) -> bool:
    """Whether ``taken_by`` (``host:pid``) names another live process on this machine."""
    if not isinstance(taken_by, str):
        return False
    host, _, pid_text = taken_by.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False  # unreadable, or another machine's (one state directory is one machine's)
    pid = int(pid_text)
    if pid <= 0 or pid == os.getpid():
        return False  # this process has just started: it answers nothing it took before
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True  # alive, another user's
    except OSError:
        return False
    return True


def encodable_json(value: Any) -> Any:
    """A JSON value with every string safe to encode (no lone surrogates)."""
    if isinstance(value, str):
        return encodable(value)
    if isinstance(value, dict):
        return {encodable(str(k)): encodable_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encodable_json(v) for v in value]
    return value
