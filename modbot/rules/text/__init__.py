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

One module per job:

- ``tables``: look-alikes (Unicode's confusables), leetspeak, TLDs, combining marks;
- ``normalize``: ``basic``, ``fold``, ``words``, ``squeeze``, ``similarity_key``;
- ``matcher``: the Aho-Corasick ``Matcher`` of every list term at one level, ``Hit``;
- ``links``: ``find_links``, ``domain_allowed``;
- ``reader``: ``Reader``, a ruleset's kept readings of texts (the hot path's caches);
- ``measures``: ``measure`` (length in graphemes, caps, runs, emoji, mentions, zalgo).

The names below are the ones the rest of modbot uses; import them from here.
"""

from __future__ import annotations

from modbot.rules.text.links import domain_allowed, find_links
from modbot.rules.text.matcher import (
    END,
    RECENT_LENGTH,
    REMEMBERED,
    REMEMBERED_LENGTH,
    START,
    Hit,
    Matcher,
    TermKey,
    plural,
    term_key,
)
from modbot.rules.text.measures import ZALGO_MARKS, Measures, graphemes, is_emoji, measure
from modbot.rules.text.normalize import (
    LEVELS,
    RECENT,
    SPACE,
    Level,
    basic,
    fold,
    has_ambiguous,
    similarity_key,
    squeeze,
    squeezed,
    words,
)
from modbot.rules.text.reader import Reader
from modbot.rules.text.tables import (
    AMBIGUOUS,
    LEET,
    LOOKALIKES,
    MARKS,
    MASK,
    MASKS,
    TLDS,
)

__all__ = [
    "AMBIGUOUS",
    "END",
    "LEET",
    "LEVELS",
    "LOOKALIKES",
    "MARKS",
    "MASK",
    "MASKS",
    "RECENT",
    "RECENT_LENGTH",
    "REMEMBERED",
    "REMEMBERED_LENGTH",
    "SPACE",
    "START",
    "TLDS",
    "ZALGO_MARKS",
    "Hit",
    "Level",
    "Matcher",
    "Measures",
    "Reader",
    "TermKey",
    "basic",
    "domain_allowed",
    "find_links",
    "fold",
    "graphemes",
    "has_ambiguous",
    "is_emoji",
    "measure",
    "plural",
    "similarity_key",
    "squeeze",
    "squeezed",
    "term_key",
    "words",
]
