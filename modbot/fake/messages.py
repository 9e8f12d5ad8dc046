"""Euler WebSocket messages as the real service sends them (schema v2, JSON bundles).

The fake server and the scenarios build every event with these functions, so the
daemon's decoder is tested against the same shapes the real Euler WebSocket emits:
camelCase names, 64-bit ids as strings, ``common.createTime`` in milliseconds.
"""

from __future__ import annotations

import itertools
import zlib
from dataclasses import dataclass, field
from typing import Any

_MSG_IDS = itertools.count(7_301_234_567_890_000_001)


def next_msg_id() -> str:
    """A fresh message id above 2^53, as a string (ids never pass through floats)."""
    return str(next(_MSG_IDS))


@dataclass(frozen=True, kw_only=True)
class Traits:
    """What a scenario says of a viewer (its ``users`` table), by name."""

    nickname: str = ""
    follower: bool = False
    friend: bool = False
    subscriber: bool = False
    moderator: bool = False
    gifter: bool = False
    gifter_level: int = 0
    follower_count: int = 0


@dataclass(frozen=True)
class Viewer(Traits):
    """A TikTok account in a scenario: its handle and id, then its traits by name."""

    unique_id: str
    user_id: str
    is_owner: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def user_json(self) -> dict[str, Any]:
        """The ``user`` object of a v2 message."""
        follow_status = 2 if self.friend else (1 if self.follower else 0)
        return {
            "userId": self.user_id,
            "uniqueId": self.unique_id,
            "nickname": self.nickname or self.unique_id,
            "followInfo": {
                "followingCount": 10,
                "followerCount": self.follower_count,
                "followStatus": follow_status,
            },
            "userAttr": {"isMuted": False, "isAdmin": self.moderator, "isSuperAdmin": False},
            "badges": [],
            "userHonor": {"level": self.gifter_level},
            **self.extra,
        }

    def identity_json(self) -> dict[str, Any]:
        """The ``userIdentity`` object of a v2 message."""
        return {
            "isGiftGiverOfAnchor": self.gifter,
            "isSubscriberOfAnchor": self.subscriber,
            "isMutualFollowingWithAnchor": self.friend,
            "isFollowerOfAnchor": self.follower or self.friend,
            "isModeratorOfAnchor": self.moderator,
            "isAnchor": self.is_owner,
        }


def _common(room_id: str, now_ms: int, msg_id: str | None = None) -> dict[str, Any]:
    return {"msgId": msg_id or next_msg_id(), "roomId": room_id, "createTime": str(now_ms)}


