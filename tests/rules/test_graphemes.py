"""Grapheme clusters (UAX #29) and emoji (UTS #51) in the text measures.

``graphemes`` is the regex module's ``\\X``; ``is_emoji`` is checked against the emoji
package's data set (every RGI sequence, every single code point). ``measure`` skips the
cluster walk for ASCII and for text whose characters are each a cluster: the property
tests check those fast paths against the library.
"""

from __future__ import annotations

import unicodedata

import emoji
import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from modbot.rules import text as tx
from modbot.rules.text import measures as tx_measures

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"  # man woman girl boy
ASTRONAUT = "\U0001f469\U0001f3fd\u200d\U0001f680"  # woman astronaut: medium skin tone
TECHNOLOGIST = "\U0001f9d1\u200d\U0001f4bb"
THUMBS_UP_DARK = "\U0001f44d\U0001f3ff"
FRANCE, BRAZIL = "\U0001f1eb\U0001f1f7", "\U0001f1e7\U0001f1f7"
ENGLAND = "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"
KEYCAP_1, KEYCAP_HASH = "1\ufe0f\u20e3", "#\ufe0f\u20e3"
HEART = "\u2764\ufe0f"  # red heart, emoji presentation
HANGUL_JAMO = "\u1100\u1161\u11a8"  # ᄀ ᅡ ᆨ: the syllable 각 spelled in jamo
ZALGO_3 = "z\u0300\u0301\u0302"  # three stacked marks
ZALGO_2 = "z\u0300\u0301"


@pytest.mark.parametrize(
    ("text", "clusters"),
    [
        (FAMILY, [FAMILY]),
        (ASTRONAUT + TECHNOLOGIST, [ASTRONAUT, TECHNOLOGIST]),
        (FRANCE + BRAZIL, [FRANCE, BRAZIL]),
        (FRANCE + "\U0001f1e7", [FRANCE, "\U0001f1e7"]),  # an odd indicator stands alone
        (KEYCAP_1 + KEYCAP_HASH, [KEYCAP_1, KEYCAP_HASH]),
        (THUMBS_UP_DARK + "!", [THUMBS_UP_DARK, "!"]),
        (ENGLAND + "x", [ENGLAND, "x"]),
        (HEART + HEART, [HEART, HEART]),
        ("e\u0301a", ["e\u0301", "a"]),
        (ZALGO_3 + "o", [ZALGO_3, "o"]),
        (HANGUL_JAMO + "\uac01", [HANGUL_JAMO, "\uac01"]),  # jamo, then the precomposed 각
        ("\uac00\u11a8", ["\uac00\u11a8"]),  # LV syllable + T jamo
        ("a\r\nb", ["a", "\r\n", "b"]),
        ("\n\r", ["\n", "\r"]),  # LF CR is two
        ("\u0915\u094d\u0937", ["\u0915\u094d\u0937"]),  # क्ष: a conjunct (GB9c)
        ("\u0e01\u0e33", ["\u0e01\u0e33"]),  # กำ: a spacing mark joins
    ],
)
def test_graphemes_are_extended_grapheme_clusters(text: str, clusters: list[str]) -> None:
    assert tx.graphemes(text) == clusters


@pytest.mark.parametrize(
    ("text", "length", "emoji_count", "zalgo"),
    [
        (FAMILY, 1, 1, False),
        (f"{ASTRONAUT} {TECHNOLOGIST}", 3, 2, False),
        (FRANCE + BRAZIL + "\U0001f1e7", 3, 3, False),
        (KEYCAP_1 + KEYCAP_HASH + "1#", 4, 2, False),  # a digit alone is no emoji
        (THUMBS_UP_DARK * 4, 4, 4, False),
        (ENGLAND, 1, 1, False),
        ("\u2764\u2764\ufe0f", 2, 2, False),  # with and without the variation selector
        ("lol \U0001f602\U0001f602", 6, 2, False),
        ("\U0001f602\u0301" * 5, 5, 5, False),  # a mark piled on an emoji leaves it one
        ("\u2500\u2588\u2605\u2190", 4, 0, False),  # box drawing, block, star, arrow: no
        (HANGUL_JAMO * 2, 2, 0, False),
        ("a\r\nb\r\n", 4, 0, False),
        (ZALGO_2 + "o", 2, 0, False),
        (ZALGO_3 + "o", 2, 0, True),
        ("\u0301\u0302\u0303", 1, 0, True),  # marks with nothing under them: one cluster
        ("a\u0903\u0903\u0903", 1, 0, False),  # spacing marks (Mc) do not stack
        ("H\u0334\u0358\u0360e\u0335\u0310\u033fl\u0336", 3, 0, True),
    ],
)
def test_the_measures_count_clusters_emoji_and_stacked_marks(
    text: str, length: int, emoji_count: int, zalgo: bool
) -> None:
    m = tx.measure(text)
    assert (m.length, m.emoji_count, m.zalgo) == (length, emoji_count, zalgo)
    assert m == tx_measures._measure_unicode(text)


