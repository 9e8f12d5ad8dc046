"""Euler WebSocket bundles to modbot's ``Event`` records (pure: no I/O, no clock).

One ``Decoder`` per connection: the first message of a connection is ``roomInfo``,
which gives the room id and the streamer's own user id (their events are marked
``is_owner`` and never actioned). Every other message becomes at most one ``Event``;
an unknown message type is counted and ignored, a malformed message is counted by
kind of problem and skipped, so one bad message never costs the others.

What is malformed depends on the field. A bad id, time or text, or a bad field that
says what the event is (a gift's type, diamonds and count, a viewer count, a control
action), drops the message. A bad side field, one that only informs conditions (a
viewer's follow status, follower count and honour level, a like's count, a social
message's follow and share counts), is counted as "FIELD ignored" and read as 0, and
the message goes on: else a chat could carry its slur past the rules by a bad
``followerCount``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from modbot.events import (
    MAX_TEXT,
    Event,
    EventError,
    EventKind,
    Gift,
    Moderation,
    User,
    clean_text,
    parse_id,
    parse_number,
)

# Message types that carry nothing the rules use (deleted comments, ...).
IGNORED_TYPES = frozenset({"WebcastImDeleteMessage"})
STREAKABLE_GIFT = 1
CONTROL_ENDED = (3, 4)  # ended, suspended
# WebcastMemberMessage ``action`` (TikTok's MemberMessageAction, schema v3 numbers):
# a join, or a moderator's own action (``operator`` did it, ``user`` is to whom).
# Schema v2 calls 3 SUBSCRIBED: a 3 without an operator is counted as malformed.
MEMBER_JOINS = (0, 1)  # no action (older messages), ENTER
MEMBER_MODERATION = {
    3: "mute",  # BAN_TALK
    4: "unmute",  # BAN_TALK_CANCEL
    7: "kick",  # KICKOUT
    9: "ban",  # BAN_BY_ADMIN
    10: "unban",  # UNBAN_BY_ADMIN
    11: "kick",  # USER_KICKOUT
    22: "comments_on",  # COMMENTS_ON
    23: "comments_off",  # COMMENTS_OFF
    24: "keywords",  # KEYWORDS_EDITED
}
ROOM_WIDE = frozenset({"comments_on", "comments_off", "keywords"})  # no viewer is acted on


class BadMessage(ValueError):
    """A message of a known type whose fields are not what the API documents."""


@dataclass
class Decoder:
    """Decodes the bundles of one WebSocket connection for one streamer."""

    streamer: str
    room_id: str = ""
    owner_user_id: str = ""
    unknown: Counter[str] = field(default_factory=Counter)
    malformed: Counter[str] = field(default_factory=Counter)
    _bundle_ms: int = 0  # the bundle's timestamp (0: none), the fallback of createTime

    def decode(self, bundle: dict[str, Any]) -> list[Event]:
        """The events of one bundle, in order; problems are counted, never raised."""
        return [event for part in self.parts(bundle, None) for event in part]

    def parts(self, bundle: dict[str, Any], size: int | None) -> Iterator[list[Event]]:
        """The events of one bundle, ``size`` messages at a time (all at once: None)."""
        messages = bundle.get("messages")
        if not isinstance(messages, list):
            self.malformed["bundle without messages"] += 1
            return
        try:
            self._bundle_ms = parse_number(bundle.get("timestamp"), "timestamp", "bundle")
        except EventError as exc:
            # The bundle is counted; its messages still count, each with its own time.
            self.malformed[str(exc)] += 1
            self._bundle_ms = 0
        step = size or max(len(messages), 1)
        for start in range(0, len(messages), step):
            yield self._events(messages[start : start + step])

    def _events(self, messages: list[object]) -> list[Event]:
        out: list[Event] = []
        for message in messages:
            try:
                event = self.message(message)
            except BadMessage as exc:
                self.malformed[str(exc)] += 1
                continue
            if event is not None:
                out.append(event)
        return out

    def message(self, message: object) -> Event | None:
        """One message as an Event (None for roomInfo and ignored types)."""
        if not isinstance(message, dict):
            raise BadMessage("message that is not an object")
        kind = message.get("type")
        data = message.get("data")
        if not isinstance(kind, str) or not isinstance(data, dict):
            raise BadMessage("message without type or data")
        if kind == "roomInfo":
            self.room_id = _id(data.get("roomId") or data.get("id"), "", "roomInfo.roomId")
            owner = data.get("owner")
            owner_id = data.get("ownerUserId") or (
                owner.get("userId") if isinstance(owner, dict) else None
            )
            self.owner_user_id = _id(owner_id, "", "roomInfo.ownerUserId") if owner_id else ""
            return None
        handler = _HANDLERS.get(kind)
        if handler is None:
            if kind not in IGNORED_TYPES:
                self.unknown[kind] += 1
            return None
        return handler(self, data)

    # --- per type -----------------------------------------------------------------------

    def _base(
        self,
        kind: EventKind,
        data: dict[str, Any],
        *,
        user: User | None = None,
        text: str = "",
        language: str = "",
        gift: Gift | None = None,
        count: int = 0,
        viewers: int = 0,
    ) -> Event:
        common = data.get("common")
        if not isinstance(common, dict):
            raise BadMessage(f"{kind} message without common")
        room = _id(common.get("roomId"), kind, "common.roomId") or self.room_id
        return Event(
            kind,
            _time(_int(common.get("createTime"), kind, "common.createTime"), self._bundle_ms),
            self.streamer,
            room_id=room,
            msg_id=_id(common.get("msgId"), kind, "common.msgId"),
            user=user,
            text=text,
            language=language,
            gift=gift,
            count=count,
            viewers=viewers,
        )

    def _user(self, data: dict[str, Any], identity: object = None) -> User:
        raw = data.get("user")
        if not isinstance(raw, dict):
            raise BadMessage("message without user")
        user_id = _id(raw.get("userId"), "", "user.userId")
        if not user_id:
            raise BadMessage("user without userId")
        ident = _obj(identity)
        follow = _obj(raw.get("followInfo"))
        attr = _obj(raw.get("userAttr"))
        honor = _obj(raw.get("userHonor"))
        # Side fields: a bad one reads as 0 (not a follower, level 0, no followers),
        # the reading that trusts the viewer least, so it never exempts anyone.
        follow_status = self._side(follow.get("followStatus"), "user.followInfo.followStatus")
        is_owner = bool(ident.get("isAnchor")) or (
            bool(self.owner_user_id) and user_id == self.owner_user_id
        )
        return User(
            user_id=user_id,
            unique_id=_text(raw.get("uniqueId"), 64),
            nickname=_text(raw.get("nickname"), 200),
            is_owner=is_owner,
            is_moderator=bool(ident.get("isModeratorOfAnchor"))
            or bool(attr.get("isAdmin"))
            or bool(attr.get("isSuperAdmin")),
            is_subscriber=bool(ident.get("isSubscriberOfAnchor")),
            is_follower=bool(ident.get("isFollowerOfAnchor")) or follow_status in (1, 2),
            is_friend=bool(ident.get("isMutualFollowingWithAnchor")) or follow_status == 2,
            is_gifter=bool(ident.get("isGiftGiverOfAnchor")),
            gifter_level=self._side(honor.get("level"), "user.userHonor.level"),
            follower_count=self._side(follow.get("followerCount"), "user.followInfo.followerCount"),
        )

    def _side(self, value: object, name: str) -> int:
        """A side field (see the module's docstring): its number, or 0 when it is not
        one, counted as ``"NAME ignored"`` (never quoting the value)."""
        try:
            return parse_number(value, name)
        except EventError:
            self.malformed[f"{name} ignored"] += 1
            return 0

    def on_chat(self, data: dict[str, Any]) -> Event:
        user = self._user(data, data.get("userIdentity"))
        return self._base(
            "comment",
            data,
            user=user,
            text=_text(data.get("comment"), MAX_TEXT),
            language=_text(data.get("contentLanguage"), 16),
        )

    def on_emote(self, data: dict[str, Any]) -> Event:
        return self._base("emote", data, user=self._user(data, data.get("userIdentity")))

    def on_gift(self, data: dict[str, Any]) -> Event | None:
        details = data.get("giftDetails")
        if not isinstance(details, dict):
            raise BadMessage("gift message without giftDetails")
        # The type, diamonds and count are what a gift is (not side fields): a bad type
        # read as 0 would count each step of a streak as a gift, bad diamonds as 0 would
        # pass a costly gift as a free one. A gift has no text the rules could miss.
        streakable = (
            _int(details.get("giftType"), "gift", "giftDetails.giftType") == STREAKABLE_GIFT
        )
        if streakable and not data.get("repeatEnd"):
            return None  # a streak in progress: it counts once, when it ends
        gift = Gift(
            name=_text(details.get("giftName"), 100),
            diamonds=_int(details.get("diamondCount"), "gift", "giftDetails.diamondCount"),
            count=max(_int(data.get("repeatCount"), "gift", "repeatCount"), 1),
        )
        return self._base("gift", data, user=self._user(data, data.get("userIdentity")), gift=gift)

    def on_join(self, data: dict[str, Any]) -> Event:
        return self._base("join", data, user=self._user(data, data.get("userIdentity")))

    def on_member(self, data: dict[str, Any]) -> Event | None:
        """A join, or a moderator's action (a ``moderation`` event); other actions (a
        viewer leaving, ...) are counted as unknown and ignored."""
        code = _int(data.get("action"), "member", "action")
        if code in MEMBER_JOINS:
            return self.on_join(data)
        what = MEMBER_MODERATION.get(code)
        if what is None:
            self.unknown["WebcastMemberMessage with another action"] += 1  # one key, however many
            return None
        raw = data.get("operator")
        if not isinstance(raw, dict):
            raise BadMessage("member moderation action without operator")
        operator = self._user({"user": raw})
        target = None if what in ROOM_WIDE else self._user(data)
        event = self._base("moderation", data, user=target)
        return replace(event, moderation=Moderation(what, operator, code))

    def on_like(self, data: dict[str, Any]) -> Event:
        user = self._user(data, data.get("userIdentity"))
        # A side field: no rule weighs a like's count, the like itself (who, how often)
        # is what like rules count, so a bad count reads as 0 and the like goes on.
        count = self._side(data.get("likeCount"), "like likeCount")
        return self._base("like", data, user=user, count=count)

    def on_social(self, data: dict[str, Any]) -> Event | None:
        display = _obj(_obj(data.get("common")).get("displayText"))
        key = str(display.get("key", ""))
        # Side fields: they only help tell a follow from a share when the display key
        # does not; a bad one reads as 0 (no such hint).
        follows = self._side(data.get("followCount"), "social followCount")
        shares = self._side(data.get("shareCount"), "social shareCount")
        if "follow" in key or follows:
            kind: EventKind = "follow"
        elif "share" in key or shares:
            kind = "share"
        else:
            return None
        return self._base(kind, data, user=self._user(data, data.get("userIdentity")))

    def on_question(self, data: dict[str, Any]) -> Event:
        details = data.get("details")
        if not isinstance(details, dict):
            raise BadMessage("question message without details")
        user = self._user(details)
        return self._base("question", data, user=user, text=_text(details.get("content"), MAX_TEXT))

    def on_viewers(self, data: dict[str, Any]) -> Event:
        return self._base(
            "viewers", data, viewers=_int(data.get("viewerCount"), "viewers", "viewerCount")
        )

    def on_control(self, data: dict[str, Any]) -> Event | None:
        if _int(data.get("action"), "control", "action") not in CONTROL_ENDED:
            return None
        return self._base("stream_end", data)


_HANDLERS = {
    "WebcastChatMessage": Decoder.on_chat,
    "WebcastEmoteChatMessage": Decoder.on_emote,
    "WebcastGiftMessage": Decoder.on_gift,
    "WebcastMemberMessage": Decoder.on_member,
    "WebcastLikeMessage": Decoder.on_like,
    "WebcastSocialMessage": Decoder.on_social,
    "WebcastQuestionNewMessage": Decoder.on_question,
    "WebcastRoomUserSeqMessage": Decoder.on_viewers,
    "WebcastControlMessage": Decoder.on_control,
}


def _obj(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _id(value: object, kind: str, name: str) -> str:
    """A numeric id kept exact (strings as they are; ints never through float)."""
    try:
        return parse_id(value, name, kind)
    except EventError as exc:
        raise BadMessage(str(exc)) from None


def _int(value: object, kind: str, name: str) -> int:
    """A numeric field (0 when missing); anything ``parse_number`` refuses makes the
    message malformed."""
    try:
        return parse_number(value, name, kind)
    except EventError as exc:
        raise BadMessage(str(exc)) from None


def _text(value: object, limit: int) -> str:
    return clean_text(value, limit) if isinstance(value, str) else ""


def _time(millis: int, fallback: int = 0) -> datetime:
    """``common.createTime`` (milliseconds, read by ``_int``) as aware UTC.

    A message without one takes the bundle's ``timestamp`` (read once per bundle).
    """
    millis = millis or fallback
    if millis <= 0:
        raise BadMessage("message without a valid createTime")
    seconds = millis / 1000 if millis > 100_000_000_000 else millis
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise BadMessage("message with an out-of-range createTime") from None
