"""Incidents: the audit rows of one operation, numbered (I/O through the store).

A ban in every configured streamer's room, a nuke, a raid swept whole: each is one
incident, and ``modbot undo --incident N`` reverses every undoable row of it. The
``incidents`` table (schema migration 5) gives the numbers, so two processes (the
daemon sweeping a raid, a moderator banning everywhere) never share one; a row belongs
to an incident through its params (``"incident": N``), which the ``incident`` column of
``actions`` reads (a generated column, indexed). ``undo --incident N`` also marks the
incident ``stopped`` (migration 6): a nuke or raid sweep of it still running stops.

The store is named for the type checker only: the functions take any open
:class:`~modbot.audit.store.AuditStore` and run their statements through it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from modbot.events import format_ts
from modbot.inert import encodable

if TYPE_CHECKING:
    from modbot.audit.store import AuditStore

DETAIL_LIMIT = 500


@dataclass(frozen=True)
class Incident:
    """One incident: when, what started it, where, and who."""

    id: int
    ts: str
    kind: str  # ban, unban, nuke, sweep ...
    streamer: str  # a handle, or "everywhere"
    detail: str
    made_by: str | None


async def new_incident(
    store: AuditStore,
    now: datetime,
    *,
    kind: str,
    streamer: str,
    detail: str = "",
    by: str | None = None,
) -> int:
    """Record a new incident; its number (never one another process got)."""
    token = secrets.token_hex(16)
    await store.execute(
        "INSERT INTO incidents (ts, kind, streamer, detail, made_by, token)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            format_ts(now),
            kind,
            streamer,
            encodable(detail)[:DETAIL_LIMIT],
            None if by is None else encodable(by),
            token,
        ),
    )
    rows = await store.execute("SELECT id FROM incidents WHERE token = ?", (token,))
    return int(rows[0][0])


async def get_incident(store: AuditStore, incident_id: int) -> Incident | None:
    """The incident numbered ``incident_id`` (None: there is none)."""
    rows = await store.execute(
        "SELECT id, ts, kind, streamer, detail, made_by FROM incidents WHERE id = ?",
        (incident_id,),
    )
    if not rows:
        return None
    id_, ts, kind, streamer, detail, made_by = rows[0]
    return Incident(
        int(id_),
        str(ts),
        str(kind),
        str(streamer),
        str(detail),
        None if made_by is None else str(made_by),
    )


async def stop_incident(store: AuditStore, incident_id: int, now: datetime) -> bool:
    """Mark the incident stopped (``undo --incident N``): a sweep of it still running in
    the daemon acts on no one more. False: there is no such incident."""
    await store.execute(
        "UPDATE incidents SET stopped = coalesce(stopped, ?) WHERE id = ?",
        (format_ts(now), incident_id),
    )
    rows = await store.execute("SELECT 1 FROM incidents WHERE id = ?", (incident_id,))
    return bool(rows)


async def stopped_among(store: AuditStore, incident_ids: Iterable[int]) -> set[int]:
    """Which of ``incident_ids`` are stopped."""
    wanted = sorted(set(incident_ids))
    if not wanted:
        return set()
    marks = ", ".join("?" * len(wanted))
    rows = await store.execute(
        f"SELECT id FROM incidents WHERE stopped IS NOT NULL AND id IN ({marks})",  # noqa: S608 (only marks)
        tuple(wanted),
    )
    return {int(r[0]) for r in rows}
