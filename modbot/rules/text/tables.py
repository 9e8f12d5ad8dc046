"""The character tables text matching reads (pure): look-alikes, leetspeak, TLDs, marks.

Each table comes from the data Unicode publishes where there is some: look-alike
letters from confusables.txt (UTS #39), combining marks from the interpreter's Unicode
database. What Unicode's tables leave out is listed here by hand, with the reason.
"""

from __future__ import annotations

import json
import unicodedata
from importlib import resources
from typing import Final

import regex

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
LOOKALIKES_FOLDED: tuple[dict[int, str], dict[int, str]] = (
    {k: v.lower() for k, v in LOOKALIKES.items()},
    {k: "l" if v == "I" else v.lower() for k, v in LOOKALIKES.items()},
)

# Leetspeak: read inside words that have at least one letter. 1, ! and | are i or l:
# both readings are matched.
LEET = {"4": "a", "@": "a", "3": "e", "0": "o", "5": "s", "$": "s", "7": "t"}
AMBIGUOUS = {"1", "!", "|"}
MASKS = {"*", "#"}
MASK = "*"

# Top-level domains a bare domain in chat is recognised by (links.find_links).
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


# Combining marks (Mn, Me), which normalisation drops, by the regex module's Unicode
# tables: the same definition of a mark as the zalgo measure's, built at import (the
# class of ranges made from unicodedata before took 72-99 ms on the first non-ASCII
# text, on the event loop, and its search 5 times as long: 27 us against 5.5 us for
# "hello from Brazil 🇧🇷 ça va", NFD included). The regex module's Unicode is newer
# than some interpreters': tests/rules/test_text.py names where the two disagree.
MARKS: Final = regex.compile(r"[\p{Mn}\p{Me}]+")
