"""The daemon's memory of recent comments, per room, for nukes and raid sweeps (pure).

``modbot nuke`` looks back through a room's last comments (``--since``), and a
``repeat`` rule's sweep finds a raid's copies among them. The memory is bounded three
ways, whatever the stream sends:

- per room, the last ``MAX_COMMENTS`` (20,000) comments and ``MAX_CHARS`` (2,000,000)
  characters of their texts, each text kept to its first ``TEXT_KEPT`` (500)
  characters, and nothing older than ``MAX_AGE`` (15 minutes of event time);
- in all rooms together, ``TOTAL_COMMENTS`` (100,000) comments and ``TOTAL_CHARS``
  (10,000,000) characters: past them, a room holding more than its fair share (the
  total over the rooms) gives up its oldest comment, else the least recently active
  room does;
- at most ``MAX_ROOMS`` (256) rooms, the one without a comment for longest forgotten
  first.

At 30 comments a second a room's last ten minutes are 18,000 comments: they fit, five
such rooms fit together, and a quiet room keeps its quarter of an hour. Full, the
memory holds about 50 MB (a comment of 100 characters costs about 500 bytes, measured
by ``bench/sweeps.py``). A comment is a tuple of plain values (strings, a float, an
int; no event object is kept), which the garbage collector stops tracking.
Noting a comment costs an append and what it pushes out; nothing here reads a clock:
times are the events' own.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from modbot.events import Event, User

MAX_COMMENTS = 20_000
MAX_CHARS = 2_000_000
TEXT_KEPT = 500
MAX_AGE = 15 * 60.0
TOTAL_COMMENTS = 100_000
TOTAL_CHARS = 10_000_000
MAX_ROOMS = 256

# The viewer's roles, as bits of Said.roles.
OWNER, MODERATOR, SUBSCRIBER, FOLLOWER, FRIEND = 1, 2, 4, 8, 16
ROLE_BITS = {
    "owner": OWNER,
    "moderator": MODERATOR,
    "subscriber": SUBSCRIBER,
    "follower": FOLLOWER,
    "friend": FRIEND,
}


class Said(NamedTuple):
    """One comment as remembered: when (epoch seconds), which message, who, what."""

    t: float
    msg_id: str
    user_id: str
    unique_id: str
    text: str
    roles: int  # OWNER | MODERATOR | ... bits

    def has(self, role: str) -> bool:
        return bool(self.roles & ROLE_BITS.get(role, 0))


def roles_of(user: User) -> int:
    return (
        (OWNER if user.is_owner else 0)
        | (MODERATOR if user.is_moderator else 0)
        | (SUBSCRIBER if user.is_subscriber else 0)
        | (FOLLOWER if user.is_follower else 0)
        | (FRIEND if user.is_friend else 0)
    )


def said_of(event: Event) -> Said | None:
    """The comment an event is, as remembered (None: not a comment with a viewer)."""
    user = event.user
    if event.kind != "comment" or user is None:
        return None
    return Said(
        event.ts.timestamp(),
        event.msg_id,
        user.user_id,
        user.unique_id,
        event.text[:TEXT_KEPT],
        roles_of(user),
    )


@dataclass
class _Room:
    streamer: str
    comments: deque[Said] = field(default_factory=deque)
    chars: int = 0


class RecentStatistics(NamedTuple):
    rooms: int
    comments: int
    chars: int
    forgotten_rooms: int  # rooms dropped for the room bound


class RecentComments:
    """The last comments of each room (see the module docstring for the bounds)."""

    def __init__(
        self,
        *,
        max_comments: int = MAX_COMMENTS,
        max_chars: int = MAX_CHARS,
        max_age: float = MAX_AGE,
        max_rooms: int = MAX_ROOMS,
        total_comments: int = TOTAL_COMMENTS,
        total_chars: int = TOTAL_CHARS,
    ) -> None:
        self.max_comments = max_comments
        self.max_chars = max_chars
        self.max_age = max_age
        self.max_rooms = max_rooms
        self.total_comments = total_comments
        self.total_chars = total_chars
        self._rooms: OrderedDict[str, _Room] = OrderedDict()
        self._forgotten = 0
        self._comments = 0  # in all rooms
        self._chars = 0

    @staticmethod
    def room_of(event: Event) -> str:
        """The room key, as the engine's: the room id, or the streamer before it is known."""
        return event.room_id or event.streamer

    def note(self, event: Event) -> Said | None:
        """Remember a comment (other events are ignored); the comment as remembered."""
        said = said_of(event)
        if said is None:
            return None
        key = self.room_of(event)
        rooms = self._rooms
        room = rooms.get(key)
        if room is None:
            room = rooms[key] = _Room(event.streamer)
            while len(rooms) > self.max_rooms:
                self._drop_room(next(iter(rooms)))
        else:
            rooms.move_to_end(key)
        comments = room.comments
        comments.append(said)
        size = len(said.text)
        room.chars += size
        self._comments += 1
        self._chars += size
        cutoff = said.t - self.max_age
        while comments and (
            len(comments) > self.max_comments
            or room.chars > self.max_chars
            or comments[0].t <= cutoff
        ):
            self._pop(room)
        while self._comments > self.total_comments or self._chars > self.total_chars:
            fair = self.total_comments // len(rooms)
            if len(comments) > fair or room.chars > self.total_chars // len(rooms):
                self._pop(room)
                continue
            oldest = next(iter(rooms))
            if not rooms[oldest].comments:  # cannot be (every room holds one): never spin
                self._drop_room(oldest)
                continue
            self._pop(rooms[oldest])
            if not rooms[oldest].comments:
                self._drop_room(oldest)
        return said

    def _pop(self, room: _Room) -> None:
        size = len(room.comments.popleft().text)
        room.chars -= size
        self._comments -= 1
        self._chars -= size

    def _drop_room(self, key: str) -> None:
        room = self._rooms.pop(key)
        self._comments -= len(room.comments)
        self._chars -= room.chars
        self._forgotten += 1

    def rooms_of(self, streamer: str) -> list[str]:
        """The rooms of ``streamer`` that are remembered, the most recently active last."""
        folded = streamer.casefold()
        return [k for k, r in self._rooms.items() if r.streamer.casefold() == folded]

    def streamer_of(self, room: str) -> str | None:
        found = self._rooms.get(room)
        return None if found is None else found.streamer

    def since(self, room: str, cutoff: float) -> Iterator[Said]:
        """The comments of ``room`` after ``cutoff`` (epoch seconds), the newest first."""
        found = self._rooms.get(room)
        if found is None:
            return
        for said in reversed(found.comments):
            if said.t <= cutoff:
                return
            yield said

    def statistics(self) -> RecentStatistics:
        rooms = self._rooms.values()
        return RecentStatistics(
            len(self._rooms),
            sum(len(r.comments) for r in rooms),
            sum(r.chars for r in rooms),
            self._forgotten,
        )
