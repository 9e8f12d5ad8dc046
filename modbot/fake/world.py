"""The fake service's world: TikTok accounts, who streams in which room, and who is muted.

Plain state with no server in it: the REST handlers (``modbot.fake.api``) read and change
it, the WebSocket (``modbot.fake.ws``) looks streamers up in it, and tests and scenarios
drive it through ``FakeEuler`` (go live, go offline, add a streamer).
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field

from modbot.clock import Clock
from modbot.fake.messages import Viewer


@dataclass
class FakeStreamer:
    """A streamer's account and room, with TikTok's moderation state."""

    owner: Viewer
    room_id: str
    is_live: bool = False
    comments_enabled: bool = True
    mutes: dict[str, float | None] = field(default_factory=dict)  # user id -> until (epoch)
    bans: set[str] = field(default_factory=set)
    moderators: set[str] = field(default_factory=set)
    chat: list[str] = field(default_factory=list)
    # TikTok's keyword filter of the account: word id -> word
    sensitive_words: dict[str, str] = field(default_factory=dict)
    # Rooms of earlier streams: moderation (bans, mutes) belongs to the account, so a
    # call naming an earlier room still reaches this streamer (an undo the next day).
    past_rooms: set[str] = field(default_factory=set)
    room_info_owner: bool = True  # False: roomInfo names no owner (its shape is not documented)

    @property
    def unique_id(self) -> str:
        return self.owner.unique_id

    @property
    def user_id(self) -> str:
        return self.owner.user_id

    @property
    def sec_uid(self) -> str:
        """The account's ``secUid`` (what the sensitive-words routes call ``sec_anchor_id``)."""
        return "MS4wLjABAAAA" + self.owner.user_id

    def muted(self, user_id: str, now: float) -> bool:
        """Whether the user is muted at ``now``."""
        if user_id not in self.mutes:
            return False
        until = self.mutes[user_id]
        return until is None or until > now


class World:
    """The streamers by handle, the clock they live by, and who logs in on the authorize page."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.streamers: dict[str, FakeStreamer] = {}
        self.account: str | None = None  # who logs in on the authorize page
        self._next_user_id = 6_812_345_678_901_234_567
        self._next_word_id = 7_100_000_000_000_000_000
        # How TikTok's lists come: rows per page, and a hostile API that says has_more forever.
        self.list_page_size = 50
        self.endless_pages = False
        # Names the lists show for a user id (handle, nickname); others get made-up ones.
        self.names: dict[str, tuple[str, str]] = {}

    def now(self) -> float:
        """The fake's clock, in epoch seconds."""
        return self.clock.now().timestamp()

    def now_ms(self) -> int:
        return int(self.now() * 1000)

    def new_user_id(self) -> str:
        """A fresh numeric user id above 2^53."""
        self._next_user_id += 7919
        return str(self._next_user_id)

    def new_word_id(self) -> str:
        """A fresh keyword-filter word id."""
        self._next_word_id += 101
        return str(self._next_word_id)

    def new_room_id(self) -> str:
        return str(
            7_301_234_567_890_123_456 + len(self.streamers) * 1_000_003 + secrets.randbelow(997)
        )

    def add_streamer(
        self,
        unique_id: str,
        *,
        user_id: str | None = None,
        room_id: str | None = None,
        live: bool = False,
        nickname: str = "",
    ) -> FakeStreamer:
        """Create a streamer (offline unless ``live``); the first one is who logs in."""
        owner = Viewer(
            unique_id=unique_id,
            user_id=user_id or self.new_user_id(),
            nickname=nickname or unique_id,
            is_owner=True,
        )
        streamer = FakeStreamer(owner=owner, room_id=room_id or self.new_room_id(), is_live=live)
        self.streamers[unique_id.lower()] = streamer
        if self.account is None:
            self.account = unique_id
        return streamer

    def streamer(self, unique_id: str) -> FakeStreamer:
        """The streamer with this handle (KeyError if unknown)."""
        return self.streamers[unique_id.lower().removeprefix("@")]

    def find(self, unique_id: str) -> FakeStreamer | None:
        """The streamer with this handle (as the client sends it), or None."""
        return self.streamers.get(unique_id.lower())

    def by_room(self, room_id: str) -> FakeStreamer | None:
        """The streamer whose current or an earlier room this is."""
        return next(
            (s for s in self.streamers.values() if room_id in (s.room_id, *s.past_rooms)), None
        )

    def by_user_id(self, user_id: str) -> FakeStreamer | None:
        """The streamer with this numeric user id."""
        return next((s for s in self.streamers.values() if s.user_id == user_id), None)

    def go_live(self, unique_id: str, *, new_room: bool = True) -> FakeStreamer:
        """The streamer starts a stream (in a new room, as TikTok does)."""
        streamer = self.streamer(unique_id)
        if not streamer.is_live:
            if new_room:
                streamer.past_rooms.add(streamer.room_id)
                streamer.room_id = self.new_room_id()
            streamer.is_live = True
            streamer.comments_enabled = True
        return streamer


def moderation_state(world: World, streamer: FakeStreamer) -> dict[str, object]:
    """What TikTok keeps of ``streamer``'s moderation between lives, as plain JSON: who is
    muted (until when) and banned, the moderators, the keyword filter, comments on/off."""
    return {
        "comments_enabled": streamer.comments_enabled,
        "mutes": dict(streamer.mutes),
        "bans": sorted(streamer.bans),
        "moderators": sorted(streamer.moderators),
        "sensitive_words": dict(streamer.sensitive_words),
        "names": {uid: list(pair) for uid, pair in world.names.items()},
        "next_word_id": world._next_word_id,  # noqa: SLF001
    }


def restore_moderation(world: World, streamer: FakeStreamer, data: object) -> None:
    """Put back what :func:`moderation_state` wrote. Hostile data raises ValueError and
    changes nothing (every field is checked before any is set)."""
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    comments = data.get("comments_enabled", True)
    mutes = data.get("mutes", {})
    bans = data.get("bans", [])
    moderators = data.get("moderators", [])
    words = data.get("sensitive_words", {})
    names = data.get("names", {})
    next_word = data.get("next_word_id", world._next_word_id)  # noqa: SLF001
    if not isinstance(comments, bool):
        raise ValueError("comments_enabled is not true/false")
    if not isinstance(mutes, dict) or not all(
        isinstance(k, str) and (v is None or (isinstance(v, int | float) and math.isfinite(v)))
        for k, v in mutes.items()
    ):
        raise ValueError("mutes is not {user id: until or null}")
    for label, ids in (("bans", bans), ("moderators", moderators)):
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ValueError(f"{label} is not a list of user ids")
    if not isinstance(words, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in words.items()
    ):
        raise ValueError("sensitive_words is not {word id: word}")
    if not isinstance(names, dict) or not all(
        isinstance(k, str)
        and isinstance(v, list)
        and len(v) == 2
        and all(isinstance(x, str) for x in v)
        for k, v in names.items()
    ):
        raise ValueError("names is not {user id: [handle, nickname]}")
    if not isinstance(next_word, int) or isinstance(next_word, bool):
        raise ValueError("next_word_id is not a number")
    streamer.comments_enabled = comments
    streamer.mutes = {k: None if v is None else float(v) for k, v in mutes.items()}
    streamer.bans = set(bans)
    streamer.moderators = set(moderators)
    streamer.sensitive_words = dict(words)
    world.names.update({k: (v[0], v[1]) for k, v in names.items()})
    world._next_word_id = max(world._next_word_id, next_word)  # noqa: SLF001
