"""Text measures (pure): the numbers about a text that rules compare.

Length in grapheme clusters (UAX #29), the share of capitals, the longest run of one
character, emoji, mentions and stacked marks (zalgo).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from typing import Final

import regex

# Grapheme clusters are UAX #29's extended grapheme clusters, as the regex module finds
# them (\X): an emoji ZWJ sequence, a flag, a keycap, a letter with its marks, a Hangul
# syllable spelled in jamo and CR LF each count once.
_CLUSTER: Final = regex.compile(r"\X")
# An emoji cluster (UTS #51): one with an Extended_Pictographic character (the property
# UAX #29 builds emoji clusters from), a skin tone, a regional indicator (a flag, or half
# of one) or a keycap. The same verdict as the emoji package's data set (every RGI
# sequence, tests/rules/test_graphemes.py), from the same Unicode tables as \X, and an
# emoji stays one when a mark or an odd modifier is piled on it (the data set has no
# such sequence, so an exact lookup would not count it).
_EMOJI: Final = regex.compile(
    r"[\p{Extended_Pictographic}\p{Emoji_Modifier}\p{Regional_Indicator}]|[0-9#*]\uFE0F?\u20E3"
)
# Characters that can share a cluster with a neighbour (UAX #29's Grapheme_Cluster_Break
# values that rules GB3-GB13 do not always break at): a text with none of them has one
# cluster per character, and measure() skips the cluster walk (most chat with emoji).
_JOINS: Final = regex.compile(
    r"[\r\p{GCB=Extend}\p{GCB=ZWJ}\p{GCB=SpacingMark}\p{GCB=Prepend}"
    r"\p{GCB=Regional_Indicator}\p{GCB=L}\p{GCB=V}\p{GCB=T}]"
)
_STACKED: Final = regex.compile(r"[\p{Mn}\p{Me}]")  # the marks zalgo stacks


def graphemes(text: str) -> list[str]:
    """User-perceived characters: UAX #29 extended grapheme clusters."""
    clusters: list[str] = _CLUSTER.findall(text)
    return clusters


def is_emoji(cluster: str) -> bool:
    """Whether a grapheme cluster is an emoji (see ``_EMOJI``)."""
    return _EMOJI.search(cluster) is not None


_FIGURES = ("length", "caps_ratio", "repeated_chars", "emoji_count", "mentions", "zalgo")


class Measures:
    """Numbers about a text that rules compare.

    A plain class with final attributes rather than a frozen dataclass: one is made for
    every comment, and the frozen dataclass's ``__init__`` (``object.__setattr__`` per
    field) cost twenty times as much in the compiled build, where this one is native.
    """

    __slots__ = ("caps_ratio", "emoji_count", "length", "mentions", "repeated_chars", "zalgo")

    def __init__(
        self,
        length: int,
        caps_ratio: float,
        repeated_chars: int,
        emoji_count: int,
        mentions: int,
        zalgo: bool,
    ) -> None:
        self.length: Final = length
        self.caps_ratio: Final = caps_ratio
        self.repeated_chars: Final = repeated_chars
        self.emoji_count: Final = emoji_count
        self.mentions: Final = mentions
        self.zalgo: Final = zalgo

    def _figures(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in _FIGURES)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Measures) and self._figures() == other._figures()

    def __hash__(self) -> int:
        return hash(self._figures())

    def __repr__(self) -> str:
        pairs = ", ".join(f"{n}={getattr(self, n)!r}" for n in _FIGURES)
        return f"Measures({pairs})"


# An @ not after a word character or another @, then the name. The @ comes first (the
# look-behind checks what stands before it), so the regex engine skips to each @ in C
# rather than trying a match at every position: 0.8 us instead of 6.6 on a
# 150-character text with one mention (pure build).
_MENTION = re.compile(r"@(?<![\w@]@)[\w.]{1,64}")
_RUN = re.compile(r"(\S)\1+", re.DOTALL)  # a run of one character, two or more
ZALGO_MARKS = 3


