"""Actions by hand: what a moderator typed, checked, and made into intents (pure).

``modbot mute|unmute|ban|unban|comments|say`` (:mod:`modbot.cli.console_actions`)
take a viewer, a duration, a text and a reason from the command line: anything may be
in them (a pasted nickname with a bidirectional override, 10,000 characters, a lone
surrogate from a mis-decoded argument). A viewer that is not a TikTok handle or a
numeric id is refused, as is a reason or a message too long to be meant; invisible
characters are taken out of a reason and of a message (the streamer's account says
it), and what is kept is what is audited and said.

The intents are a rule's, under the rule ``manual``: the operator's reason and who ran
the command are on the audit row, and the executor's path is the same (gate, intent
written first, call, outcome, expiry timer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modbot.actions.plan import Intent
from modbot.inert import encodable, shown, spoken
from modbot.rules.engine import Decision
from modbot.rules.schema import REPLY_LIMIT

MANUAL_RULE = "manual"
REASON_LIMIT = 500  # characters of an operator's reason
EVERYWHERE = "everywhere"

# TikTok handles: letters, digits, underscore and period, at most 24 (ASCII only).
_HANDLE = re.compile(r"@?([A-Za-z0-9._]{1,24})", re.ASCII)
_USER_ID = re.compile(r"[0-9]{1,20}", re.ASCII)
_SPACES = re.compile(r"\s+")

# What the gate says when the wanted state already holds: a repeat, comments already off.
_ALREADY = ("the same ", "comments are already off")


class Refused(ValueError):
    """A value from the command line that is not taken (the message says why)."""


@dataclass(frozen=True)
class Viewer:
    """A viewer as given: a handle (without @) or a numeric user id."""

    handle: str | None = None
    user_id: str | None = None

    def __str__(self) -> str:
        return f"@{self.handle}" if self.handle else str(self.user_id)


def parse_viewer(text: str) -> Viewer:
    """``@handle`` (or a bare handle that is not all digits) or a numeric user id."""
    if _USER_ID.fullmatch(text):
        return Viewer(user_id=text)
    found = _HANDLE.fullmatch(text)
    if found is None:
        msg = (
            f"{shown(text, 40)!r} is neither a TikTok @handle (letters, digits, _ and ., "
            "at most 24) nor a numeric user id"
        )
        raise Refused(msg)
    return Viewer(handle=found.group(1))


def clean_reason(text: str | None) -> str | None:
    """The operator's reason as kept: invisible characters out, spaces squeezed."""
    if text is None:
        return None
    kept = spoken(encodable(text), len(text) + 1)
    if len(kept) > REASON_LIMIT:
        msg = f"--reason: at most {REASON_LIMIT} characters, not {len(kept):,}"
        raise Refused(msg)
    return kept or None


def clean_message(text: str) -> str:
    """A chat message to say as the streamer: invisible characters out, spaces squeezed,
    at most the length of a rule's reply. A blank one is left to the speech check."""
    kept = _SPACES.sub(" ", spoken(encodable(text), len(text) + 1))  # squeezed, then counted
    if len(kept) > REPLY_LIMIT:
        msg = f"a chat message is at most {REPLY_LIMIT} characters, not {len(kept):,}"
        raise Refused(msg)
    return kept


@dataclass(frozen=True)
class Order:
    """One action by hand: what, on whom, and the operator's words."""

    action: str  # mute, unmute, ban, unban, comments, reply
    by: str  # who ran the command (the OS user)
    reason: str | None = None
    viewer: Viewer | None = None
    duration_s: float | None = None  # mute: None is forever
    text: str | None = None  # say
    enabled: bool | None = None
    for_s: float | None = None
    everywhere: bool = False  # ban, unban: every configured streamer


def intent(
    order: Order,
    *,
    ts: datetime,
    streamer: str,
    room_id: str,
    user_id: str = "",
    unique_id: str = "",
    incident: int | None = None,
) -> Intent:
    """The intent of an order in one streamer's room, under the rule ``manual``.

    The params keep who ran it (``by``), the incident it belongs to, and for a ban or an
    unban its scope: ``everywhere`` or the streamer (the remembered ban list reads it).
    """
    extra: dict[str, Any] = {"by": order.by}
    if incident is not None:
        extra["incident"] = incident
    if order.action in ("ban", "unban"):
        extra["scope"] = EVERYWHERE if order.everywhere else streamer
    decision = Decision(
        rule=MANUAL_RULE,
        rule_hash="",
        action=order.action,
        mode="enforce",
        detail=f"by hand ({shown(order.by, 40)})",
        user_id=user_id,
        unique_id=unique_id,
        duration_s=order.duration_s,
        text=order.text,
        enabled=order.enabled,
        for_s=order.for_s,
        # a ban everywhere is remembered for every configured streamer (params "everywhere")
        everywhere=order.everywhere and order.action == "ban",
    )
    return Intent(
        decision,
        ts=ts,
        streamer=streamer,
        room_id=room_id,
        reason=order.reason,
        extra=extra,
    )


def already(why: str | None) -> bool:
    """Whether a gate's skip means the wanted state already holds (a repeat within the
    de-duplication window, comments already off): no failure of the command."""
    return why is not None and why.startswith(_ALREADY)


def pick_streamers(given: str | None, configured: list[str], *, everywhere: bool) -> list[str]:
    """Whose rooms a console command acts in: ``--streamer S`` (a configured one, when
    any are configured), every configured one, or the only one configured."""
    configured = [c.lstrip("@") for c in configured]
    if everywhere:
        if not configured:
            msg = "--everywhere: no streamers are configured (the streamers setting)"
            raise Refused(msg)
        return list(configured)
    if given is not None:
        try:
            handle = parse_viewer(given if given.startswith("@") else "@" + given).handle
        except Refused:
            handle = None
        if not handle:
            msg = f"--streamer: {shown(given, 40)!r} is not a TikTok handle"
            raise Refused(msg)
        known = {c.lower(): c for c in configured}
        if configured and handle.lower() not in known:
            msg = (
                f"--streamer: @{handle} is not a configured streamer (configured: "
                f"{', '.join('@' + c for c in configured)})"
            )
            raise Refused(msg)
        return [known.get(handle.lower(), handle)]
    if len(configured) == 1:
        return list(configured)
    if not configured:
        msg = "give --streamer S: no streamers are configured (the streamers setting)"
        raise Refused(msg)
    msg = (
        f"give --streamer S: {len(configured)} streamers are configured "
        f"({', '.join('@' + c for c in configured)})"
    )
    raise Refused(msg)
