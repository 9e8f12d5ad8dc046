"""The ban list modbot keeps across lives, read from the audit database (I/O).

TikTok LIVE bans belong to one live room, and every live is a new room. The ``bans``
table (schema migration 4) holds every ban modbot made, by rule or by hand, that was
not lifted: the database's triggers add a row when a ban is done and end it when an
unban of the viewer is done (an undo, ``modbot unban``, a moderator's unban seen on
the WebSocket), whichever process wrote the row. This module reads it: the whole list
at start, then what changed since (``version``), and the rooms a remembered ban was
already carried into (one call per viewer per room, across restarts too).

The store is named for the type checker only: the functions take any open
:class:`~modbot.audit.store.AuditStore` and run their statements through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modbot.audit.store import AuditStore

REMEMBERED_RULE = "remembered"
"""The rule name of a ban carried into a later live (its params link the original)."""

_COLUMNS = (
    "action_id, user_id, unique_id, streamer, room_id, everywhere, since, ended, ended_by, version"
)


@dataclass(frozen=True, slots=True)
class BanRecord:
    """One row of the ban list: the ban (its audit id), whom, where it applies."""

    action_id: int
    user_id: str
    unique_id: str
    streamer: str  # where it was made
    room_id: str  # the room it was made in
    everywhere: bool  # every configured streamer
    since: str
    ended: str | None = None  # None: still remembered
    ended_by: int | None = None  # the unban that ended it
    version: int = 0

    @property
    def remembered(self) -> bool:
        return self.ended is None

    def to_json(self) -> dict[str, Any]:
        return {
            "action_id": self.action_id,
            "user_id": self.user_id,
            "unique_id": self.unique_id,
            "streamer": self.streamer,
            "room_id": self.room_id,
            "everywhere": self.everywhere,
            "since": self.since,
            "ended": self.ended,
            "ended_by": self.ended_by,
        }


def _record(row: Any) -> BanRecord:
    action_id, user_id, unique_id, streamer, room_id, everywhere, since, ended, by, version = row
    return BanRecord(
        action_id=int(action_id),
        user_id=str(user_id),
        unique_id=str(unique_id or ""),
        streamer=str(streamer),
        room_id=str(room_id or ""),
        everywhere=bool(everywhere),
        since=str(since),
        ended=None if ended is None else str(ended),
        ended_by=None if by is None else int(by),
        version=int(version),
    )


async def remembered(store: AuditStore) -> tuple[list[BanRecord], int]:
    """Every ban still remembered, oldest first, and the list's version now.

    The list and the version are read by one statement, so from one snapshot of the
    database: read apart, a ban written between the two would count in the version and
    be missing from the list, and the polls after (``changed_since``) would never bring
    it.
    """
    rows = await store.execute(
        f"SELECT top.v, {_COLUMNS} FROM (SELECT coalesce(max(version), 0) AS v FROM bans) AS top"  # noqa: S608 (fixed columns)
        " LEFT JOIN bans ON bans.ended IS NULL ORDER BY bans.action_id"
    )
    version = int(rows[0][0]) if rows else 0
    return [_record(tuple(r)[1:]) for r in rows if r[1] is not None], version


async def changed_since(store: AuditStore, version: int, limit: int = 10_000) -> list[BanRecord]:
    """The rows added or ended after ``version``, in order of version."""
    rows = await store.execute(
        f"SELECT {_COLUMNS} FROM bans WHERE version > ? ORDER BY version, action_id LIMIT ?",  # noqa: S608 (fixed columns)
        (version, limit),
    )
    return [_record(r) for r in rows]


async def carried(store: AuditStore) -> list[tuple[str, str]]:
    """(room id, user id) of every remembered ban already carried into a room (done, or
    in flight when modbot stopped)."""
    rows = await store.execute(
        "SELECT room_id, user_id FROM actions WHERE rule = ? AND action = 'ban'"
        " AND status IN ('done', 'pending')",
        (REMEMBERED_RULE,),
    )
    return [(str(room), str(user)) for room, user in rows]


async def of_user(store: AuditStore, user_id: str) -> list[BanRecord]:
    """Every row about one viewer, remembered or ended (for the console and tests)."""
    rows = await store.execute(
        f"SELECT {_COLUMNS} FROM bans WHERE user_id = ? ORDER BY action_id",  # noqa: S608 (fixed columns)
        (user_id,),
    )
    return [_record(r) for r in rows]
