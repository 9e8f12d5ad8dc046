"""A ruleset's text readings, kept (pure): the caches of the hot path, in one object.

The functions of ``normalize`` and ``measures`` keep nothing. What is worth keeping
between events (a copy-paste raid sends one text hundreds of times a second, and a
mutated one repeats most of its tokens) is kept here, in a ``Reader`` that belongs to
one compiled ruleset: its matchers and the engine read through it, and a reload starts
a new one, so nothing a ruleset read outlives it. Each cache is a dict bounded by
dropping the entry added first (a raid's text is read again while it lasts).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TypeVar

from modbot.rules.text.links import find_links
from modbot.rules.text.measures import Measures, longest_run, measure
from modbot.rules.text.normalize import (
    RECENT,
    SPACE,
    Level,
    Splices,
    _token_words_tuple,
    detached,
    fold_as,
    fold_both,
    readings,
    spaced_out,
    split_words,
    squeezed,
    standard_words,
)

K = TypeVar("K")
V = TypeVar("V")

FOLDS_KEPT = 4 * RECENT  # folds of texts, both readings, and of names
TOKENS_KEPT = 16_384  # tokens with more than letters, with their words
WORDS_KEPT = 4 * RECENT  # words of texts, by level and reading
SQUEEZED_KEPT = 16_384  # words, squeezed
RUNS_KEPT = 16_384  # words, with their longest run of one character
# Words and tokens longer than this are worked out each time, not kept: a raid of
# one-word 10,000-character comments would otherwise fill each table with 160 MB.
LONGEST_KEPT = 64
JOINED_LONGEST = 1_024  # the words of a text are kept with their squeezed form up to this


def _keep(kept: OrderedDict[K, V], key: K, value: V, cap: int) -> V:
    """Add ``key``; beyond ``cap`` entries the one added first goes.

    An OrderedDict: it drops its first entry in constant time, where ``del
    d[next(iter(d))]`` on a dict walks the holes its earlier deletions left at the
    front (1.4 s of 14 in a profile of 30,000 events).
    """
    kept[key] = value
    if len(kept) > cap:
        kept.popitem(False)  # the first (`last=False`: a keyword costs the compiled build a dict)
    return value


class Reader:
    """The readings of texts under one ruleset, each worked out once while it is kept:
    folds, words, the other readings, copy-paste keys, measures and links."""

    __slots__ = (
        "_detached",
        "_folds",
        "_joined",
        "_keys",
        "_links",
        "_measures",
        "_readings",
        "_runs",
        "_squeezed",
        "_tokens",
        "_words",
    )

    def __init__(self) -> None:
        self._folds: OrderedDict[tuple[str, bool], str] = OrderedDict()
        self._tokens: OrderedDict[tuple[str, bool], tuple[str, ...]] = OrderedDict()
        self._words: OrderedDict[tuple[str, Level, bool], tuple[str, ...]] = OrderedDict()
        self._detached: OrderedDict[tuple[str, bool], tuple[str, ...] | None] = OrderedDict()
        self._readings: OrderedDict[str, tuple[tuple[str, ...], Splices]] = OrderedDict()
        self._squeezed: OrderedDict[str, str] = OrderedDict()
        self._joined: OrderedDict[tuple[str, ...], str] = OrderedDict()
        self._keys: OrderedDict[str, str] = OrderedDict()
        self._measures: OrderedDict[str, Measures] = OrderedDict()
        self._runs: OrderedDict[str, int] = OrderedDict()
        self._links: OrderedDict[str, list[str]] = OrderedDict()

    def fold(self, text: str, alt: bool = False) -> str:
        """``normalize.fold_as``: an ASCII text's fold is worked out each time (cheaper
        than keeping it)."""
        if text.isascii():
            return fold_as(text, alt)
        key = (text, alt)
        found = self._folds.get(key)
        if found is None:
            found = _keep(self._folds, key, fold_as(text, alt), FOLDS_KEPT)
        return found

    def _fold_both(self, text: str) -> tuple[str, str]:
        """Both readings' folds (``normalize.fold_both``), each kept as ``fold`` keeps it."""
        first = self._folds.get((text, False))
        other = self._folds.get((text, True))
        if first is None or other is None:
            first, other = fold_both(text)
            _keep(self._folds, (text, False), first, FOLDS_KEPT)
            _keep(self._folds, (text, True), other, FOLDS_KEPT)
        return first, other

    def token_words(self, token: str, alt: bool) -> tuple[str, ...]:
        """The words of one token with more than letters (kept by token: a mutated raid
        changes a few tokens of each copy and repeats the others, "@raid_king", "now,")."""
        key = (token, alt)
        found = self._tokens.get(key)
        if found is None:
            found = _token_words_tuple(token, alt)
            if len(token) <= LONGEST_KEPT:
                _keep(self._tokens, key, found, TOKENS_KEPT)
        return found

    def words(self, text: str, level: Level, alt: bool = False) -> tuple[str, ...]:
        """``normalize.words``."""
        if level == "standard" and not alt:
            return self._standard(text)[0]
        key = (text, level, alt)
        found = self._words.get(key)
        if found is None:
            if level == "standard":
                read = standard_words(self.fold(text, alt), alt, self.token_words)
            else:
                read = split_words(text, level)
            found = _keep(self._words, key, tuple(read), WORDS_KEPT)
        return found

    def splices(self, text: str) -> Splices:
        """Where the other reading of ``text`` differs from its ``standard`` words
        (``normalize.readings``; empty when it does not)."""
        return self._standard(text)[1]

    def _standard(self, text: str) -> tuple[tuple[str, ...], Splices]:
        """The standard words of ``text`` and its splices, kept together."""
        found = self._readings.get(text)
        if found is None:
            if text.isascii():
                folded = self.fold(text)
                # An ASCII text without a capital I folds alike in both readings.
                other = folded if "I" not in text else self.fold(text, True)
            else:
                folded, other = self._fold_both(text)
            words, splices = readings(folded, other, self.token_words)
            found = _keep(self._readings, text, (tuple(words), splices), WORDS_KEPT)
        return found

    def detached(self, text: str, alt: bool) -> tuple[str, ...] | None:
        """``normalize.detached`` of the text's fold (a text without spaced-out letters,
        most, is answered without keeping anything)."""
        folded = self.fold(text, alt)
        if not spaced_out(folded):
            return None
        key = (text, alt)
        if key in self._detached:
            return self._detached[key]
        return _keep(self._detached, key, detached(folded, alt, self.token_words), RECENT)

    def similarity_key(self, text: str) -> str:
        """``normalize.similarity_key``."""
        found = self._keys.get(text)
        if found is None:
            found = _keep(self._keys, text, self.squeezed(self.words(text, "standard")), RECENT)
        return found

    def squeezed(self, found: tuple[str, ...]) -> str:
        """``normalize.key_of``: the words joined, each squeezed (a run of one letter
        never crosses the space between two words).

        Kept by words, up to ``JOINED_LONGEST`` characters of them (the matcher reads a
        text's words, then the copy-paste check keys the text by them). And word by
        word, each kept: chat repeats its words, and a regex that squeezes the joined
        text tries a match at every position (``(.)\\1+`` has no first character to skip
        to), the largest share of the regex engine's work on ordinary chat.
        """
        joined = self._joined.get(found)
        if joined is not None:
            return joined
        kept = self._squeezed
        out: list[str] = []
        size = len(found) - 1  # the words and the spaces between them, unsqueezed
        for word in found:
            size += len(word)
            short = kept.get(word)
            if short is None:
                short = squeezed(word)
                if len(word) <= LONGEST_KEPT:
                    _keep(kept, word, short, SQUEEZED_KEPT)
            out.append(short)
        joined = SPACE.join(out)
        return _keep(self._joined, found, joined, RECENT) if size <= JOINED_LONGEST else joined

    def measure(self, text: str) -> Measures:
        """``measures.measure``."""
        found = self._measures.get(text)
        if found is None:
            found = _keep(self._measures, text, measure(text, self.longest_run), RECENT)
        return found

    def longest_run(self, text: str) -> int:
        """``measures.longest_run``, word by word, each kept: a run never crosses white
        space, and the regex tries a match at every position of the text (``(\\S)\\1+``
        has no first character to skip to)."""
        kept = self._runs
        longest = 0
        for word in text.split():
            run = kept.get(word)
            if run is None:
                run = longest_run(word)
                if len(word) <= LONGEST_KEPT:
                    _keep(kept, word, run, RUNS_KEPT)
            if run > longest:  # noqa: PLR1730 (no call in the loop)
                longest = run
        return longest

    def links(self, text: str) -> list[str]:
        """``links.find_links`` (a new list each time: the caller may change it)."""
        found = self._links.get(text)
        if found is None:
            found = _keep(self._links, text, find_links(text, self.fold(text)), RECENT)
        return list(found)
