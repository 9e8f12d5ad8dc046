"""The engine's memory: windows, copy-paste clusters, strikes, cooldowns (pure, bounded).

Every method takes ``now`` (epoch seconds from the injected clock). Memory stays flat on
a stream with millions of viewers: per-user entries live in LRU maps with a cap, and
``sweep()`` drops every entry whose window has passed, so a viewer who stopped
writing costs nothing after the longest window of the rules.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from itertools import islice
from typing import Generic, TypeVar

from rapidfuzz.distance import Indel
from rapidfuzz.process import extract as _extract

K = TypeVar("K")
V = TypeVar("V")

NEW_USER_WINDOW = 60.0
ROOM_RATE_WINDOW = 10.0
SWEEP_EVERY = 0.5  # often: a sweep costs what it drops, so small sweeps never stall
# The copy-paste check (Clusters): a new text is compared with at most FUZZY_CANDIDATES
# recent live ones, found among at most FUZZY_SCAN recent entries, on its first
# KEY_CHARS normalised characters, by _SIMILARITY: 2 * LCS / (len(a) + len(b)), the
# normalised Indel similarity (rapidfuzz, bit-parallel in C++; never below difflib's
# ratio, whose matching blocks are a common subsequence).
FUZZY_CANDIDATES = 24
FUZZY_SCAN = 2 * FUZZY_CANDIDATES
KEY_CHARS = 256
_SIMILARITY = Indel.normalized_similarity
# rapidfuzz turns a similarity cutoff into a distance one in floating point, and a pair
# exactly at the threshold can fall short ("aa", "aaa" at 0.8: 4/5, refused). So its
# cutoff is a little lower, and the score it returns (1 - distance / total, which
# compares with the threshold as 2M/T does) decides.
_CUTOFF_SLACK = 1e-4


class Lru(Generic[K, V]):
    """A dict that forgets its least recently used entries beyond ``cap``."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self.data.get(key)
        if value is not None:
            self.data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self.data[key] = value
        self.data.move_to_end(key)
        while len(self.data) > self.cap:
            self.data.popitem(last=False)

    def pop(self, key: K) -> None:
        self.data.pop(key, None)

    def expire(self, stale: Callable[[V], bool]) -> None:
        """Drop the least recently used entries while they are stale.

        Entries are in order of last use, which is the order of their last activity:
        the sweep stops at the first live one, so it costs what it drops, not what is
        kept. (An entry left behind a live one by out-of-order event times goes at a
        later sweep; every reader prunes what it reads, so this is memory only.)
        """
        data = self.data
        while data:
            key = next(iter(data))
            if not stale(data[key]):
                return
            del data[key]

    def __len__(self) -> int:
        return len(self.data)


def _expired(times: Sequence[float], cutoff: float) -> int:
    """How many of ``times`` (oldest first) lead at or before ``cutoff``."""
    drop = 0
    count = len(times)
    while drop < count and times[drop] <= cutoff:
        drop += 1
    return drop


def _prune(times: list[float], cutoff: float) -> None:
    del times[: _expired(times, cutoff)]


# Per-user windows and the times of copy-paste clusters are plain tuples, replaced
# rather than changed: the garbage collector stops tracking a tuple that holds only
# untracked values (floats, ints, strings, untracked tuples), and a busy stream keeps a
# hundred thousand of them, which every full collection walked one by one when they
# were lists and objects (pauses of 100 ms and more under load, every few seconds).
# (A cluster with links stays tracked: a tuple that holds a dict or a set always is.)
Times = tuple[float, ...]


def _live(times: Times, cutoff: float) -> Times:
    """``times`` (oldest first) without its leading entries at or before ``cutoff``."""
    drop = _expired(times, cutoff)
    return times[drop:] if drop else times


def _record(times: Times, now: float, cutoff: float, keep: int | None = None) -> Times:
    """``times`` pruned to ``cutoff``, with ``now`` added, at most the ``keep`` last."""
    times = (*_live(times, cutoff), now)
    return times[-keep:] if keep is not None and len(times) > keep else times


def _stale(times: Times, cutoff: float) -> bool:
    return not times or times[-1] <= cutoff


# A copy-paste cluster: (times, similar), see Clusters. ``similar`` holds the keys of
# the linked clusters, oldest link first (a dict without values: an ordered set), at
# most LINKS of them. It is the cluster's own, changed in place: a raid links each copy
# to the last few and each of those back to it, and a frozenset made anew for each
# link (copied, the old one freed) was a fifth of what a copy cost to count.
_Cluster = tuple[Times, dict[str, None] | None]
# The links a cluster keeps, the most recent: a text repeated word for word among
# mutated copies is linked back by nearly every copy (4,095 links after 20,000 such
# comments), and counting them all made that raid cost 114 us a comment on average
# (compiled; 3.3 us with the cap). As many as a new text is compared with: a text never
# counts more near copies than it could find.
LINKS = FUZZY_CANDIDATES


