"""Who a console command acts on (``@handle`` to a numeric user id, asked now) and who
ran it (I/O).

Handles are renamed and reused: the viewer who was ``@bob`` a year ago (an audit row,
an old cache entry) may not be ``@bob`` today, and a ban by hand is remembered. So
every console command (``mute``, ``ban``, ``moderators add`` ...) asks the API who the
handle is now (the ``user_id`` route). Only when the API cannot be asked (unreachable,
5xx, rate limited, an answer that is not one) does the handle cache of the audit
database stand in, and only with an entry resolved in the last :data:`FRESH`; the
command says so. Audit rows never name anyone: a numeric id that matches a handle is
another viewer's id, not that handle.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from modbot.actions.table import format_duration
from modbot.errors import (
    ApiUnavailable,
    BadResponse,
    ModbotError,
    NotFound,
    RateLimited,
    ServerError,
)
from modbot.inert import shown

if TYPE_CHECKING:
    from modbot.actions.manual import Viewer
    from modbot.audit.store import AuditStore
    from modbot.euler.client import EulerClient

FRESH = timedelta(hours=24)
"""How old a cached handle may be to stand in for the API when it cannot be asked."""

UNREACHABLE = (ApiUnavailable, ServerError, RateLimited, BadResponse)
"""The API failures after which the cache may stand in (the API did not say who)."""


class Unresolved(ModbotError):
    """A handle that names nobody now, or that cannot be resolved now (exit 1)."""


@dataclass(frozen=True)
class Resolved:
    """The viewer's numeric user id and handle; ``note`` says when the cache stood in."""

    user_id: str
    unique_id: str = ""
    note: str | None = None


async def resolve_viewer(
    viewer: Viewer, store: AuditStore, client: EulerClient, now: datetime
) -> Resolved:
    """The user id of ``viewer``: a numeric id as given; a handle asked of the API now
    (the answer cached), else a cache entry of the last :data:`FRESH` (see the module
    docstring). Unresolved: the API knows no such handle, or it cannot be asked and the
    cache has nothing recent."""
    from modbot.audit.handles import Handles  # noqa: PLC0415

    if viewer.user_id is not None:
        return Resolved(viewer.user_id)
    handle = viewer.handle or ""
    handles = Handles(store)
    try:
        user_id = await client.user_id(handle)
    except NotFound:
        msg = f"TikTok has no account @{shown(handle, 30)} (Euler could not find it)"
        raise Unresolved(msg) from None
    except UNREACHABLE as exc:
        why = type(exc).__name__
        cached = await handles.lookup(handle)
        age = None if cached is None else now - cached[1]
        if cached is None or age is None or not timedelta(0) <= age <= FRESH:
            msg = (
                f"Euler could not be asked who @{shown(handle, 30)} is now ({why}), and modbot "
                f"resolved no such handle in the last {format_duration(FRESH.total_seconds())}: "
                "try again later, or give the numeric user id"
            )
            raise Unresolved(msg) from None
        note = (
            f"Euler could not be asked who @{shown(handle, 30)} is now ({why}): acting on "
            f"{cached[0]}, the id it had {format_duration(age.total_seconds())} ago "
            "(modbot's handle cache)"
        )
        return Resolved(cached[0], handle, note)
    await handles.save(handle, user_id, now)
    return Resolved(user_id, handle)


def who_ran() -> str:
    """Who ran the command (kept in the audit log): the OS user."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name (a container without one)
        return "unknown"
