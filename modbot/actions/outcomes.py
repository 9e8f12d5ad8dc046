"""What a call came to, as the audit writer takes it (no I/O).

An :class:`Outcome` is the result of one recorded intent's call: its final status, the
error (class and message, cleaned and cut to ``ERROR_LIMIT``), the durable timers it
sets (:func:`timers_for`) and the parameters it adds to its row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modbot.actions.plan import Intent
from modbot.actions.table import kind_of
from modbot.inert import shown
from modbot.log import scrub

ERROR_LIMIT = 500  # characters of an error kept in the audit row

Timed = tuple[float, str, str, str, str, int]  # (due, kind, streamer, room_id, user_id, action)


@dataclass
class Outcome:
    """One call's result, to be written into its audit row."""

    entry_id: int
    status: str
    error: str | None
    timers: list[Timed] = field(default_factory=list)
    params: dict[str, Any] | None = None
    retryable: bool = False


def failure(exc: BaseException) -> str:
    """What went wrong, for the audit row: the error's class and its message, cleaned."""
    message = scrub(str(exc))
    name = type(exc).__name__
    return shown(f"{name}: {message}" if message else name, ERROR_LIMIT)


def timers_for(intent: Intent, entry_id: int, now: float) -> list[Timed]:
    """The durable timer that ends a done action later, if it needs one (the table's
    ``expiry``): the rest of a long mute (per viewer), comments off for a while (the
    whole room). ``now`` in seconds since the epoch."""
    kind = kind_of(intent.action)
    if kind is None or kind.expiry is None:
        return []
    timer, user = kind.expiry.timer, intent.user_id
    if kind.takes == "toggle":
        on = intent.enabled is not False
        after, user = (None if on else intent.decision.for_s), ""
    else:
        after = intent.unmute_after_s
    if not after:
        return []
    return [(now + after, timer, intent.streamer, intent.room_id, user, entry_id)]