class Clusters:
    """Recent texts of one user or room, grouped by their normalised form.

    Each cluster is a tuple ``(times, similar)``: its last times (at most the rule's
    count) and the keys of the near-identical clusters it is linked to (None for most;
    at most ``LINKS``, the most recent). A text is known by its first ``KEY_CHARS``
    characters, so what a new one costs is bounded whatever its length and however
    often it comes back: at most ``FUZZY_CANDIDATES`` comparisons of at most
    ``KEY_CHARS`` characters each, and at most ``LINKS`` linked clusters counted.
    """

    def __init__(self, cap: int) -> None:
        self.clusters: Lru[str, _Cluster] = Lru(cap)
        self.comparisons = 0  # pairs of texts compared so far (tests and bench read it)

    def add(self, key: str, now: float, within: float, similarity: float, keep: int) -> int:
        """Record a text; return how many near-identical texts are in the window,
        counted up to ``keep`` (as ``rate`` counts).

        Each cluster keeps its ``keep`` last times, so the total reaches ``keep``
        exactly when the uncapped one would; the linked clusters are counted newest
        first, and no further once it does (a raid's repeated copies reach it at once).
        """
        key = key[:KEY_CHARS]
        cutoff = now - within
        data = self.clusters.data
        cluster = data.get(key)
        if cluster is None:
            similar = self._link(key, similarity, cutoff, keep - 1) if similarity < 1.0 else None
            cluster = ((), similar)
        times, similar = cluster
        times = _record(times, now, cutoff, keep)
        total = len(times)
        if similar and total < keep:
            gone: list[str] = []
            for other_key in reversed(similar):
                other = data.get(other_key)
                if other is None:
                    gone.append(other_key)
                    continue
                total += len(_live(other[0], cutoff))
                if total >= keep:
                    break
            for other_key in gone:
                del similar[other_key]
            if not similar:
                similar = None
        self.clusters.put(key, (times, similar))
        return min(total, keep)

    def _link(
        self, key: str, similarity: float, cutoff: float, wanted: int
    ) -> dict[str, None] | None:
        """The keys of the recent near-identical clusters, each linked back to ``key``.

        The ``FUZZY_CANDIDATES`` most recent live texts are the candidates. The
        ``wanted`` most recent are compared first, the others only if those did not
        hold ``wanted`` texts between them: a raid reaches the rule's count in the first
        batch, so it costs no more than ordinary chat, which compares them all.
        """
        if wanted <= 0:
            return None  # a count of one: this text alone reaches it
        data = self.clusters.data
        recent = islice(reversed(data), FUZZY_SCAN)
        linked: list[str] = []
        found = 0
        room = min(FUZZY_CANDIDATES, wanted)
        left = FUZZY_CANDIDATES
        while left > 0 and found < wanted:
            batch: list[str] = []
            for other_key in recent:
                times = data[other_key][0]
                if times and times[-1] > cutoff:  # live (as _stale says, inline)
                    batch.append(other_key)
                    if len(batch) >= room:
                        break
            if not batch:
                break
            left -= len(batch)
            room = left
            self.comparisons += len(batch)
            matches = _extract(
                key, batch, scorer=_SIMILARITY, score_cutoff=similarity - _CUTOFF_SLACK, limit=None
            )
            if not matches:
                continue  # most texts: nothing near
            # Where in the batch, most recent first (extract answers by score).
            for index in sorted(i for _key, score, i in matches if score >= similarity):
                other_key = batch[index]
                linked.append(other_key)
                found += len(_live(data[other_key][0], cutoff))
        if not linked:
            return None
        self._link_back(linked, key)  # after the scan: the table does not change under it
        return dict.fromkeys(reversed(linked[:LINKS]))  # the oldest link first

    def _link_back(self, linked: list[str], key: str) -> None:
        """Link each of the ``linked`` clusters to ``key``, its oldest link dropped when
        it has ``LINKS``."""
        data = self.clusters.data
        for other_key in linked:
            times, similar = data[other_key]
            if similar is None:
                data[other_key] = times, {key: None}
            else:
                similar.pop(key, None)  # a text that came back is the newest link again
                similar[key] = None
                if len(similar) > LINKS:
                    del similar[next(iter(similar))]

    def sweep(self, cutoff: float) -> None:
        self.clusters.expire(lambda c: _stale(c[0], cutoff))

    def __len__(self) -> int:
        return len(self.clusters)


def _expire_times(table: Lru[str, Times], cutoff: float) -> None:
    table.expire(lambda times: _stale(times, cutoff))


