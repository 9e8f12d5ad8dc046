"""The term matcher (pure): every list term of every rule at one level, in one automaton.

All terms of all rules at one level go into one Aho-Corasick automaton
(``pyahocorasick``, a C extension): one pass over the text finds every term, whatever
the list size. Each term gets an integer id; conditions hold sets of ids.
"""

from __future__ import annotations

import bisect
import itertools
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import ahocorasick

from modbot.rules.text.normalize import (
    RECENT,
    SPACE,
    Level,
    Splices,
    _squeeze,
    spliced,
    squeeze,
    words,
)
from modbot.rules.text.reader import Reader
from modbot.rules.text.tables import MASK

START, END = "\x02", "\x03"  # around a text's words in the automaton's input
# Names up to this long have their hits remembered, the last REMEMBERED of them (a few
# megabytes: most have no hit, and all of those share one empty tuple).
REMEMBERED_LENGTH = 100
REMEMBERED = 65_536
# The hits of the last RECENT comments up to RECENT_LENGTH long are kept too: a
# copy-paste raid sends one text hundreds of times a second.
RECENT_LENGTH = 500


@dataclass(frozen=True, slots=True)
class TermKey:
    """A term as the automaton sees it at one level."""

    pattern: str  # squeezed words joined by spaces (standard) or the words (others)
    counts: tuple[int, ...]  # run lengths, one per pattern character
    plain: str  # unsqueezed words joined by spaces (for masked words)


def term_key(term: str, level: Level) -> TermKey | None:
    """How a list term is matched at ``level``; None if it has no word characters."""
    if level == "none":
        return TermKey(term, (1,) * len(term), term) if term.strip() else None
    found = words(term, level)
    if not found:
        return None
    if level != "standard":
        joined = SPACE.join(found)
        return TermKey(joined, (1,) * len(joined), joined)
    letters: list[str] = []
    counts: list[int] = []
    for i, word in enumerate(found):
        if i:
            letters.append(SPACE)
            counts.append(1)
        s, c = squeeze(word)
        letters.append(s)
        counts.extend(c)
    return TermKey("".join(letters), tuple(counts), SPACE.join(found))


def plural(term: str) -> str:
    """The English plural of a term's last word: ``-es`` after s, x, z, ch and sh,
    ``-s`` after anything else (``idiots``, ``asses``)."""
    if term.endswith(("s", "x", "z", "ch", "sh")):
        return term + "es"
    return term + "s"


def _is_word(c: str) -> bool:
    return c.isalnum() or c == "_"


@dataclass(frozen=True, slots=True)
class Hit:
    """One term found in a text: where (in the canonical form) and the words it covers."""

    term_id: int
    start: int
    end: int  # inclusive
    at_start: bool
    at_end: bool
    word_bounded: bool
    words: str  # the normalised words it matched


class _Canonical:
    """A text's words as the automaton reads them: ``START`` words ``END``, squeezed at
    ``standard``. The run lengths and word starts are worked out only for a text with
    an automaton hit (most texts have none).
    """

    __slots__ = ("_counts", "_joined", "_starts", "level", "text", "words")

    def __init__(self, found: tuple[str, ...], level: Level, reader: Reader) -> None:
        joined = f"{START}{SPACE.join(found)}{END}"
        # Runs never cross a space (words are not empty) or the start and end marks, so
        # the joined words squeezed are the words squeezed, joined.
        self.text = f"{START}{reader.squeezed(found)}{END}" if level == "standard" else joined
        self.words = list(found)
        self.level = level
        self._joined = joined
        self._counts: tuple[int, ...] | None = None
        self._starts: list[int] | None = None

    @property
    def counts(self) -> tuple[int, ...]:
        """How many times each character of ``text`` stood in a row."""
        if self._counts is None:
            if len(self.text) == len(self._joined):
                self._counts = (1,) * len(self.text)
            else:
                self._counts = _squeeze(self._joined)[1]
        return self._counts

    @property
    def starts(self) -> list[int]:
        """Where each word starts in ``text``."""
        if self._starts is None:
            words = self.text[1:-1].split(SPACE) if self.level == "standard" else self.words
            self._starts = list(itertools.accumulate((len(w) + 1 for w in words[:-1]), initial=1))
        return self._starts

    def covered(self, start: int, end: int) -> str:
        """The (unsqueezed) words that the span [start, end] touches."""
        first = bisect.bisect_right(self.starts, start) - 1
        last = bisect.bisect_right(self.starts, end) - 1
        return SPACE.join(self.words[max(first, 0) : last + 1])


