"""The handle cache: the numeric user id of each TikTok handle modbot has resolved.

Kept in the audit database's ``handles`` table (one row per handle, case-insensitive),
so a restart does not ask the API again for the streamers it watches; the watcher and
the console's commands read and write it here, not through the audit store's class.
"""

from __future__ import annotations

from datetime import UTC, datetime

from modbot.audit.store import AuditStore
from modbot.events import format_ts


class Handles:
    """Handle -> user id, cached in the audit database."""

    def __init__(self, store: AuditStore) -> None:
        self.store = store

    async def user_id(self, unique_id: str) -> str | None:
        """The cached user id of a handle (any case), None when it was never resolved."""
        async with self.store.db.execute(
            "SELECT user_id FROM handles WHERE unique_id = ? COLLATE NOCASE", (unique_id,)
        ) as cursor:
            row = await cursor.fetchone()
        return str(row[0]) if row else None

    async def lookup(self, unique_id: str) -> tuple[str, datetime] | None:
        """The cached user id of a handle (any case) and when it was resolved; None
        when it was never resolved (or its time does not read)."""
        async with self.store.db.execute(
            "SELECT user_id, resolved FROM handles WHERE unique_id = ? COLLATE NOCASE",
            (unique_id,),
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        try:
            when = datetime.fromisoformat(str(row[1]))
        except ValueError:
            return None
        return str(row[0]), when if when.tzinfo is not None else when.replace(tzinfo=UTC)

    async def save(self, unique_id: str, user_id: str, now: datetime) -> None:
        """Remember a handle's user id (the latest answer wins)."""
        await self.store.execute(
            "INSERT INTO handles (unique_id, user_id, resolved) VALUES (?, ?, ?)"
            " ON CONFLICT(unique_id) DO UPDATE SET user_id = excluded.user_id,"
            " resolved = excluded.resolved",
            (unique_id.lower(), user_id, format_ts(now)),
        )
