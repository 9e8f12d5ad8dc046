"""Normalisation and words (pure): the text a viewer wrote, as the matcher reads it.

``basic`` is NFKC and case folding; ``fold`` adds look-alikes folded to Latin and
combining marks dropped; ``words`` splits a text into words at a level, gluing spaced-out
letters (``f r e e``) and joined pieces (``f.r.e.e``), reading leetspeak and keeping
masks (``f*ck``); ``squeeze`` gives a word's run-length form.
"""

from __future__ import annotations

import itertools
import operator
import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import Literal

from modbot.rules.text.tables import (
    AMBIGUOUS,
    LEET,
    LOOKALIKES,
    LOOKALIKES_FOLDED,
    MARKS,
    MASK,
    MASKS,
)

Level = Literal["none", "basic", "standard"]
LEVELS: tuple[Level, ...] = ("none", "basic", "standard")
SPACE = " "
# Each cache of recent texts (the words, the other reading, measures, copy-paste keys)
# holds the last RECENT of them: a copy-paste raid sends one text hundreds of times a
# second.
RECENT = 1024

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
_DOUBLED = re.compile(r"(.)\1+", re.DOTALL)  # a run of one character
_JOINED_PIECES = re.compile(r"[.\-_'’`~^+=:,/\\]+")  # what splits f.r.e.e (see _JOINERS)
# A run's character, as re.sub's replacement: a C function (a template like r"\1" is
# expanded by Python code for every run).
_FIRST = operator.itemgetter(1)


def _strip_marks(text: str) -> str:
    """``text`` in NFD without its combining marks (Mn, Me)."""
    if text.isascii():
        return text
    stripped: str = MARKS.sub("", unicodedata.normalize("NFD", text))
    return stripped


def basic(text: str) -> str:
    """NFKC and case folding."""
    if text.isascii():
        return text.lower()  # NFKC leaves ASCII as it is; casefold is lower there
    return _basic(text)