def test_every_rgi_emoji_is_one_cluster_and_an_emoji() -> None:
    """Every sequence of the emoji package's data set (fully, minimally and unqualified,
    and the skin-tone components) is one cluster and one emoji."""
    for sequence in emoji.EMOJI_DATA:
        assert tx.graphemes(sequence) == [sequence], sequence
        assert tx.is_emoji(sequence), sequence
        m = tx_measures._measure_unicode(sequence)
        assert (m.length, m.emoji_count) == (1, 1), sequence
        assert tx.measure(sequence) == m


# Where the properties and the data set part on one code point: unassigned code points
# that Unicode reserves for pictographs (Extended_Pictographic, so the next Unicode's
# emoji count before the data set lists them), a regional indicator alone (half a
# flag), and the combining keycap without a keycap base.
_ALONE = regex.compile(r"\p{Regional_Indicator}|\u20e3|\p{Cn}")


def test_a_code_point_is_an_emoji_as_the_data_set_says() -> None:
    for code in (*range(0x20000), *range(0xE0000, 0xE1000)):
        c = chr(code)
        if unicodedata.category(c) == "Cs" or _ALONE.match(c):
            continue
        assert tx.is_emoji(c) == (c in emoji.EMOJI_DATA), hex(code)


PIECES = [
    FAMILY,
    ASTRONAUT,
    TECHNOLOGIST,
    THUMBS_UP_DARK,
    FRANCE,
    ENGLAND,
    KEYCAP_1,
    HEART,
    HANGUL_JAMO,
    ZALGO_3,
    "\U0001f1e7",  # half a flag
    "\U0001f3fb",  # a skin tone alone
    "\u200d",
    "\ufe0e",
    "\ufe0f",
    "\U000e0067",  # a tag
    "\u0301",
    "\u0903",  # a spacing mark
    "\u0600",  # a prepended concatenation mark
    "\u1100",
    "\u1161",
    "\u11a8",
    "\uac00",
    "\uac01",
    "\u0915\u094d",
    "\r",
    "\n",
    "\r\n",
    " ",
    "A",
    "a",
    "ß",
    "Σ",
    "@a",
    "\U0001f602",
    "\u2764",
    "é",
]
MIXED = st.lists(st.one_of(st.sampled_from(PIECES), st.characters()), max_size=30).map("".join)


@settings(max_examples=500, deadline=None)
@given(MIXED)
def test_the_fast_paths_agree_with_the_library(text: str) -> None:
    """A text without ``_JOINS`` is one cluster per character, ASCII is that but for CR
    LF, and the measures of either fast path are those of the cluster walk."""
    clusters = regex.findall(r"\X", text)
    assert tx.graphemes(text) == clusters
    if tx_measures._JOINS.search(text) is None:
        assert clusters == list(text)
    if text.isascii():
        assert len(clusters) == len(text) - text.count("\r\n")
    assert tx.measure(text) == tx_measures._measure_unicode(text)
    assert tx.measure(text).emoji_count == sum(1 for c in clusters if tx.is_emoji(c))


def test_a_character_outside_the_joining_class_breaks_on_both_sides() -> None:
    """Every code point the fast path's class leaves out is a cluster of its own next
    to any of these neighbours (which are also outside the class)."""
    alone = [
        chr(code)
        for code in (*range(0x20000), *range(0xE0000, 0xE1000))
        if unicodedata.category(chr(code)) != "Cs" and not tx_measures._JOINS.match(chr(code))
    ]
    for n in ["a", "\U0001f602", "\u2764", "\uac00", " ", "\n"]:
        text = n + n.join(alone) + n
        assert tx.graphemes(text) == list(text), repr(n)
