"""Audit filters to SQL (pure): what ``modbot audit`` and ``modbot undo --rule`` select."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from modbot.actions.table import names
from modbot.events import format_ts
from modbot.inert import shown

STATUSES = ("pending", "done", "failed", "skipped", "observed")
MAX_LIMIT = 100_000

_AGO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class FilterError(ValueError):
    """A filter value that cannot be understood (the message says how to write it)."""


def parse_when(value: str, now: datetime) -> datetime:
    """``10m``/``2h``/``1d`` ago, or an ISO 8601 time (UTC when it has no offset)."""
    ago = _AGO.match(value)
    try:
        if ago:
            return now - timedelta(seconds=float(ago.group(1)) * _UNITS[ago.group(2)])
        parsed = datetime.fromisoformat(value.strip())
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:
        # A timedelta past 999,999,999 days, or a time before year 1 or after 9999.
        msg = f"{shown(value, 40)!r} is out of range: it must fall between the years 1 and 9999"
        raise FilterError(msg) from None
    except ValueError:
        msg = f"{shown(value, 40)!r} is neither a duration like 10m, 2h, 1d nor an ISO 8601 time"
        raise FilterError(msg) from None


@dataclass(frozen=True)
class AuditFilter:
    """Which audit entries to show; every field narrows, None means any."""

    user: str | None = None  # unique_id (with or without @) or numeric user id
    rule: str | None = None
    action: str | None = None
    streamer: str | None = None  # a handle, with or without @
    since: datetime | None = None
    until: datetime | None = None
    status: str | None = None
    ids: tuple[int, ...] | None = None
    incident: int | None = None  # the rows of one incident
    limit: int | None = 100
    oldest_first: bool = False

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in STATUSES:
            msg = f"status must be one of {', '.join(STATUSES)}, not {self.status!r}"
            raise FilterError(msg)
        if self.action is not None and self.action not in names():
            msg = f"action must be one of {', '.join(names())}, not {self.action!r}"
            raise FilterError(msg)
        if self.limit is not None and not 1 <= self.limit <= MAX_LIMIT:
            msg = f"limit must be from 1 to {MAX_LIMIT}, not {self.limit}"
            raise FilterError(msg)

    def sql(self) -> tuple[str, list[object]]:
        """A WHERE ... ORDER BY ... LIMIT clause and its parameters."""
        where: list[str] = []
        params: list[object] = []
        if self.user is not None:
            who = self.user.removeprefix("@")
            where.append("(unique_id = ? COLLATE NOCASE OR user_id = ?)")
            params += [who, who]
        if self.streamer is not None:
            # Handles are stored without the @ and compared as TikTok does, without case.
            where.append("streamer = ? COLLATE NOCASE")
            params.append(self.streamer.removeprefix("@"))
        for column, value in (
            ("rule", self.rule),
            ("action", self.action),
            ("status", self.status),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if self.since is not None:
            where.append("ts >= ?")
            params.append(format_ts(self.since))
        if self.until is not None:
            where.append("ts <= ?")
            params.append(format_ts(self.until))
        if self.incident is not None:
            where.append("incident = ?")
            params.append(self.incident)
        if self.ids is not None:
            where.append(f"id IN ({', '.join('?' for _ in self.ids) or 'NULL'})")
            params += list(self.ids)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        order = "ASC" if self.oldest_first else "DESC"
        clause += f" ORDER BY ts {order}, id {order}"
        if self.limit is not None:
            clause += " LIMIT ?"
            params.append(self.limit)
        return clause, params
