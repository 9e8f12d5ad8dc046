"""modbot's own event record: what the rules see, what `record` writes and `replay` reads.

One JSON object per line (``spec/events.md``)::

    {"kind": "comment", "ts": "2026-11-24T20:00:01.250Z", "streamer": "host_handle",
     "room_id": "7301234567890123456", "msg_id": "7301234567890999999",
     "user": {"user_id": "6812345678901234567", "unique_id": "viewer_1", ...},
     "text": "hello everyone", "language": "en"}

Missing user flags mean false; unknown keys are ignored; ids are strings (a JSON number
id is accepted and kept exact). ``parse_event`` raises ``EventError`` with a sentence
saying what is wrong; readers report it with the line number and go on.
"""

from __future__ import annotations

import json
import re
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

EventKind = Literal[
    "comment",
    "emote",
    "gift",
    "join",
    "like",
    "follow",
    "share",
    "question",
    "viewers",
    "stream_end",
    "moderation",
]
EVENT_KINDS: tuple[str, ...] = get_args(EventKind)
MAX_TEXT = 10_000  # characters kept of a comment; TikTok's own limit is far lower
# What a moderator did (a ``moderation`` event: a member message with a moderation
# action, see ``modbot.euler.decode``); the rules never see these, the daemon records
# them and never contradicts them.
MODERATIONS = (
    "mute",
    "unmute",
    "kick",
    "ban",
    "unban",
    "comments_on",
    "comments_off",
    "keywords",
)
# Kinds without a user: the room's, or a moderator's act on the whole room.
_NO_USER = ("viewers", "stream_end", "moderation")


class EventError(ValueError):
    """A record that is not a valid event."""


@dataclass(frozen=True, slots=True)
class User:
    """Who caused an event, with their relation to the streamer."""

    user_id: str
    unique_id: str = ""
    nickname: str = ""
    is_owner: bool = False
    is_moderator: bool = False
    is_subscriber: bool = False
    is_follower: bool = False
    is_friend: bool = False
    is_gifter: bool = False
    gifter_level: int = 0
    follower_count: int = 0


@dataclass(frozen=True, slots=True)
class Gift:
    """A gift: its name, diamonds per unit and how many were sent."""

    name: str
    diamonds: int
    count: int = 1

    @property
    def total_diamonds(self) -> int:
        return self.diamonds * self.count


@dataclass(frozen=True, slots=True)
class Moderation:
    """A moderator's own action: what (one of ``MODERATIONS``), TikTok's action number,
    and who did it (the event's ``user`` is to whom, if anyone)."""

    action: str
    operator: User
    code: int = 0


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened in a stream."""

    kind: EventKind
    ts: datetime
    streamer: str
    _: KW_ONLY  # the rest by name: text/language and count/viewers share their types
    room_id: str = ""
    msg_id: str = ""
    user: User | None = None
    text: str = ""
    language: str = ""
    gift: Gift | None = None
    count: int = 0
    viewers: int = 0
    moderation: Moderation | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_json(self) -> dict[str, Any]:
        """The record form (``record`` writes this, ``replay`` reads it)."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "ts": format_ts(self.ts),
            "streamer": self.streamer,
        }
        if self.room_id:
            out["room_id"] = self.room_id
        if self.msg_id:
            out["msg_id"] = self.msg_id
        if self.user is not None:
            u = self.user
            out["user"] = {
                "user_id": u.user_id,
                "unique_id": u.unique_id,
                "nickname": u.nickname,
                "is_owner": u.is_owner,
                "is_moderator": u.is_moderator,
                "is_subscriber": u.is_subscriber,
                "is_follower": u.is_follower,
                "is_friend": u.is_friend,
                "is_gifter": u.is_gifter,
                "gifter_level": u.gifter_level,
                "follower_count": u.follower_count,
            }
        if self.text:
            out["text"] = self.text
        if self.language:
            out["language"] = self.language
        if self.gift is not None:
            out["gift"] = {
                "name": self.gift.name,
                "diamonds": self.gift.diamonds,
                "count": self.gift.count,
            }
        if self.kind == "like":
            out["count"] = self.count
        if self.kind == "viewers":
            out["viewers"] = self.viewers
        if self.moderation is not None:
            m = self.moderation
            out["moderation"] = {
                "action": m.action,
                "code": m.code,
                "operator": {
                    "user_id": m.operator.user_id,
                    "unique_id": m.operator.unique_id,
                    "nickname": m.operator.nickname,
                },
            }
        return out