class EngineState:
    """All state of the rules of one engine (one process may watch many streams)."""

    def __init__(self, *, max_keys: int = 500_000, max_clusters: int = 4096) -> None:
        self.max_keys = max_keys
        self.max_clusters = max_clusters
        self.windows: dict[str, Lru[str, Times]] = {}
        self.window_spans: dict[str, float] = {}
        self.repeats: dict[str, Lru[str, Clusters]] = {}
        self.strikes: dict[str, Lru[str, Times]] = {}
        self.strike_spans: dict[str, float] = {}
        self.cooldowns: dict[str, Lru[str, float]] = {}
        self.first_seen: Lru[tuple[str, str], float] = Lru(max_keys)
        self.rooms: dict[str, list[float]] = {}
        self._now = 0.0
        self._last_sweep = 0.0

    # --- rate ------------------------------------------------------------------------

    def rate(self, rule_id: str, key: str, now: float, within: float, count: int) -> int:
        """Record an event for ``(rule, key)``; how many are in the last ``within`` s."""
        table = self.windows.get(rule_id)
        if table is None:
            table = self.windows[rule_id] = Lru(self.max_keys)
        self.window_spans[rule_id] = within
        times = _record(table.data.get(key, ()), now, now - within, count)
        table.put(key, times)
        return len(times)

    # --- repeat ----------------------------------------------------------------------

    def repeat(
        self,
        rule_id: str,
        key: str,
        text_key: str,
        now: float,
        within: float,
        similarity: float,
        count: int,
    ) -> int:
        """Record a text for ``(rule, key)``; how many near-identical ones are in the
        window (at most ``count`` per cluster, like ``rate``)."""
        table = self.repeats.get(rule_id)
        if table is None:
            table = self.repeats[rule_id] = Lru(self.max_keys)
        self.window_spans[rule_id] = within
        clusters = table.get(key)
        if clusters is None:
            clusters = Clusters(self.max_clusters)
            table.put(key, clusters)
        return clusters.add(text_key, now, within, similarity, count)

    # --- strikes and cooldowns -------------------------------------------------------

    def strike(self, rule_id: str, user: str, now: float, window: float) -> int:
        """Add a strike; return how many are within ``window`` (this one included)."""
        table = self.strikes.get(rule_id)
        if table is None:
            table = self.strikes[rule_id] = Lru(self.max_keys)
        self.strike_spans[rule_id] = window
        times = _record(table.data.get(user, ()), now, now - window)
        table.put(user, times)
        return len(times)

    def in_cooldown(self, rule_id: str, key: str, now: float) -> bool:
        table = self.cooldowns.get(rule_id)
        until = table.get(key) if table else None
        return until is not None and until > now

    def start_cooldown(self, rule_id: str, key: str, until: float) -> None:
        table = self.cooldowns.get(rule_id)
        if table is None:
            table = self.cooldowns[rule_id] = Lru(self.max_keys)
        table.put(key, until)

    # --- stream facts ----------------------------------------------------------------

    def see(self, streamer: str, user_id: str, now: float) -> None:
        """Note a user's event (for ``user.is_new``)."""
        self._now = now
        key = (streamer, user_id)
        if self.first_seen.get(key) is None:
            self.first_seen.put(key, now)

    def is_new(self, streamer: str, user_id: str) -> bool:
        first = self.first_seen.get((streamer, user_id))
        return first is not None and self._now - first <= NEW_USER_WINDOW

    def comment(self, room: str, now: float) -> None:
        """Count a comment in a room (for ``room.comment_rate``)."""
        times = self.rooms.setdefault(room, [])
        if len(times) > 20_000:
            _prune(times, now - ROOM_RATE_WINDOW)
        times.append(now)

    def comment_rate(self, room: str, now: float) -> float:
        times = self.rooms.get(room)
        if not times:
            return 0.0
        _prune(times, now - ROOM_RATE_WINDOW)
        return len(times) / ROOM_RATE_WINDOW

    # --- housekeeping ----------------------------------------------------------------

    def maybe_sweep(self, now: float) -> None:
        """Sweep at most every few seconds of event time."""
        if now - self._last_sweep >= SWEEP_EVERY:
            self.sweep(now)

    def sweep(self, now: float) -> None:
        """Forget everything whose window has passed."""
        self._last_sweep = now
        for rule_id, table in self.windows.items():
            _expire_times(table, now - self.window_spans.get(rule_id, 0.0))
        for rule_id, repeat_table in self.repeats.items():
            cutoff = now - self.window_spans.get(rule_id, 0.0)
            for key, clusters in list(repeat_table.data.items()):
                clusters.sweep(cutoff)
                if not len(clusters):
                    repeat_table.pop(key)
        for rule_id, table in self.strikes.items():
            _expire_times(table, now - self.strike_spans.get(rule_id, 0.0))
        for cooldown_table in self.cooldowns.values():
            cooldown_table.expire(lambda until: until <= now)
        # The seen map must remember a user beyond 60 s (or they would look new again),
        # so it is bounded by its LRU cap instead of by time.
        for room, times in list(self.rooms.items()):
            _prune(times, now - ROOM_RATE_WINDOW)
            if not times:
                del self.rooms[room]

    def forget_rules(self, keep: set[str]) -> None:
        """Drop the state of rules that no longer exist (after a reload)."""
        for table in (self.windows, self.repeats, self.strikes, self.cooldowns):
            for rule_id in [r for r in table if r not in keep]:
                del table[rule_id]

    def entries(self) -> int:
        """How many per-user or per-room entries are held (for statistics and bench)."""
        total = len(self.first_seen) + len(self.rooms)
        total += sum(len(t) for t in self.windows.values())
        total += sum(len(t) for t in self.repeats.values())
        total += sum(len(t) for t in self.strikes.values())
        total += sum(len(t) for t in self.cooldowns.values())
        return total
