"""Text normalisation, the term matcher, link detection and text measures (pure).

Normalisation levels (rules.md):

* ``none``: the raw text; words are runs of letters, digits and ``_``.
* ``basic``: Unicode NFKC and case folding.
* ``standard``: basic, plus confusable letters folded to Latin, combining marks
  dropped, leetspeak read as letters, runs of one letter squeezed, separators inside a
  word ignored (``f.r.e.e``, ``f r e e``, ``f-r-e-e``) and masked letters (``f*ck``)
  matched when a list term fits.

Word boundaries are those of the words the viewer wrote (after gluing ``f r e e``), so
``class``, ``assassin``, ``Scunthorpe``, ``cocktail`` and ``therapist`` never contain a
list term as a word. Squeezing is checked against the term: a run in the text must be
at least as long as the same run in the term, so ``heeelllooo`` matches ``hello`` but
``as`` does not match ``ass``.

All terms of all rules at one level go into one Aho-Corasick automaton
(``pyahocorasick``, a C extension): one pass over the text finds every term, whatever
the list size. Each term gets an integer id; conditions hold sets of ids.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import json
import operator
import re
import string
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Final, Literal

import ahocorasick
import regex

Level = Literal["none", "basic", "standard"]
LEVELS: tuple[Level, ...] = ("none", "basic", "standard")

START, END, SPACE = "\x02", "\x03", " "

# --- character tables -----------------------------------------------------------------

# Look-alike letters come from Unicode's confusables.txt (UTS #39) as the
# confusable-homoglyphs package ships it (confusables.json: each prototype with the
# characters that look like it). Every character listed as looking like a Latin letter
# or a digit folds to it: see _lookalikes().
#
# What Unicode's table leaves out, folded as well: the lower case of capitals it lists
# (в к м н т of В К М Н Т), Greek and Cyrillic letters read as the Latin letter they
# resemble in lower case (η as n, μ as u), letters with a stroke (which NFD does not
# split) and small capitals.
_BEYOND_UNICODE = {
    "в": "b",
    "ё": "e",
    "з": "3",
    "к": "k",
    "м": "m",
    "н": "h",
    "т": "t",
    "ї": "i",
    "ҫ": "c",
    "ь": "b",
    "ц": "u",
    "п": "n",
    "и": "u",
    "л": "n",
    "β": "b",
    "δ": "d",
    "ε": "e",
    "ζ": "z",
    "η": "n",
    "κ": "k",
    "μ": "u",
    "ς": "s",
    "τ": "t",
    "χ": "x",
    "ω": "w",
    "ł": "l",
    "ø": "o",
    "đ": "d",
    "ħ": "h",
    "ŧ": "t",
    "ƀ": "b",
    "ɨ": "i",
    "ŋ": "n",
    "ɒ": "a",
    "ɛ": "e",
    "ʀ": "r",
    "ɴ": "n",
    "ʟ": "l",
    "ʜ": "h",
    "ɢ": "g",
    "ʙ": "b",
    "ꜰ": "f",
    "ᴀ": "a",
    "ᴅ": "d",
    "ᴇ": "e",
    "ᴊ": "j",
    "ᴋ": "k",
    "ᴍ": "m",
    "ᴘ": "p",
    "ᴛ": "t",
}
# Negative circled and negative squared letters, and regional indicators (no
# decomposition, not in confusables.txt).
for _i in range(26):
    for _base in (0x1F150, 0x1F170, 0x1F1E6):
        _BEYOND_UNICODE[chr(_base + _i)] = chr(ord("a") + _i)
_LTR = "\u200e\u200f"  # confusables.json wraps right-to-left characters in marks


def _lookalikes() -> dict[int, str]:
    """Each non-ASCII look-alike of a Latin letter or digit and what it folds to.

    The letter I and the digit 1 look alike (Unicode's prototype for both is ``l``):
    a look-alike of that group folds to ``I`` if it is a capital, ``1`` if a digit,
    ``l`` if a small letter and ``|`` otherwise, so that it is read both ways as those
    are (see ``AMBIGUOUS``). Other targets are lower case.
    """
    source = resources.files("confusable_homoglyphs").joinpath("confusables.json")
    data: dict[str, list[dict[str, str]]] = json.loads(source.read_text("utf-8"))
    table: dict[int, str] = {}
    # Single letters and digits first, then groups (rn for m, ae for æ).
    groups = {key.strip(_LTR): entries for key, entries in data.items()}
    for proto in sorted((p for p in groups if p.isascii() and p.isalnum()), key=_by_length):
        entries = [e["c"].strip(_LTR) for e in groups[proto]]
        letters = [c for c in entries if len(c) == 1 and c.isascii() and c.isalpha()]
        target = proto.lower()
        if len(proto) > 1:
            if len(letters) == 1:
                target = letters[0].lower()  # the rn group holds the m-looking letters
            elif len(proto) > 2 or not proto.isalpha():
                continue  # ⅷ, ℡: NFKC spells them out already
        for c in entries:
            if len(c) != 1 or c.isascii() or ord(c) in table:
                continue
            table[ord(c)] = _l_or_i(c) if target in ("l", "i") and proto in "lI" else target
    for c, target in _BEYOND_UNICODE.items():
        table.setdefault(ord(c), target)
    for code, target in list(table.items()):
        lower = chr(code).lower()
        if len(lower) == 1 and not lower.isascii():
            table.setdefault(ord(lower), target.lower() if target != "I" else "i")
    return table


def _by_length(prototype: str) -> tuple[int, str]:
    return len(prototype), prototype


def _l_or_i(c: str) -> str:
    category = unicodedata.category(c)
    if category == "Lu" or "CAPITAL" in unicodedata.name(c, ""):
        return "I"
    if category == "Ll":
        return "l"
    if category in ("Nd", "No") or "DIGIT" in unicodedata.name(c, ""):
        return "1"
    return "|"


# Applied to the raw text (before NFKC, which would turn some look-alikes into a space
# and a mark), and in lower case after case folding, where ``I`` is read as ``i``
# (``l`` in the other reading).
LOOKALIKES: dict[int, str] = _lookalikes()
_LOOKALIKES_FOLDED: tuple[dict[int, str], dict[int, str]] = (
    {k: v.lower() for k, v in LOOKALIKES.items()},
    {k: "l" if v == "I" else v.lower() for k, v in LOOKALIKES.items()},
)

# Leetspeak: read inside words that have at least one letter. 1, ! and | are i or l:
# both readings are matched.
LEET = {"4": "a", "@": "a", "3": "e", "0": "o", "5": "s", "$": "s", "7": "t"}
AMBIGUOUS = {"1", "!", "|"}
MASKS = {"*", "#"}
MASK = "*"
_LEETISH = frozenset(LEET) | AMBIGUOUS | MASKS  # characters _leet changes
_LEET_AS = {  # str.translate tables of _leet, by the reading of the ambiguous characters
    reading: str.maketrans(
        {**LEET, **dict.fromkeys(AMBIGUOUS, reading), **dict.fromkeys(MASKS, MASK)}
    )
    for reading in ("i", "l")
}
# Punctuation stripped from the ends of a word (leet and mask characters stay).
_EDGE = ".,!?;:'\"()[]{}<>|~`^-_=+/\\…‘’“”«»¿¡"
# Characters that join the pieces of one word (f.r.e.e, f-r-e-e, don't).
_JOINERS = set(".-_'’`~^+=:,/\\")
_WORD_SPLIT = re.compile(r"[^\w]+")
# What a word loses after leet: all but letters, digits (str.isalnum) and the mask. (In
# a str pattern, \w is str.isalnum() or "_".)
_NOT_KEPT = re.compile(r"[^\w*]|_")
# Names up to this long have their hits remembered, the last REMEMBERED of them (a few
# megabytes: most have no hit, and all of those share one empty tuple).
REMEMBERED_LENGTH = 100
REMEMBERED = 65_536
# The hits of the last RECENT comments up to RECENT_LENGTH long are kept too: a
# copy-paste raid sends one text hundreds of times a second.
RECENT_LENGTH = 500
RECENT = 1024
_DOUBLED = re.compile(r"(.)\1+", re.DOTALL)  # a run of one character
_JOINED_PIECES = re.compile(r"[.\-_'’`~^+=:,/\\]+")  # what splits f.r.e.e (see _JOINERS)
# A run's character, as re.sub's replacement: a C function (a template like r"\1" is
# expanded by Python code for every run).
_FIRST = operator.itemgetter(1)


def _strip_marks(text: str) -> str:
    """``text`` in NFD without its combining marks (Mn, Me)."""
    if text.isascii():
        return text
    return _classes().marks.sub("", unicodedata.normalize("NFD", text))


def basic(text: str) -> str:
    """NFKC and case folding."""
    if text.isascii():
        return text.lower()  # NFKC leaves ASCII as it is; casefold is lower there
    return _basic(text)


def _basic(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


@lru_cache(maxsize=65536)
def fold(text: str) -> str:
    """basic, look-alikes folded to Latin, combining marks dropped (no tokenising)."""
    if text.isascii():
        return text.lower()  # no look-alikes (all non-ASCII) and no marks to drop
    return _fold(text)


@lru_cache(maxsize=1024)
def _fold_alt(text: str) -> str:
    """``fold`` with a capital I (or a look-alike of one) read as ``l``."""
    if text.isascii():
        return text.replace("I", "l").lower()
    return _fold(text, alt=True)


def _fold(text: str, alt: bool = False) -> str:
    # Marks go before NFKC and case folding: U+0345 (a zalgo favourite) folds to ι.
    plain = unicodedata.normalize("NFKC", _strip_marks(text.translate(LOOKALIKES)))
    if alt:
        plain = plain.replace("I", "l")
    return _strip_marks(plain.casefold().translate(_LOOKALIKES_FOLDED[alt]))


# --- words ---------------------------------------------------------------------------


def _letterish(c: str) -> bool:
    return c.isalnum() or c in LEET or c in AMBIGUOUS


def _glue_single_chars(tokens: list[str]) -> list[str]:
    """Runs of three or more one-character tokens become one word (``f r e e``)."""
    for token in tokens:
        if len(token) == 1:
            break
    else:
        return tokens  # no one-character token (most texts)
    out: list[str] = []
    run: list[str] = []
    for token in tokens:
        if len(token) == 1 and _letterish(token):
            run.append(token)
            continue
        out.extend(["".join(run)] if len(run) >= 3 else run)
        run = []
        out.append(token)
    out.extend(["".join(run)] if len(run) >= 3 else run)
    return out


_TOKEN = re.compile(r"\S+")
_WIDE_GAP = re.compile(r"\s\s")
# One-letter words that may stand before spaced-out letters (`such a l o s e r`).
ONE_LETTER_WORDS = frozenset("aiouye")


def _tokens(folded: str) -> list[str]:
    """The tokens of a folded text, spaced-out letters glued into words.

    Where letters are spelled out with wider gaps between words
    (``y o u  a r e  a n  i d i o t``), the narrowest gap of a run is the one between
    letters and a wider one ends a word.
    """
    tokens = folded.split()
    if _WIDE_GAP.search(folded) is None or all(len(t) > 1 for t in tokens):
        return _glue_single_chars(tokens)
    out: list[str] = []
    run: list[tuple[int, str]] = []
    for match in _TOKEN.finditer(folded):
        token = match.group()
        if len(token) == 1 and _letterish(token):
            run.append((match.start(), token))
            continue
        out.extend(_glue_run(run))
        run = []
        out.append(token)
    out.extend(_glue_run(run))
    return out


def _glue_run(run: list[tuple[int, str]]) -> list[str]:
    """One run of one-character tokens (position, token) as words (see ``_tokens``)."""
    if len(run) < 3:
        return [token for _, token in run]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(run)]
    narrow = min(gaps)
    pieces = [run[0][1]]
    for gap, (_, token) in zip(gaps, run[1:], strict=True):
        if gap > narrow:
            pieces.append(token)
        else:
            pieces[-1] += token
    return pieces


# A one-letter word before spaced-out letters (`such a l o s e r`).
_BEFORE_SPACED = re.compile(r"(?:^|(?<=\S\S ))([aiouye]) (?=\S \S \S(?!\S))")


@functools.lru_cache(maxsize=1024)
def _detached(text: str, alt: bool) -> tuple[str, ...] | None:
    """The standard words with a one-letter word kept apart from the spaced-out
    letters after it (``such a loser`` for ``such a l o s e r``, which is otherwise
    ``such aloser``), or None if the text has no such letters."""
    folded = _fold_alt(text) if alt else fold(text)
    if "  " in folded or _BEFORE_SPACED.search(folded) is None:
        return None
    return tuple(_standard_words(_BEFORE_SPACED.sub(r"\1  ", folded), alt=alt))


# A run of ! (with 1s mixed in, `!!!1`) ending a word is punctuation, not leet.
_TRAILING_BANGS = re.compile(r"[!1]*![!1]*$")
_TAIL = _EDGE.replace("!", "").replace("|", "")
# What leads a word and is stripped: _EDGE but ! and |, which are leet at the start
# of a word (`!d!ot`, `|oser`).
_LEAD = _EDGE.replace("!", "").replace("|", "")


def _edges(word: str) -> str:
    """``word`` without the punctuation around it. In a word with a letter, ``|`` stays
    wherever it is and ``!`` too, but for a run of them ending the word (leet there:
    ``!d!ot``, ``|oser``, ``kil|``; punctuation in ``idiot!!!1``)."""
    word = word.rstrip(_TAIL).lstrip(_LEAD)
    if not any(c.isalpha() for c in word):
        return word.strip(_EDGE)
    return _TRAILING_BANGS.sub("", word)


def _split_token(token: str, *, alt: bool) -> list[str]:
    """One whitespace-free token as words: joiners between single characters glue."""
    token = _edges(token)
    if token.startswith("@") and len(token) > 1 and token[1:2].isalpha():
        # A mention (the name is the word), or in the other reading a leet 'a' (@ss).
        token = "a" + token[1:] if alt else token[1:]
    if not token:
        return []
    pieces = [p for p in _JOINED_PIECES.split(token) if p]
    if len(pieces) <= 1:
        return [token]
    if all(len(p) == 1 for p in pieces) or "'" in token or "’" in token:
        return ["".join(pieces)]
    words: list[str] = []
    for piece in pieces:
        piece = _edges(piece)  # noqa: PLW2901 - a cleaned copy
        if piece:
            words.append(piece)
    return words


def _leet(word: str, ambiguous_as: str) -> str:
    if _LEETISH.isdisjoint(word) or not any(c.isalpha() for c in word):
        return word
    return word.translate(_LEET_AS[ambiguous_as])


def words(text: str, level: Level, *, alt: bool = False) -> list[str]:
    """The words of ``text`` at a normalisation level (not squeezed).

    ``alt`` picks the other reading of ambiguous characters at ``standard``: ``1 ! |``
    and a capital ``I`` as ``l`` instead of ``i``, a leading ``@`` as ``a`` and any
    other ``@`` as a masked letter.
    """
    return list(_words(text, level, alt))


@functools.lru_cache(maxsize=1024)
def _words(text: str, level: Level, alt: bool) -> tuple[str, ...]:
    # Cached: one event's text is read by the matcher, the alternate reading and the
    # copy-paste key, and a raid repeats one text many times.
    return tuple(_split_words(text, level, alt=alt))


def _split_words(text: str, level: Level, *, alt: bool) -> list[str]:
    if level == "none":
        return [w for w in _WORD_SPLIT.split(text) if w]
    if level == "basic":
        return [w for w in _WORD_SPLIT.split(basic(text)) if w]
    return _standard_words(_fold_alt(text) if alt else fold(text), alt=alt)


def _standard_words(folded: str, *, alt: bool) -> list[str]:
    out: list[str] = []
    for token in _tokens(folded):
        if token.isalpha():
            out.append(token)  # letters only (most words): nothing to split, read or drop
        else:
            out.extend(_token_words(token, alt=alt))
    return out


def _token_words(token: str, *, alt: bool) -> list[str]:
    """The standard words of one token (what a letters-only token is by itself)."""
    out: list[str] = []
    for word in _split_token(token, alt=alt):
        if alt and "@" in word:
            word = word.replace("@", MASK)  # noqa: PLW2901 - `f@ck`: @ as a mask
        leet = _leet(word, "l" if alt else "i")
        cleaned = leet if leet.isalnum() else _NOT_KEPT.sub("", leet)
        if cleaned.strip(MASK):
            out.append(cleaned)
    return out


def has_ambiguous(text: str) -> bool:
    """Whether the text has characters with two readings (1 ! | I, a leading @, their
    look-alikes)."""
    if "I" in text or "@" in text or not AMBIGUOUS.isdisjoint(text):
        return True
    if text.isascii():
        return False
    folded = fold(text)
    return not AMBIGUOUS.isdisjoint(folded) or folded != _fold_alt(text)


def squeeze(word: str) -> tuple[str, tuple[int, ...]]:
    """Run-length form of a word: ``heeello`` -> (``helo``, (1, 3, 2, 1))."""
    if not _has_run(word):
        return word, (1,) * len(word)  # no letter repeats (most words)
    return _squeeze(word)


def squeezed(text: str) -> str:
    """``text`` with every run of one character cut to one (``text`` if it has none)."""
    return _DOUBLED.sub(_FIRST, text) if _has_run(text) else text


def _has_run(text: str) -> bool:
    """Whether a character follows itself somewhere in ``text``.

    A loop over code points: the compiled build runs it in a tenth of the time the
    regex search takes (most texts have no run, so the search would read them whole).
    """
    previous = -1
    for i in range(len(text)):
        code = ord(text[i])
        if code == previous:
            return True
        previous = code
    return False


def _squeeze(word: str) -> tuple[str, tuple[int, ...]]:
    letters: list[str] = []
    counts: list[int] = []
    for c in word:
        if letters and letters[-1] == c:
            counts[-1] += 1
        else:
            letters.append(c)
            counts.append(1)
    return "".join(letters), tuple(counts)


# --- the matcher ---------------------------------------------------------------------


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

    def __init__(self, found: Sequence[str], level: Level) -> None:
        joined = f"{START}{SPACE.join(found)}{END}"
        # Runs never cross a space (words are not empty) or the start and end marks, so
        # squeezing the joined words squeezes each word.
        self.text = squeezed(joined) if level == "standard" else joined
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


@dataclass
class Matcher:
    """Every list term of every rule at one level, in one automaton.

    Build with ``add()`` then ``freeze()``; ``find(text)`` returns every hit.
    """

    level: Level
    _automaton: ahocorasick.Automaton = field(default_factory=ahocorasick.Automaton)
    _by_pattern: dict[str, list[tuple[int, tuple[int, ...]]]] = field(default_factory=dict)
    _masked: dict[int, list[tuple[str, int]]] = field(default_factory=dict)
    _ids: dict[str, int] = field(default_factory=dict)
    _frozen: bool = False
    # Plain strings and tuples (no reference back to the matcher): an old matcher goes
    # as soon as a reload drops it, without waiting for the cycle collector.
    _remembered: dict[str, tuple[Hit, ...]] = field(default_factory=dict, repr=False, compare=False)
    _recent: dict[str, tuple[Hit, ...]] = field(default_factory=dict, repr=False, compare=False)

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
        self, kept: dict[str, tuple[Hit, ...]], cap: int, longest: int, text: str
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
                del kept[next(iter(kept))]
        return found

    def _find_all(self, text: str) -> tuple[Hit, ...]:
        if self.level == "none":
            return tuple(self._find_raw(text))
        found = _words(text, self.level, False)
        hits = self._find(found)
        if self.level != "standard":
            return tuple(hits)
        readings: list[Sequence[str]] = []
        ambiguous = has_ambiguous(text)
        if ambiguous:
            readings.append(_words(text, self.level, True))
        if " " in text:
            for alt in (False, True) if ambiguous else (False,):
                detached = _detached(text, alt)
                if detached is not None:
                    readings.append(detached)
        if readings:
            seen = {(h.term_id, h.words) for h in hits}
            for reading in readings:
                for hit in self._find(reading):
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

    def _find(self, found: Sequence[str]) -> list[Hit]:
        if not found:
            return []
        canon = _Canonical(found, self.level)
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
                                at_start=start == 1,
                                at_end=end == last - 1,
                                word_bounded=bounded,
                                words=canon.covered(start, end),
                            )
                        )
        if self._masked:
            hits.extend(self._mask_hits(found))
        return hits

    def _mask_hits(self, found: Sequence[str]) -> list[Hit]:
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
                            at_start=index == 0,
                            at_end=index == len(found) - 1,
                            word_bounded=True,
                            words=word,
                        )
                    )
        return hits


# --- links ---------------------------------------------------------------------------

TLDS = frozenset(
    [
        "com",
        "net",
        "org",
        "io",
        "co",
        "me",
        "tv",
        "gg",
        "xyz",
        "info",
        "biz",
        "app",
        "dev",
        "link",
        "live",
        "shop",
        "store",
        "site",
        "online",
        "top",
        "club",
        "ly",
        "us",
        "uk",
        "de",
        "fr",
        "ru",
        "cn",
        "in",
        "br",
        "es",
        "it",
        "nl",
        "pl",
        "se",
        "no",
        "fi",
        "dk",
        "ch",
        "at",
        "be",
        "ca",
        "au",
        "nz",
        "jp",
        "kr",
        "tw",
        "hk",
        "sg",
        "id",
        "ph",
        "vn",
        "th",
        "my",
        "pk",
        "tr",
        "ua",
        "ir",
        "sa",
        "ae",
        "eg",
        "za",
        "ng",
        "ke",
        "mx",
        "ar",
        "cl",
        "pe",
        "ve",
        "cc",
        "ws",
        "to",
        "fm",
        "am",
        "gl",
        "gy",
        "ai",
        "sh",
        "lol",
        "fun",
        "vip",
        "win",
        "bet",
        "cash",
        "money",
        "click",
        "online",
        "pro",
        "one",
        "tk",
        "ml",
        "ga",
        "cf",
        "gq",
        "su",
        "eu",
        "asia",
        "mobi",
        "name",
        "tiktok",
        "page",
        "blog",
        "art",
        "games",
        "social",
        "chat",
        "stream",
        "media",
    ]
)
_SCHEME = re.compile(r"(?i)\b(?:https?|hxxps?)://([^\s/?#:]+)")
_DOT_WORDS = re.compile(r"(?i)\s*(?:[\[\(\{<]\s*(?:\.|dot)\s*[\]\)\}>]|\bdot\b|\(\.\)|\s\.\s)\s*")
_SPACED = re.compile(r"(?<![^\s])(?:[\w.]\s){3,}[\w.](?![^\s])")
_DOMAIN = re.compile(
    r"(?<![\w@.-])((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+([a-z]{2,24}))(?![\w-])"
)


def find_links(text: str) -> list[str]:
    """Domains linked in ``text``: URLs, bare domains and spelled-out forms.

    Catches ``https://x.com/a``, ``example.com``, ``example dot com``,
    ``example[.]com``, ``example (dot) com`` and ``e x a m p l e . c o m``.
    """
    folded = fold(text)
    if "." not in folded and "dot" not in folded and "://" not in folded:
        return []  # every form below needs a dot, the word "dot" or a scheme
    found: list[str] = [m.group(1).lower().strip(".") for m in _SCHEME.finditer(folded)]
    glued = _SPACED.sub(lambda m: m.group(0).replace(" ", ""), folded)
    dotted = _DOT_WORDS.sub(".", glued)
    for candidate in (folded, dotted):
        found.extend(m.group(1) for m in _DOMAIN.finditer(candidate) if m.group(2) in TLDS)
    unique: list[str] = []
    for domain in found:
        if domain and domain not in unique:
            unique.append(domain)
    return unique


def domain_allowed(domain: str, allow: Iterable[str]) -> bool:
    """Whether ``domain`` is an allowed domain or one of its subdomains."""
    domain = domain.lower().removeprefix("www.")
    for allowed in allow:
        a = allowed.lower().strip().removeprefix("www.").strip(".")
        if domain == a or domain.endswith("." + a):
            return True
    return False


# --- measures ------------------------------------------------------------------------

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


_MENTION = re.compile(r"(?<![\w@])@[\w.]{1,64}")
ZALGO_MARKS = 3


@lru_cache(maxsize=RECENT)  # a raid's one text, measured once
def measure(text: str) -> Measures:
    """Length in graphemes, caps ratio, longest run, emoji, mentions, stacked marks."""
    if text.isascii():
        return _measure_ascii(text)
    if _JOINS.search(text) is None:
        return _measure_simple(text)
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


def _measure_ascii(text: str) -> Measures:
    """``measure`` for plain ASCII (most chat): no emoji or marks, and every character
    is a cluster but for CR LF."""
    raw = text.encode("ascii")
    letters = len(raw) - len(raw.translate(None, _ASCII_LETTERS))
    caps = (len(raw) - len(raw.translate(None, _ASCII_UPPER))) / letters if letters >= 5 else 0.0
    return Measures(
        length=len(text) - text.count("\r\n") if "\r" in text else len(text),
        caps_ratio=caps,
        repeated_chars=_longest_run(text.lower()),
        emoji_count=0,
        mentions=_mentions(text),
        zalgo=False,
    )


def _measure_simple(text: str) -> Measures:
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
    if len(folded) == len(text):  # one character each: runs compare as in the clusters
        longest = _longest_run(folded)
    else:
        longest = _measure_unicode(text).repeated_chars
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


def _longest_run(text: str) -> int:
    """The longest run of one character other than white space (0 if there is none).

    White space ends a run and is never one (``str.split`` splits where ``isspace``).
    """
    longest = 0
    for word in text.split():
        previous = -1
        run = 0
        for i in range(len(word)):
            code = ord(word[i])
            if code == previous:
                run += 1
            else:
                previous = code
                run = 1
            if run > longest:  # noqa: PLR1730 (no call: runs for every character)
                longest = run
    return longest


@dataclass(frozen=True, slots=True)
class _CharClasses:
    marks: re.Pattern[str]  # combining marks (Mn, Me) that normalisation drops


# Planes with combining marks (BMP, SMP, SSP): the others hold ideographs, private use
# and nothing assigned (tests/rules/test_text.py scans them all to be sure).
MARK_PLANES = ((0, 0x20000), (0xE0000, 0xE1000))


@functools.cache
def _classes() -> _CharClasses:
    """Regex classes of the characters normalisation drops, made once (the first
    non-ASCII text) from the interpreter's Unicode tables."""
    marks = [
        code
        for low, high in MARK_PLANES
        for code in range(low, high)
        if unicodedata.category(chr(code)) in ("Mn", "Me")
    ]
    return _CharClasses(re.compile(_char_class(marks) + "+"))


def _char_class(codes: list[int]) -> str:
    """A regex character class of these code points, as ranges."""
    ranges: list[tuple[int, int]] = []
    for code in sorted(set(codes)):
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    parts = [
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in ranges
    ]
    return f"[{''.join(parts)}]"


_ASCII_LETTERS = string.ascii_letters.encode()
_ASCII_UPPER = string.ascii_uppercase.encode()


@lru_cache(maxsize=RECENT)
def similarity_key(text: str) -> str:
    """The text reduced for copy-paste comparison: standard words, squeezed, joined."""
    # Runs never cross a space between words: squeezing the joined words squeezes each.
    return squeezed(SPACE.join(_words(text, "standard", False)))