def format_ts(ts: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a ``Z``."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_ts(value: object) -> datetime:
    """An ISO 8601 string (``Z`` or offset) or epoch seconds/milliseconds, as aware UTC."""
    if isinstance(value, bool):
        raise EventError("ts must be an ISO 8601 time or an epoch number")
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 100_000_000_000 else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise EventError(f"ts {value} is out of range") from None
    if not isinstance(value, str) or not value:
        raise EventError("ts must be an ISO 8601 time or an epoch number")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise EventError(f"ts {value[:40]!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


# Euler's ids and numbers are 64-bit integers (protobuf int64, ids sent as strings): at
# most 19 decimal digits. One check for all of them, here: the decoder, parse_id and the
# API client (as_id, TikTok's status_code) use it.
MAX_DIGITS = 19
_BOUND = 10**MAX_DIGITS


def is_number_text(text: str, signed: bool = False) -> bool:
    """Whether ``text`` is a number as Euler writes one: 1 to 19 ASCII digits, after a
    single leading minus only when ``signed``. Nothing else passes: no space, plus sign,
    underscore, second minus, or Unicode digit (``"²"``, ``"١٢٣"``)."""
    digits = text[1:] if signed and text.startswith("-") else text
    return 0 < len(digits) <= MAX_DIGITS and digits.isascii() and digits.isdigit()


def parse_id(value: object, what: str, kind: str = "") -> str:
    """A numeric id as an exact string ('' when missing); EventError when it is not one.

    An id is 1 to 19 ASCII digits (``is_number_text``), or a JSON integer in that range;
    never signed, never a float. ``what`` names the field in the error, after ``kind``
    if there is one (``comment common.msgId``): the decoder calls this for every message,
    and the name is put together only when there is an error. The error never quotes
    the value.
    """
    if isinstance(value, str):
        if is_number_text(value):
            return value  # the usual case first
        if not value:
            return ""
    elif value is None:
        return ""
    elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _BOUND:
        return str(value)
    field = f"{kind} {what}" if kind else what
    raise EventError(f"{field} must be a numeric id (at most {MAX_DIGITS} ASCII digits)")


def parse_number(value: object, what: str, kind: str = "", *, signed: bool = True) -> int:
    """A whole number from Euler (0 when missing): a JSON integer, or a string of ASCII
    digits (``is_number_text``), at most 19 digits either way; EventError otherwise
    (a float, a boolean, ``"--1"``, ``"²"``, 5,000 digits ...), naming the field but
    never quoting the value. A minus sign is accepted only when ``signed``."""
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        if -_BOUND < value < _BOUND and (signed or value >= 0):
            return value
    elif isinstance(value, str) and is_number_text(value, signed):
        return int(value)
    field = f"{kind} {what}" if kind else what
    sign = "" if signed else "non-negative "
    raise EventError(f"{field} must be a {sign}whole number of at most {MAX_DIGITS} digits")


# chr(): mypyc (hatch_build.py) does not compile surrogates written in a literal.
_SURROGATE = re.compile(f"[{chr(0xD800)}-{chr(0xDFFF)}]")


def clean_text(value: str, limit: int) -> str:
    """Viewer text as kept: at most ``limit`` characters, lone surrogates (which JSON's
    ``\\ud800`` escapes can smuggle in and UTF-8 cannot store) replaced by U+FFFD."""
    value = value[:limit]
    if value.isascii():
        return value
    try:
        value.encode()  # in C, and only a lone surrogate fails it
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", value)
    return value


def _str(data: dict[str, Any], key: str, limit: int = 200) -> str:
    value = data.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise EventError(f"{key} must be a string")
    return clean_text(value, limit)


def _int(data: dict[str, Any], key: str) -> int:
    value = data.get(key, 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise EventError(f"{key} must be a whole number")
    return value


def _bool(data: dict[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise EventError(f"user.{key} must be true or false")
    return value


def parse_user(data: object) -> User:
    """The ``user`` object of a record."""
    if not isinstance(data, dict):
        raise EventError("user must be an object")
    user_id = parse_id(data.get("user_id"), "user.user_id")
    if not user_id:
        raise EventError("user.user_id is required")
    return User(
        user_id=user_id,
        unique_id=_str(data, "unique_id", 64),
        nickname=_str(data, "nickname", 200),
        is_owner=_bool(data, "is_owner"),
        is_moderator=_bool(data, "is_moderator"),
        is_subscriber=_bool(data, "is_subscriber"),
        is_follower=_bool(data, "is_follower"),
        is_friend=_bool(data, "is_friend"),
        is_gifter=_bool(data, "is_gifter"),
        gifter_level=_int(data, "gifter_level"),
        follower_count=_int(data, "follower_count"),
    )


def parse_event(data: object) -> Event:
    """An Event from a decoded JSON record; raises EventError saying what is wrong."""
    if not isinstance(data, dict):
        raise EventError("an event must be a JSON object")
    kind = data.get("kind")
    if kind not in EVENT_KINDS:
        raise EventError(f"kind must be one of {', '.join(EVENT_KINDS)}, not {kind!r}"[:200])
    streamer = _str(data, "streamer", 64)
    if not streamer:
        raise EventError("streamer is required")
    user = parse_user(data["user"]) if data.get("user") is not None else None
    if user is None and kind not in _NO_USER:
        raise EventError(f"a {kind} event needs a user")
    gift = None
    if kind == "gift":
        raw = data.get("gift")
        if not isinstance(raw, dict):
            raise EventError("a gift event needs a gift object")
        gift = Gift(
            name=_str(raw, "name", 100),
            diamonds=_int(raw, "diamonds"),
            count=_int(raw, "count") or 1,
        )
    return Event(
        kind=kind,
        ts=parse_ts(data.get("ts")),
        streamer=streamer,
        room_id=parse_id(data.get("room_id"), "room_id"),
        msg_id=parse_id(data.get("msg_id"), "msg_id"),
        user=user,
        text=_str(data, "text", MAX_TEXT),
        language=_str(data, "language", 16),
        gift=gift,
        count=_int(data, "count"),
        viewers=_int(data, "viewers"),
        moderation=_moderation(data.get("moderation")) if kind == "moderation" else None,
    )


def _moderation(data: object) -> Moderation:
    """The ``moderation`` object of a moderation event."""
    if not isinstance(data, dict):
        raise EventError("a moderation event needs a moderation object")
    action = data.get("action")
    if action not in MODERATIONS:
        raise EventError(f"moderation.action must be one of {', '.join(MODERATIONS)}")
    return Moderation(
        action=action,
        operator=parse_user(data.get("operator")),
        code=_int(data, "code"),
    )


def parse_line(line: str) -> Event:
    """One JSONL line as an Event (EventError when it is not one)."""
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise EventError(f"not valid JSON ({exc.args[0] if exc.args else exc})") from None
    except RecursionError:
        raise EventError("JSON nested too deeply") from None
    return parse_event(data)
