"""The engine's memory: windows, copy-paste clusters, strikes, cooldowns (pure, bounded).

Every method takes ``now`` (epoch seconds from the injected clock). Memory stays flat on
a stream with millions of viewers: per-user entries live in LRU maps with a cap, and
``sweep()`` drops every entry whose window has passed, so a viewer who stopped
writing costs nothing after the longest window of the rules.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from difflib import SequenceMatcher
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

NEW_USER_WINDOW = 60.0
ROOM_RATE_WINDOW = 10.0
SWEEP_EVERY = 0.5  # often: a sweep costs what it drops, so small sweeps never stall
FUZZY_CANDIDATES = 24


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


# Per-user windows and copy-paste clusters are plain tuples, replaced rather than
# changed: the garbage collector stops tracking a tuple that holds only untracked values
# (floats, ints, strings, untracked tuples), and a busy stream keeps a hundred
# thousand of them, which every full collection walked one by one when they were lists
# and objects (pauses of 100 ms and more under load, every few seconds).
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


# A copy-paste cluster: (times, unary, similar), see Clusters.
_Cluster = tuple[Times, int, frozenset[str] | None]


class Clusters:
    """Recent texts of one user or room, grouped by their normalised form.

    Each cluster is a tuple ``(times, unary, similar)``: its last times (at most the
    rule's count), the text's letter counts in unary (see ``_unary``), and the keys of
    the near-identical clusters it is linked to (None for most).
    """

    def __init__(self, cap: int) -> None:
        self.clusters: Lru[str, _Cluster] = Lru(cap)

    def add(self, key: str, now: float, within: float, similarity: float, keep: int) -> int:
        """Record a text; return how many near-identical texts are in the window.

        Each cluster keeps its ``keep`` last times, so the total reaches ``keep``
        exactly when the uncapped one would.
        """
        cutoff = now - within
        data = self.clusters.data
        cluster = data.get(key)
        if cluster is None:
            cluster = self._link(key, similarity, cutoff) if similarity < 1.0 else ((), -1, None)
        times, unary, similar = cluster
        times = _record(times, now, cutoff, keep)
        total = len(times)
        if similar:
            linked = [k for k in similar if k in data]
            for other_key in linked:
                total += len(_live(data[other_key][0], cutoff))
            if len(linked) < len(similar):
                similar = frozenset(linked) or None
        self.clusters.put(key, (times, unary, similar))
        return total

    def _link(self, key: str, similarity: float, cutoff: float) -> _Cluster:
        """A new cluster for ``key``, linked to the recent near-identical ones.

        Up to ``FUZZY_CANDIDATES`` recent texts are compared, each ruled out as cheaply
        as it can be: by length, then by the letters the two could share at most
        (unary counts: one AND and a popcount; exact unless both have characters
        outside the buckets, and then by counting those letters), and only then by
        difflib.
        """
        data = self.clusters.data
        length = len(key)
        slack = 1.0 - similarity
        # Made for every new text (the first candidate of the right length needs it
        # anyway), so every cluster of the table has its own. One made before a reload
        # lowered the similarity has -1: all bits set, a bound that rules nothing out.
        mine = _unary(key)
        letters: dict[str, int] | None = None
        linked: list[str] = []
        checked = 0
        for other_key in reversed(data):
            if checked >= FUZZY_CANDIDATES:
                break
            other = data[other_key]
            times = other[0]
            if not times or times[-1] <= cutoff:
                continue  # stale (as _stale says; inline, this runs for every candidate)
            checked += 1
            other_length = len(other_key)
            longest = length if length > other_length else other_length  # noqa: FURB136 (no call: runs for every candidate)
            if abs(length - other_length) > slack * longest:
                continue  # the lengths alone rule it out
            exact = False
            if mine and other[1]:
                both = mine & other[1]
                if _ratio(_popcount(both), length + other_length) < similarity:
                    continue  # even the bucketed letters cannot reach the threshold
                exact = not both >> _OTHER  # no shared letter outside the buckets
            if not exact:
                letters = letters or _letters(key)
            if _similar(key, other_key, similarity, None if exact else letters):
                linked.append(other_key)
                times, unary, similar = other
                data[other_key] = times, unary, (similar or frozenset()) | {key}
        return (), mine, frozenset(linked) if linked else None

    def sweep(self, cutoff: float) -> None:
        self.clusters.expire(lambda c: _stale(c[0], cutoff))

    def __len__(self) -> int:
        return len(self.clusters)


# Letter buckets for the fast bound: a-z, 0-9, space, and one for everything else.
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789 "
# Bits per bucket: counts up to 16, which a chat line of a few dozen characters stays
# within. A wider field would make every AND and popcount longer (the ints have 38 of
# them); a text with a count beyond it gets no fast bound and takes the exact one.
_FIELD = 16


def _units(bucket: int) -> list[int]:
    """0 to ``_FIELD`` in unary at the place of the ``bucket``-th field."""
    return [((1 << n) - 1) << (bucket * _FIELD) for n in range(_FIELD + 1)]


# The counts at each bucket's place, by character: one OR per distinct character.
_UNITS = {c: _units(i) for i, c in enumerate(_ALPHABET)}
_OTHER = len(_ALPHABET) * _FIELD  # where the field of every other character starts
_OTHER_UNITS = _units(len(_ALPHABET))


def _unary(text: str) -> int:
    """Letter counts in unary, one ``_FIELD``-bit field per bucket; 0 if a count does
    not fit.

    The letters two texts share at most (difflib's ``quick_ratio`` numerator) is then
    ``(a & b).bit_count()``: the AND of two unary counts is their minimum. Bucketing
    several characters together ("everything else") can only raise the sum, so the
    bound never rejects a pair the exact one keeps; 0 means no fast bound.
    """
    value = 0
    other = len(text)
    for c in set(text):
        units = _UNITS.get(c)
        if units is not None:
            n = text.count(c)
            if n > _FIELD:
                return 0
            value |= units[n]
            other -= n
    if other > _FIELD:
        return 0
    return value | _OTHER_UNITS[other]


def _letters(text: str) -> dict[str, int]:
    return {c: text.count(c) for c in set(text)}


def _common_subsequence(a: str, b: str) -> int:
    """The length of the longest common subsequence of ``a`` and ``b``.

    Bit-parallel (Allison and Dix; Hyyrö): one bit per character of ``a``, a few integer
    operations per character of ``b``. difflib's matching blocks are in order in both
    texts, so they are a common subsequence: ``2 * LCS / total`` bounds its ratio from
    above, far more tightly than the shared letters do for texts of the same words.
    """
    masks: dict[str, int] = {}
    bit = 1
    for c in a:
        masks[c] = masks.get(c, 0) | bit
        bit <<= 1
    row = bit - 1  # all ones: no character of a matched yet
    for c in b:
        mask = masks.get(c, 0)
        if mask:
            matched = row & mask
            row = ((row + matched) | (row - matched)) & (bit - 1)
    return len(a) - _popcount(row)


def _ratio(matches: int, total: int) -> float:
    """difflib's ratio for ``matches`` (its own formula: a bound compares as it would)."""
    return 2.0 * matches / total if total else 1.0


_popcount = int.bit_count  # called as a function: no method lookup on every candidate


def _similar(a: str, b: str, threshold: float, a_letters: dict[str, int] | None) -> bool:
    """Whether ``a`` and ``b`` reach ``threshold`` by difflib's ratio (2*matches/total).

    Cheap upper bounds of the ratio rule out most pairs before difflib runs: with
    ``a_letters``, the shared letters (difflib's ``quick_ratio``; None when the caller's
    bound was already exact), then the longest common subsequence.
    """
    total = len(a) + len(b)
    if not total:
        return True
    if a_letters is not None:
        b_letters = _letters(b)
        small, large = (
            (a_letters, b_letters) if len(a_letters) <= len(b_letters) else (b_letters, a_letters)
        )
        shared = sum(min(n, large[c]) for c, n in small.items() if c in large)
        if _ratio(shared, total) < threshold:
            return False
    if _ratio(_common_subsequence(a, b), total) < threshold:
        return False
    return SequenceMatcher(None, a, b, autojunk=False).ratio() >= threshold


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