def _around(
    found: tuple[str, ...], splices: Splices, reach: int
) -> list[tuple[tuple[str, ...], bool, bool]]:
    """The parts of the other reading to search: each splice with ``reach`` words of
    the first reading either side (splices whose parts meet are searched as one), as
    (words, whether they begin the text, whether they end it)."""
    groups: list[tuple[int, int, list[tuple[int, int, tuple[str, ...]]]]] = []
    for start, end, theirs in splices:
        low, high = max(0, start - reach), min(len(found), end + reach)
        if groups and low <= groups[-1][1]:
            first, last, parts = groups[-1]
            parts.append((start, end, theirs))
            groups[-1] = (first, max(last, high), parts)
        else:
            groups.append((low, high, [(start, end, theirs)]))
    out: list[tuple[tuple[str, ...], bool, bool]] = []
    for low, high, parts in groups:
        read: list[str] = []
        at = low
        for start, end, theirs in parts:
            read.extend(found[at:start])
            read.extend(theirs)
            at = end
        read.extend(found[at:high])
        if read:
            out.append((tuple(read), low == 0, high == len(found)))
    return out


@dataclass
class Matcher:
    """Every list term of every rule at one level, in one automaton.

    Build with ``add()`` then ``freeze()``; ``find(text)`` returns every hit.
    """

    level: Level
    # The ruleset's readings of texts (one Reader for all its matchers and its engine).
    reader: Reader = field(default_factory=Reader, repr=False, compare=False)
    _automaton: ahocorasick.Automaton = field(default_factory=ahocorasick.Automaton)
    _by_pattern: dict[str, list[tuple[int, tuple[int, ...]]]] = field(default_factory=dict)
    _masked: dict[int, list[tuple[str, int]]] = field(default_factory=dict)
    _ids: dict[str, int] = field(default_factory=dict)
    _frozen: bool = False
    # How many words past one word a hit may reach: the most spaces in a term.
    _reach: int = 0
    # Plain strings and tuples (no reference back to the matcher): an old matcher goes
    # as soon as a reload drops it, without waiting for the cycle collector.
    # OrderedDicts: each drops its oldest entry in constant time (a dict's first key is
    # found by walking the holes its earlier deletions left).
    _remembered: OrderedDict[str, tuple[Hit, ...]] = field(
        default_factory=OrderedDict, repr=False, compare=False
    )
    _recent: OrderedDict[str, tuple[Hit, ...]] = field(
        default_factory=OrderedDict, repr=False, compare=False
    )

    def add(self, term: str) -> int | None:
        """Register a term; returns its id (the same id for the same normalised term)."""
        if self._frozen:
            msg = "a frozen Matcher cannot take new terms"
            raise RuntimeError(msg)
        key = term_key(term, self.level)
        if key is None:
            return None
        ident = f"{key.plain}\x00{key.counts}"
        if ident in self._ids:
            return self._ids[ident]
        term_id = len(self._ids)
        self._ids[ident] = term_id
        self._by_pattern.setdefault(key.pattern, []).append((term_id, key.counts))
        if self.level == "standard":
            for form in (key.plain, plural(key.plain)):
                exact = len(form) - len(key.plain)
                if exact:
                    self._add_form(form, term_id, exact)
                if SPACE in form:
                    # "free coins" also matches "freecoins" and "f r e e c o i n s".
                    self._add_form(form.replace(SPACE, ""), term_id, exact)
                else:
                    self._masked.setdefault(len(form), []).append((form, term_id))
        return term_id

    def _add_form(self, form: str, term_id: int, exact: int = 0) -> None:
        """Another spelling of a term, found as the term. The last ``exact`` letters
        must stand as often as in ``form`` (a plural's ending: ``assess`` is not
        ``asses``)."""
        key = term_key(form, self.level)
        if key is not None:
            cut = len(key.counts) - exact
            counts = key.counts[:cut] + tuple(-n for n in key.counts[cut:])
            self._by_pattern.setdefault(key.pattern, []).append((term_id, counts))

    def freeze(self) -> None:
        """Build the automaton; no more terms after this."""
        for pattern, entries in self._by_pattern.items():
            self._automaton.add_word(pattern, (len(pattern), tuple(entries)))
        if self._by_pattern:
            self._automaton.make_automaton()
            self._reach = max(pattern.count(SPACE) for pattern in self._by_pattern)
        self._frozen = True

    @property
    def size(self) -> int:
        return len(self._ids)

    def find(self, text: str) -> tuple[Hit, ...]:
        """Every term hit in ``text`` (both readings of 1 ! | at ``standard``).

        The answers for the last ``RECENT`` texts are kept (the oldest goes first).
        """
        return self._kept(self._recent, RECENT, RECENT_LENGTH, text)

    def find_remembered(self, text: str) -> tuple[Hit, ...]:
        """``find``, remembering the hits of the last ``REMEMBERED`` short texts: for
        names, which come back with every message of their viewer (a chat's texts would
        push them out). A new matcher (a reload) starts with nothing remembered.
        """
        return self._kept(self._remembered, REMEMBERED, REMEMBERED_LENGTH, text)

    def _kept(
        self, kept: OrderedDict[str, tuple[Hit, ...]], cap: int, longest: int, text: str
    ) -> tuple[Hit, ...]:
        """The hits of ``text``, from ``kept`` if they are there; texts up to ``longest``
        long are added, and the one added first goes when there are more than ``cap``."""
        if not self._ids:
            return ()
        if len(text) > longest:
            return self._find_all(text)
        found = kept.get(text)
        if found is None:
            found = kept[text] = self._find_all(text)
            if len(kept) > cap:
                kept.popitem(last=False)
        return found

    def _find_all(self, text: str) -> tuple[Hit, ...]:
        if self.level == "none":
            return tuple(self._find_raw(text))
        reader = self.reader
        found = reader.words(text, self.level)
        hits = self._find(found)
        if self.level != "standard":
            return tuple(hits)
        # The other readings, each only if it differs from the first. The other reading
        # of 1 ! | I @ is searched only around the tokens it reads differently (a hit it
        # adds must cover one of them, or stand where one was): in a mutated raid, most
        # copies hold one or two such tokens among dozens.
        splices = reader.splices(text)
        readings: list[tuple[tuple[str, ...], bool, bool]] = []
        if splices:
            readings.extend(_around(found, splices, self._reach))
        parts = len(readings)  # the other reading's parts, searched as one reading
        if " " in text:
            for alt in (False, True) if splices else (False,):
                detached = reader.detached(text, alt)
                if (
                    detached is not None
                    and detached != found
                    and (not splices or detached != spliced(found, splices))
                    and all(detached != reading for reading, _, _ in readings[parts:])
                ):
                    readings.append((detached, True, True))
        if readings:
            seen = {(h.term_id, h.words) for h in hits}
            # In the order a search of each whole reading gives: the other reading's
            # automaton hits, part by part, then its masked words; then the others.
            found_hits = [self._find(r, b, e, masks=False) for r, b, e in readings[:parts]]
            if self._masked:
                found_hits += [self._mask_hits(r, b, e) for r, b, e in readings[:parts]]
            found_hits += [self._find(r, b, e) for r, b, e in readings[parts:]]
            for hit in itertools.chain.from_iterable(found_hits):
                if (hit.term_id, hit.words) not in seen:
                    seen.add((hit.term_id, hit.words))
                    hits.append(hit)
        return tuple(hits)

    def _find_raw(self, text: str) -> list[Hit]:
        """``none``: the terms as written, in the text as written. A term is a word
        where it is not glued to a letter, digit or ``_`` on either side."""
        hits: list[Hit] = []
        if not self._by_pattern or not text:
            return hits
        last = len(text) - 1
        for end, (length, entries) in self._automaton.iter(text):
            start = end - length + 1
            term = text[start : end + 1]
            bounded = (start == 0 or not _is_word(text[start - 1]) or not _is_word(term[0])) and (
                end == last or not _is_word(text[end + 1]) or not _is_word(term[-1])
            )
            for term_id, _counts in entries:
                hits.append(
                    Hit(
                        term_id,
                        start,
                        end,
                        at_start=start == 0,
                        at_end=end == last,
                        word_bounded=bounded,
                        words=term,
                    )
                )
        return hits

    def _find(
        self, found: tuple[str, ...], begins: bool = True, ends: bool = True, masks: bool = True
    ) -> list[Hit]:
        """The hits in these words (``masks``: and of their masked words); ``begins``
        and ``ends`` say whether they begin and end the text (a part of a reading does
        not, see ``_around``)."""
        if not found:
            return []
        canon = _Canonical(found, self.level, self.reader)
        text = canon.text
        last = len(text) - 1
        hits: list[Hit] = []
        if self._by_pattern:
            for end, (length, entries) in self._automaton.iter(text):
                start = end - length + 1
                before, after = text[start - 1], text[end + 1]
                bounded = before in (SPACE, START) and after in (SPACE, END)
                counts = canon.counts
                for term_id, term_counts in entries:
                    if all(
                        counts[start + i] >= n if n > 0 else counts[start + i] == -n
                        for i, n in enumerate(term_counts)
                    ):
                        hits.append(
                            Hit(
                                term_id,
                                start,
                                end,
                                at_start=begins and start == 1,
                                at_end=ends and end == last - 1,
                                word_bounded=bounded,
                                words=canon.covered(start, end),
                            )
                        )
        if masks and self._masked:
            hits.extend(self._mask_hits(found, begins, ends))
        return hits

    def _mask_hits(self, found: Sequence[str], begins: bool, ends: bool) -> list[Hit]:
        hits: list[Hit] = []
        for index, word in enumerate(found):
            if MASK not in word:
                continue
            visible = len(word) - word.count(MASK)
            if visible < 2 or visible < word.count(MASK):
                continue
            for plain, term_id in self._masked.get(len(word), ()):
                if all(w in (MASK, t) for w, t in zip(word, plain, strict=True)):
                    hits.append(
                        Hit(
                            term_id,
                            0,
                            0,
                            at_start=begins and index == 0,
                            at_end=ends and index == len(found) - 1,
                            word_bounded=True,
                            words=word,
                        )
                    )
        return hits
