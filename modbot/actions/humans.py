"""Humans first: a moderator's own actions, as audit rows, and when they overrule modbot (pure).

A moderator's action seen on the WebSocket (a ``moderation`` event: a mute, a kick, an
unban, comments off ...) by an operator who is not modbot's own account is recorded as
done by a moderator (:func:`moderator_entry`: rule ``moderator``, status ``done``, the
operator in the params), and modbot never contradicts it: an expiry timer whose action
a moderator acted on later is not carried out (:func:`overruled` says why), and a
viewer a moderator let back in is not banned again (``modbot.actions.memory``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from modbot.audit.records import Entry, NewEntry
from modbot.events import Event, User
from modbot.inert import encodable, shown

MODERATOR_RULE = "moderator"

# A moderation event's action as an audit row's: TikTok's kick is Euler's ban.
AS_ACTION = {
    "mute": "mute",
    "unmute": "unmute",
    "kick": "ban",
    "ban": "ban",
    "unban": "unban",
    "comments_on": "comments",
    "comments_off": "comments",
    "keywords": "keywords",
}
# What a moderator may have done after modbot's action that an expiry must respect:
# the timer's kind -> the audit actions that count.
RESPECTS = {"unmute": ("mute", "unmute"), "comments_on": ("comments",)}


def is_own(
    operator: User,
    own_ids: frozenset[str] | None,
    *,
    streamer: str = "",
    streamer_id: str | None = None,
) -> bool:
    """Whether modbot's own account did it (its call, echoed by TikTok).

    ``own_ids`` are the account of the OAuth grant; when it is not known, the
    streamer's own account is taken as modbot's (the grant is the streamer's), so an
    echo of modbot's own call is never read as a human overruling it. The streamer's
    account is known by the room's owner (roomInfo, whose shape is not documented),
    else by its user id (``streamer_id``, the watcher's resolution of the handle), else
    by its handle (``streamer``, any case).
    """
    if own_ids:
        return operator.user_id in own_ids
    if operator.is_owner:
        return True
    if streamer_id and operator.user_id == streamer_id:
        return True
    handle = streamer.strip().lstrip("@").casefold()
    return bool(handle) and operator.unique_id.strip().casefold() == handle


def _who(user: User) -> str:
    return f"@{user.unique_id}" if user.unique_id else f"user {user.user_id}"


def moderator_entry(event: Event) -> NewEntry:
    """The audit row of a moderator's action (a ``moderation`` event)."""
    m = event.moderation
    if m is None:
        msg = "not a moderation event"
        raise ValueError(msg)
    action = AS_ACTION[m.action]
    target = event.user
    params: dict[str, Any] = {
        "operator_id": m.operator.user_id,
        "operator": encodable(m.operator.unique_id),
        "member_action": m.code,
    }
    if action == "comments":
        params["enabled"] = m.action == "comments_on"
    if m.action == "kick":
        params["kick"] = True
    whom = f" {_who(target)}" if target is not None else ""
    return NewEntry(
        ts=event.ts,
        streamer=event.streamer,
        rule=MODERATOR_RULE,
        action=action,
        mode="enforce",
        status="done",
        room_id=event.room_id,
        user_id=target.user_id if target is not None else "",
        unique_id=encodable(target.unique_id) if target is not None else "",
        params=params,
        detail=encodable(
            shown(f"a moderator, {_who(m.operator)}, did {m.action.replace('_', ' ')}{whom}", 300)
        ),
        msg_id=event.msg_id,
    )


def overruled(timer_kind: str, original_id: int, later: Sequence[Entry]) -> str | None:
    """Why an expiry timer must not act (None: it may): ``later`` are the moderators'
    actions on the same viewer (or room) after modbot's, oldest first (their audit
    rows); the last one that bears on the timer decides, and the human's choice stands
    either way."""
    counts = RESPECTS.get(timer_kind, ())
    last = next((a for a in reversed(later) if a.action in counts), None)
    if last is None:
        return None
    who = shown(f"@{last.params.get('operator') or last.params.get('operator_id', '?')}", 80)
    if timer_kind == "unmute":
        if last.action == "mute":
            return (
                f"a moderator ({who}) muted the viewer at {last.ts} (#{last.id}), after the "
                f"mute of #{original_id}: the human's mute wins, no unmute"
            )
        return f"a moderator ({who}) already lifted the mute at {last.ts} (#{last.id})"
    if last.params.get("enabled") is False:
        return (
            f"a moderator ({who}) turned comments off at {last.ts} (#{last.id}), after "
            f"#{original_id}: they stay off"
        )
    return f"a moderator ({who}) already turned comments on at {last.ts} (#{last.id})"
