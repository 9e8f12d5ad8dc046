"""Bans that outlive the live: whom to ban again, where, linked to which ban (pure).

A TikTok LIVE ban belongs to one room and every live is a new room. ``BanMemory`` holds
the ban list (``modbot.audit.bans``: every ban modbot made and did not lift) as a map
from user id to the bans remembered for them, and answers, for each event, whether its
viewer must be banned again in this room: they appear (a join, a comment, a gift ...)
in a room other than the one the ban was made in, of a streamer the ban applies to
(its own, or every configured streamer for ``everywhere``). The check is one dict
lookup for a viewer nobody banned, which is nearly every event.

At most one ban per viewer per room: the first appearance is answered, the others are
not, however many joins a flood sends; a call that failed may be made again after
``RETRY_AFTER`` seconds (the time is passed in). A viewer who is now the streamer or
one of their moderators is spared (a human made them one). A moderator's unban seen on
the WebSocket drops the viewer at once (:meth:`BanMemory.forget`), before the
database's own record of it comes back through :meth:`BanMemory.apply`.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from modbot.events import Event

if TYPE_CHECKING:
    from modbot.audit.bans import BanRecord

# Event kinds in which a viewer appears in the room.
APPEARS = frozenset({"comment", "emote", "gift", "join", "like", "follow", "share", "question"})
RETRY_AFTER = 60.0  # seconds before a failed ban in a room is tried again
MAX_ROOMS = 1_000  # rooms whose carried bans are kept (the oldest are forgotten)


@dataclass(frozen=True)
class Carry:
    """A remembered ban to carry into the event's room."""

    original: int  # the audit id of the ban remembered
    user_id: str
    unique_id: str
    streamer: str
    room_id: str
    msg_id: str
    everywhere: bool
    made_on: str  # the streamer the original ban was made on

    def detail(self) -> str:
        where = "every streamer" if self.everywhere else f"@{self.made_on}"
        return f"banned in an earlier live (#{self.original}, for {where}): banned again here"


def applies(ban: BanRecord, streamer: str) -> bool:
    """Whether a remembered ban applies to ``streamer``'s rooms."""
    return ban.everywhere or ban.streamer.lower() == streamer.lower()


class BanMemory:
    """The remembered bans by viewer, and the rooms each was carried into."""

    def __init__(self) -> None:
        self._bans: dict[str, dict[int, BanRecord]] = {}  # user id -> ban id -> ban
        # room -> user id -> None (carried, or in flight) or when a retry is allowed
        self._carried: OrderedDict[str, dict[str, float | None]] = OrderedDict()
        self.counts: Counter[str] = Counter()

    def __len__(self) -> int:
        return sum(len(b) for b in self._bans.values())

    def users(self, streamer: str) -> set[str]:
        """The viewers remembered for ``streamer``."""
        return {
            u for u, bans in self._bans.items() if any(applies(b, streamer) for b in bans.values())
        }

    # --- kept in step with the database ------------------------------------------------

    def load(self, bans: Iterable[BanRecord], carried: Iterable[tuple[str, str]] = ()) -> None:
        """The list at start, and the (room, user) pairs a ban was already carried into."""
        for ban in bans:
            self.apply(ban)
        for room, user in carried:
            self._room(room)[user] = None

    def apply(self, ban: BanRecord) -> None:
        """A row of the list was added (remembered) or ended."""
        if ban.remembered:
            self._bans.setdefault(ban.user_id, {})[ban.action_id] = ban
            return
        bans = self._bans.get(ban.user_id)
        if bans is not None:
            bans.pop(ban.action_id, None)
            if not bans:
                del self._bans[ban.user_id]

    def forget(self, user_id: str, streamer: str) -> int:
        """A moderator let the viewer back in on ``streamer``: every ban of theirs that
        applies there is forgotten now; how many."""
        bans = self._bans.get(user_id)
        if not bans:
            return 0
        gone = [i for i, b in bans.items() if applies(b, streamer)]
        for i in gone:
            del bans[i]
        if not bans:
            del self._bans[user_id]
        return len(gone)

    # --- the check on each event -------------------------------------------------------

    def check(self, event: Event, now: float) -> Carry | None:
        """The ban to carry into this event's room, if its viewer must be banned here
        (once: the same viewer in the same room is not answered again)."""
        user = event.user
        if user is None:
            return None
        bans = self._bans.get(user.user_id)
        if not bans or event.kind not in APPEARS or not event.room_id:
            return None
        room, origin = event.room_id, None
        for ban in bans.values():
            if not applies(ban, event.streamer):
                continue
            if ban.room_id == room:
                return None  # banned in this very room already
            if origin is None or ban.action_id < origin.action_id:
                origin = ban
        if origin is None:
            return None
        carried = self._room(room)
        if user.user_id in carried:
            retry = carried[user.user_id]
            if retry is None or now < retry:
                self.counts["again in the room"] += 1
                return None
        if user.is_owner or user.is_moderator:
            self.counts["spared: now the streamer or a moderator"] += 1
            return None
        carried[user.user_id] = None
        self.counts["carried"] += 1
        return Carry(
            original=origin.action_id,
            user_id=user.user_id,
            unique_id=user.unique_id or origin.unique_id,
            streamer=event.streamer,
            room_id=room,
            msg_id=event.msg_id,
            everywhere=origin.everywhere,
            made_on=origin.streamer,
        )

    def done(self, carry: Carry, *, ok: bool, now: float) -> None:
        """What became of a carried ban: a failed one may be tried after ``RETRY_AFTER``."""
        carried = self._room(carry.room_id)
        if ok:
            carried[carry.user_id] = None
        else:
            carried[carry.user_id] = now + RETRY_AFTER

    def _room(self, room: str) -> dict[str, float | None]:
        carried = self._carried.get(room)
        if carried is None:
            carried = self._carried[room] = {}
            while len(self._carried) > MAX_ROOMS:
                self._carried.popitem(last=False)
        else:
            self._carried.move_to_end(room)
        return carried