def _basic(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def fold(text: str) -> str:
    """basic, look-alikes folded to Latin, combining marks dropped (no tokenising)."""
    if text.isascii():
        return text.lower()  # no look-alikes (all non-ASCII) and no marks to drop
    return _fold(text)


def fold_as(text: str, alt: bool) -> str:
    """``fold``, or with ``alt`` the other reading's fold (see ``_fold_alt``)."""
    return _fold_alt(text) if alt else fold(text)


def _fold_alt(text: str) -> str:
    """``fold`` with a capital I (or a look-alike of one) read as ``l``."""
    if text.isascii():
        return text.replace("I", "l").lower()
    return _fold(text, alt=True)


def _fold(text: str, alt: bool = False) -> str:
    plain, lower = _fold_start(text)
    if alt and "I" in plain:
        lower = plain.replace("I", "l").casefold()
    return _fold_end(lower, alt)


def fold_both(text: str) -> tuple[str, str]:
    """``fold_as(text, False)`` and ``fold_as(text, True)``, worked out together: the
    second is the first unless the text holds an ``I`` or a look-alike of one (the
    reading of those is all that tells them apart), and then only its end is redone."""
    if text.isascii():
        lower = text.lower()
        return lower, text.replace("I", "l").lower() if "I" in text else lower
    plain, lower = _fold_start(text)
    first = _fold_end(lower, False)
    if "I" not in plain and _READ_AS_L.isdisjoint(lower):
        return first, first
    return first, _fold_end(plain.replace("I", "l").casefold() if "I" in plain else lower, True)


def _fold_start(text: str) -> tuple[str, str]:
    """A text's look-alikes folded, marks dropped and NFKC (``plain``), then case folded.

    Marks go before NFKC and case folding: U+0345 (a zalgo favourite) folds to iota. A
    table is applied only to a text with a character it maps: ``str.translate`` looks
    each character up in the dict, where a set's ``isdisjoint`` costs a quarter of that
    (most chat has no look-alike; its emoji are not).
    """
    raw = text if _LOOKALIKE_CHARS.isdisjoint(text) else text.translate(LOOKALIKES)
    plain = unicodedata.normalize("NFKC", _strip_marks(raw))
    return plain, plain.casefold()


def _fold_end(lower: str, alt: bool) -> str:
    """The case-folded text's look-alikes folded (``I`` read as ``l`` with ``alt``), and
    the marks that NFKC and case folding made dropped."""
    if not _LOOKALIKE_CHARS.isdisjoint(lower):
        lower = lower.translate(LOOKALIKES_FOLDED[alt])
    return _strip_marks(lower)


# Every character a look-alike table maps (both tables map the same ones), and those
# the two readings fold apart (the look-alikes of I: i in one, l in the other). The raw
# text's table turns those into I before case folding, so no character of Unicode
# brings one into a case-folded text today (checked over every code point): fold_both
# looks for them all the same, to stay exact whatever the tables come to hold.
_LOOKALIKE_CHARS = frozenset(map(chr, LOOKALIKES))
_READ_AS_L = frozenset(
    chr(code)
    for code, folded in LOOKALIKES_FOLDED[False].items()
    if LOOKALIKES_FOLDED[True][code] != folded
)


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
    # One space between tokens and none around them (most texts) has no wide gap: a
    # sum in C, where _WIDE_GAP tries a match at every position.
    single = sum(map(len, tokens)) + len(tokens) - 1 == len(folded)
    if single or _WIDE_GAP.search(folded) is None or all(len(t) > 1 for t in tokens):
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
# What every text _BEFORE_SPACED finds holds: three spaced-out characters after a space.
# It begins with a space, which the regex engine skips to in C; _BEFORE_SPACED, which
# begins with a look-behind, tries a match at every position (1.0 us against 9.5 us
# on a 150-character text, pure build), and most texts have no such letters.
_SPACED_OUT = re.compile(r" \S \S \S")


def detached(
    folded: str, alt: bool, token_words: TokenWords | None = None
) -> tuple[str, ...] | None:
    """The standard words of a folded text with a one-letter word kept apart from the
    spaced-out letters after it (``such a loser`` for ``such a l o s e r``, which is
    otherwise ``such aloser``), or None if the text has no such letters."""
    if not spaced_out(folded) or _BEFORE_SPACED.search(folded) is None:
        return None
    return tuple(standard_words(_BEFORE_SPACED.sub(r"\1  ", folded), alt, token_words))


def spaced_out(folded: str) -> bool:
    """Whether a folded text may have letters to keep apart (``detached``): three
    spaced-out characters after a space, and no wider gap."""
    return "  " not in folded and _SPACED_OUT.search(folded) is not None


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
    if not word.endswith(("!", "1")):  # no run of ! to end it (_TRAILING_BANGS ends in one)
        return word
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
    if level == "standard":
        return standard_words(_fold_alt(text) if alt else fold(text), alt)
    return split_words(text, level)


def split_words(text: str, level: Level) -> list[str]:
    """The words of ``text`` at ``none`` or ``basic``."""
    if level == "none":
        return [w for w in _WORD_SPLIT.split(text) if w]
    return [w for w in _WORD_SPLIT.split(basic(text)) if w]


# The words of one token with more than letters (``_token_words``, or a cache of it:
# modbot.rules.text.reader).
TokenWords = Callable[[str, bool], Sequence[str]]


def standard_words(folded: str, alt: bool, token_words: TokenWords | None = None) -> list[str]:
    """The ``standard`` words of a folded text (``fold``, or ``_fold_alt`` when ``alt``);
    ``token_words`` reads each token with more than letters (a cache of ``_token_words``)."""
    read = token_words or _token_words_tuple
    out: list[str] = []
    for token in _tokens(folded):
        if token.isalpha():
            out.append(token)  # letters only (most words): nothing to split, read or drop
        else:
            out.extend(read(token, alt))
    return out


# Where the other reading differs from the first: for each token read differently, the
# range [start, end) of its words in the first reading and its words in the other.
Splices = tuple[tuple[int, int, tuple[str, ...]], ...]


def readings(
    folded: str, folded_alt: str, token_words: TokenWords | None = None
) -> tuple[list[str], Splices]:
    """The ``standard`` words of a text (``folded``) and where its other reading
    (``folded_alt``, the ``alt`` words) differs from them, in one pass over its tokens.

    Both folds split into the same tokens (they differ only in the reading of ``I`` and
    its look-alikes, one letter for one letter), and a token reads the same both ways
    unless it holds an ambiguous character (``1 ! |``, ``@``): only those tokens are
    read twice. A matcher then searches the other reading only around them
    (``Matcher._find_all``): a mutated raid's copies hold a few such tokens each.
    """
    read = token_words or _token_words_tuple
    tokens = _tokens(folded)
    same = folded_alt == folded
    others = tokens if same else _tokens(folded_alt)
    if len(others) != len(tokens):  # cannot happen (see above); the whole text then
        found = standard_words(folded, False, token_words)
        whole = tuple(standard_words(folded_alt, True, token_words))
        return found, ((0, len(found), whole),) if whole != tuple(found) else ()
    out: list[str] = []
    splices: list[tuple[int, int, tuple[str, ...]]] = []
    for index, token in enumerate(tokens):
        start = len(out)
        other = token if same else others[index]
        if token.isalpha():
            out.append(token)  # letters only (most words): nothing to split, read or drop
            if other != token:
                theirs = (other,) if other.isalpha() else tuple(read(other, True))
                splices.append((start, start + 1, theirs))
            continue
        if other == token and token.isdigit() and token.isascii():
            out.append(token)  # digits alone (2024, a name's number): leet reads words
            continue
        mine = tuple(read(token, False))
        out.extend(mine)
        if other == token and _READ_ALIKE.isdisjoint(token):
            continue  # no character with two readings
        theirs = (other,) if other.isalpha() else tuple(read(other, True))
        if theirs != mine:
            splices.append((start, len(out), theirs))
    return out, tuple(splices)


def spliced(found: Sequence[str], splices: Splices) -> tuple[str, ...]:
    """The other reading whole: ``found`` with each splice's words put in."""
    out: list[str] = []
    at = 0
    for start, end, theirs in splices:
        out.extend(found[at:start])
        out.extend(theirs)
        at = end
    out.extend(found[at:])
    return tuple(out)


# What a token's two readings differ by (``_token_words``): the ambiguous characters
# (``_leet``) and ``@`` (a mention, a leet ``a`` or a mask).
_READ_ALIKE = AMBIGUOUS | {"@"}


def _token_words_tuple(token: str, alt: bool) -> tuple[str, ...]:
    return tuple(_token_words(token, alt=alt))


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


def has_ambiguous(text: str, folds: Callable[[str, bool], str] | None = None) -> bool:
    """Whether the text has characters with two readings (1 ! | I, a leading @, their
    look-alikes); ``folds(text, alt)`` folds it (a cache of ``fold_as``)."""
    if "I" in text or "@" in text or not AMBIGUOUS.isdisjoint(text):
        return True
    if text.isascii():
        return False
    folding = folds or fold_as
    folded = folding(text, False)
    return not AMBIGUOUS.isdisjoint(folded) or folded != folding(text, True)


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

    A search by the regex engine, in C: 0.8 us on a 45-character line in the pure build,
    where the loop over code points that stood here for the compiled build took 1.7 us.
    """
    return _DOUBLED.search(text) is not None


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


def similarity_key(text: str) -> str:
    """The text reduced for copy-paste comparison: standard words, squeezed, joined."""
    return key_of(words(text, "standard"))


def key_of(found: Sequence[str]) -> str:
    """``similarity_key`` of a text with these standard words."""
    # Runs never cross a space between words: squeezing the joined words squeezes each.
    return squeezed(SPACE.join(found))