def room_info(room_id: str, owner: Viewer | None, now_ms: int) -> dict[str, Any]:
    """The first message of every connection (``owner`` None: it names no owner)."""
    data: dict[str, Any] = {"id": room_id, "roomId": room_id}
    if owner is not None:
        data |= {"ownerUserId": owner.user_id, "owner": owner.user_json()}
    data |= {"status": 2, "createTime": str(now_ms // 1000)}
    return {"type": "roomInfo", "data": data}


def chat(
    room_id: str,
    viewer: Viewer,
    text: str,
    now_ms: int,
    *,
    language: str = "en",
    msg_id: str | None = None,
) -> dict[str, Any]:
    """A comment (``WebcastChatMessage``)."""
    return {
        "type": "WebcastChatMessage",
        "data": {
            "common": _common(room_id, now_ms, msg_id),
            "comment": text,
            "contentLanguage": language,
            "emotes": [],
            "user": viewer.user_json(),
            "userIdentity": viewer.identity_json(),
        },
    }


def emote(room_id: str, viewer: Viewer, emote_id: str, now_ms: int) -> dict[str, Any]:
    """A sticker in chat (``WebcastEmoteChatMessage``)."""
    return {
        "type": "WebcastEmoteChatMessage",
        "data": {
            "common": _common(room_id, now_ms),
            "user": viewer.user_json(),
            "userIdentity": viewer.identity_json(),
            "emoteList": [{"emoteId": emote_id, "image": {"imageUrl": ""}}],
        },
    }


def gift(
    room_id: str,
    viewer: Viewer,
    name: str,
    diamonds: int,
    count: int,
    now_ms: int,
    *,
    streakable: bool = True,
    repeat_end: bool = True,
) -> dict[str, Any]:
    """A gift (``WebcastGiftMessage``); a streak counts when ``repeatEnd`` is true."""
    return {
        "type": "WebcastGiftMessage",
        "data": {
            "common": _common(room_id, now_ms),
            "giftId": zlib.crc32(name.encode()) % 10_000,
            "repeatCount": count,
            "repeatEnd": repeat_end,
            "user": viewer.user_json(),
            "userIdentity": viewer.identity_json(),
            "giftDetails": {
                "giftName": name,
                "diamondCount": diamonds,
                "giftType": 1 if streakable else 2,
            },
        },
    }


def join(room_id: str, viewer: Viewer, now_ms: int) -> dict[str, Any]:
    """A viewer joined (``WebcastMemberMessage``, action 1)."""
    return {
        "type": "WebcastMemberMessage",
        "data": {
            "common": _common(room_id, now_ms),
            "user": viewer.user_json(),
            "action": 1,
            "memberCount": 0,
        },
    }


# TikTok's MemberMessageAction numbers of a moderator's actions (schema v3).
MEMBER_ACTIONS = {
    "mute": 3,  # BAN_TALK
    "unmute": 4,  # BAN_TALK_CANCEL
    "kick": 7,  # KICKOUT
    "ban": 9,  # BAN_BY_ADMIN
    "unban": 10,  # UNBAN_BY_ADMIN
    "user_kick": 11,  # USER_KICKOUT
    "comments_on": 22,  # COMMENTS_ON
    "comments_off": 23,  # COMMENTS_OFF
    "keywords": 24,  # KEYWORDS_EDITED
}


def member_action(
    room_id: str,
    operator: Viewer,
    action: str | int,
    now_ms: int,
    *,
    target: Viewer | None = None,
) -> dict[str, Any]:
    """A moderator's action (``WebcastMemberMessage``): ``operator`` did ``action`` (a
    name of ``MEMBER_ACTIONS`` or TikTok's number) to ``target`` (None: to the room)."""
    code = MEMBER_ACTIONS[action] if isinstance(action, str) else action
    data: dict[str, Any] = {
        "common": _common(room_id, now_ms),
        "action": code,
        "memberCount": 0,
        "operator": operator.user_json(),
    }
    if target is not None:
        data["user"] = target.user_json()
    return {"type": "WebcastMemberMessage", "data": data}


def like(room_id: str, viewer: Viewer, count: int, now_ms: int) -> dict[str, Any]:
    """Likes (``WebcastLikeMessage``)."""
    return {
        "type": "WebcastLikeMessage",
        "data": {
            "common": _common(room_id, now_ms),
            "user": viewer.user_json(),
            "likeCount": count,
            "totalLikeCount": count,
        },
    }


def social(room_id: str, viewer: Viewer, kind: str, now_ms: int) -> dict[str, Any]:
    """A follow or share (``WebcastSocialMessage``, told apart by ``displayText.key``)."""
    common = _common(room_id, now_ms)
    common["displayText"] = {"key": f"pm_main_{kind}_message_viewer_2"}
    return {
        "type": "WebcastSocialMessage",
        "data": {
            "common": common,
            "user": viewer.user_json(),
            "action": 1 if kind == "follow" else 3,
            "followCount": 1 if kind == "follow" else 0,
            "shareCount": 1 if kind == "share" else 0,
        },
    }


def question(room_id: str, viewer: Viewer, text: str, now_ms: int) -> dict[str, Any]:
    """A Q&A question (``WebcastQuestionNewMessage``)."""
    return {
        "type": "WebcastQuestionNewMessage",
        "data": {
            "common": _common(room_id, now_ms),
            "details": {"content": text, "user": viewer.user_json()},
        },
    }


def viewers(room_id: str, count: int, now_ms: int) -> dict[str, Any]:
    """The viewer count (``WebcastRoomUserSeqMessage``)."""
    return {
        "type": "WebcastRoomUserSeqMessage",
        "data": {"common": _common(room_id, now_ms), "viewerCount": count, "totalUser": count},
    }


def stream_end(room_id: str, now_ms: int, *, action: int = 3) -> dict[str, Any]:
    """The stream ended (3) or was suspended (4) (``WebcastControlMessage``)."""
    return {
        "type": "WebcastControlMessage",
        "data": {"common": _common(room_id, now_ms), "action": action},
    }


def bundle(messages: list[dict[str, Any]], now_ms: int) -> dict[str, Any]:
    """A text frame: ``{"timestamp", "messages": [{"type", "data"}]}``."""
    return {"timestamp": now_ms, "messages": messages}