# The longest run of one character in a text without marks or joiners (``longest_run``,
# or a cache of it by word: modbot.rules.text.reader).
LongestRun = Callable[[str], int]


def measure(text: str, runs: LongestRun | None = None) -> Measures:
    """Length in graphemes, caps ratio, longest run, emoji, mentions, stacked marks;
    ``runs`` finds the longest run (``longest_run``, or a cache of it)."""
    if text.isascii():
        return _measure_ascii(text, runs or longest_run)
    if _JOINS.search(text) is None:
        return _measure_simple(text, runs or longest_run)
    return _measure_unicode(text)


def _measure_unicode(text: str) -> Measures:
    """``measure`` for any text: by grapheme clusters."""
    clusters = graphemes(text)
    letters = [c for c in text if c.isalpha()]
    caps = sum(1 for c in letters if c.isupper()) / len(letters) if len(letters) >= 5 else 0.0
    longest = 0
    run = 0
    previous = ""
    for cluster in clusters:
        key = cluster.casefold()
        if key == previous and not key.isspace():
            run += 1
        else:
            run = 1
            previous = key
        longest = max(longest, run if not key.isspace() else 0)
    zalgo = any(
        len(cluster) >= ZALGO_MARKS and len(_STACKED.findall(cluster)) >= ZALGO_MARKS
        for cluster in clusters
    )
    return Measures(
        length=len(clusters),
        caps_ratio=caps,
        repeated_chars=longest,
        emoji_count=sum(1 for c in clusters if is_emoji(c)),
        mentions=_mentions(text),
        zalgo=zalgo,
    )


def _measure_ascii(text: str, runs: LongestRun) -> Measures:
    """``measure`` for plain ASCII (most chat): no emoji or marks, and every character
    is a cluster but for CR LF."""
    raw = text.encode("ascii")
    letters = len(raw) - len(raw.translate(None, _ASCII_LETTERS))
    caps = (len(raw) - len(raw.translate(None, _ASCII_UPPER))) / letters if letters >= 5 else 0.0
    return Measures(
        length=len(text) - text.count("\r\n") if "\r" in text else len(text),
        caps_ratio=caps,
        repeated_chars=runs(text.lower()),
        emoji_count=0,
        mentions=_mentions(text),
        zalgo=False,
    )


def _measure_simple(text: str, runs: LongestRun) -> Measures:
    """``measure`` for a text whose every character is a cluster of its own (none of
    ``_JOINS``: no marks, joiners, skin tones, tags, flags, jamo or CR; most chat with
    emoji)."""
    letters = upper = 0
    for c in text:
        if c.isalpha():
            letters += 1
            if c.isupper():
                upper += 1
    folded = text.casefold()
    # One character each: runs compare as in the clusters.
    same = len(folded) == len(text)
    longest = runs(folded) if same else _measure_unicode(text).repeated_chars
    return Measures(
        length=len(text),
        caps_ratio=upper / letters if letters >= 5 else 0.0,
        repeated_chars=longest,
        emoji_count=len(_EMOJI.findall(text)),
        mentions=_mentions(text),
        zalgo=False,
    )


def _mentions(text: str) -> int:
    return len(_MENTION.findall(text)) if "@" in text else 0  # every mention has an @


def longest_run(text: str) -> int:
    """The longest run of one character other than white space (0 if there is none).

    White space ends a run and is never one (``\\S`` is what ``str.split`` keeps). The
    runs of two or more are found by the regex engine (in C): in chat they are few, so
    this costs a scan of the text, not a step of the interpreter per character (a
    150-character comment: about 70 us in the pure build by a loop over characters).
    """
    longest = 0
    for run in _RUN.finditer(text):
        size = run.end() - run.start()
        if size > longest:  # noqa: PLR1730 (no call in the loop)
            longest = size
    if longest:
        return longest
    return 1 if text.strip() else 0


_ASCII_LETTERS = string.ascii_letters.encode()
_ASCII_UPPER = string.ascii_uppercase.encode()
