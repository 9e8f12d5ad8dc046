"""The evasions docs/rules.md promises, each tested both ways: the evasion is caught,
and the innocent text that looks like it is not (issue 17)."""

from __future__ import annotations

import json
import random
import string
from importlib import resources

import pytest

from modbot.rules import text as tx
from modbot.rules.text import normalize as tx_normalize

from .util import comment, engine, fired, words_rule

TERMS = ["idiot", "loser", "ass", "fuck", "shit", "free coins", "bitch", "scam", "kill"]


@pytest.fixture(scope="module")
def standard() -> object:
    return words_rule(TERMS)


CAUGHT = [
    ("you are an !d!ot", "! as i at the start of a word"),
    ("you are an |oser", "| as l at the start of a word"),
    ("what a kil| joy", "| as l at the end of a word"),
    ("1d!0t", "1 and ! inside a word"),
    ("you idiot!!!", "a run of ! after the word"),
    ("you idiot!!!1!", "! and 1 after the word"),
    ("you l0ser!1", "leet and trailing !1"),
    ("such a l o s e r", "spaced letters after a one-letter word"),
    ("i am a f r e e c o i n s guy", "a spaced phrase after a one-letter word"),
    ("y o u  a r e  a n  i d i o t", "a sentence spelled out letter by letter"),
    ("i  d  i  o  t", "letters with wide gaps"),
    ("f r e e  c o i n s", "a spelled-out phrase"),
    ("f@ck", "@ as a mask"),
    ("what the sh@t", "@ as a mask for i"),
    ("b@st@rd and @ss", "@ as a, and a leading @ as a"),
    ("a̸̢s̷s̶", "zalgo on a short word"),
    ("ą⃘̥ͬ⃧ͤͅs͎᪵⃯᷄᪼︮ᷯs̷ᷢ", "zalgo with U+0345, which case folding makes a Greek iota"),
    ("s̶̡̛h̷̢i̵̡t̴̢", "zalgo on four letters"),
    ("idiots", "plural -s"),
    ("you bitches", "plural -es"),
    ("f*cks", "a masked plural"),
    ("free coinses", "plural of a phrase's last word"),
    ("ΙDΙΟΤ", "Greek capitals"),
    ("Ꭵdiot", "a Cherokee look-alike Unicode lists"),
    ("ⅼoser", "a roman numeral l"),
]


@pytest.mark.parametrize(("text", "why"), CAUGHT, ids=[w for _, w in CAUGHT])
def test_promised_evasions_are_caught(standard: object, text: str, why: str) -> None:
    assert fired(standard, comment(text)) == ["words"], why  # type: ignore[arg-type]


INNOCENT = [
    ("wow!!! nice", "a run of ! after an ordinary word"),
    ("hello!1!", "!1 after an ordinary word is not a letter"),
    ("!!!", "only punctuation"),
    ("|| ok ||", "bars around a word"),
    ("such a c l a s s act", "spaced class after a one-letter word: no ass"),
    ("b a s s", "spaced bass"),
    ("a s s e s s m e n t", "spaced assessment"),
    ("i m  a  l o s e n g e  fan", "a different spelled-out word"),
    ("me@home", "an @ inside an address"),
    ("c@t", "@ masking a letter of no term"),
    ("c̸l̢a̷s̶s̵", "zalgo on an innocent word"),
    ("classes", "plural of an innocent word"),
    ("passes the glasses", "-es words that contain a term"),
    ("assess", "a word that starts with a term"),
    ("scammers", "a longer word, not a plural"),
    ("idiotic", "a longer word, not a plural"),
    ("Ιnnocent Ιdea", "Greek capitals of innocent words"),
    ("shiitake", "stretched letters of a longer word"),
]


@pytest.mark.parametrize(("text", "why"), INNOCENT, ids=[w for _, w in INNOCENT])
def test_innocent_look_alikes_are_left_alone(standard: object, text: str, why: str) -> None:
    assert fired(standard, comment(text)) == [], why  # type: ignore[arg-type]


def test_a_spelled_out_sentence_is_read_as_its_words() -> None:
    assert tx.words("y o u  a r e  a n  i d i o t", "standard") == ["you", "are", "an", "idiot"]
    # With one gap everywhere the letters are one word, as before.
    assert tx.words("f r e e c o i n s", "standard") == ["freecoins"]


def test_trailing_bangs_are_punctuation_and_leading_ones_leet() -> None:
    assert tx.words("idiot!!!1", "standard") == ["idiot"]
    assert tx.words("!d!ot", "standard") == ["idiot"]
    assert tx.words("|oser", "standard", alt=True) == ["loser"]


# --- normalize: none ------------------------------------------------------------------


def _none_rule(key: str, term: str) -> object:
    return engine(
        f"""
        version: 1
        rules:
          - id: r
            on: comment
            normalize: none
            when: {{{key}: {json.dumps(term)}}}
            then: [log]
        """
    )


@pytest.mark.parametrize(
    ("key", "term", "text", "matches"),
    [
        ("text.equals", "!rules", "!rules", True),
        ("text.equals", "!rules", "rules", False),
        ("text.equals", "!rules", "rules.", False),
        ("text.equals", "!rules", "#rules", False),
        ("text.equals", "!rules", "!rules now", False),
        ("text.starts_with", "!spam", "!spam me", True),
        ("text.starts_with", "!spam", "spam me", False),
        ("text.ends_with", "now!", "do it now!", True),
        ("text.ends_with", "now!", "do it now", False),
        ("text.words", "Ass", "you Ass!", True),
        ("text.words", "Ass", "you ass", False),
        ("text.words", "Ass", "Assassin", False),
        ("text.words", "!rules", "type !rules here", True),
        ("text.words", "free  coins", "free coins", False),
        ("text.contains", "c.o.m", "x.c.o.m", True),
        ("text.contains", "c.o.m", "com", False),
    ],
)
def test_none_is_the_raw_text(key: str, term: str, text: str, matches: bool) -> None:
    """No character of a term or of the text is dropped at ``normalize: none``."""
    assert fired(_none_rule(key, term), comment(text)) == (["r"] if matches else [])  # type: ignore[arg-type]


# --- look-alikes from Unicode's data ----------------------------------------------------

LISTED = [
    "idiot", "loser", "stupid", "moron", "fuck", "shit", "bitch", "bastard", "asshole",
    "cunt", "dick", "pussy", "whore", "slut", "retard", "scam", "free coins", "kill yourself",
    "faggot", "wanker", "twat", "cock", "penis", "dumb", "jerk",
]  # fmt: skip


def _unicode_lookalikes() -> dict[str, list[str]]:
    """Each small Latin letter's single-character look-alikes, as confusables.txt (in
    confusable-homoglyphs' JSON) lists them: read here independently of text.py."""
    raw = resources.files("confusable_homoglyphs").joinpath("confusables.json")
    data = json.loads(raw.read_text("utf-8"))
    marks = "\u200e\u200f"
    groups = {key.strip(marks): entries for key, entries in data.items()}
    looks: dict[str, list[str]] = {}
    for letter in string.ascii_lowercase:
        found = {e["c"].strip(marks) for e in groups.get(letter, [])}
        looks[letter] = sorted(c for c in found if len(c) == 1 and not c.isascii())
    return looks


def test_swaps_for_unicode_listed_look_alikes_are_caught() -> None:
    """Words of a list with one to three letters swapped for look-alikes Unicode lists:
    at least 95% caught (all of these 5,000 are, at the time of writing)."""
    looks = _unicode_lookalikes()
    assert sum(len(v) for v in looks.values()) > 550  # the data is there and read
    m = tx.Matcher("standard")
    for term in LISTED:
        m.add(term)
    m.freeze()
    rnd = random.Random(17)
    tried = caught = 0
    missed: list[str] = []
    for term in LISTED:
        swappable = [i for i, c in enumerate(term) if looks.get(c)]
        for _ in range(200):
            chars = list(term)
            for i in rnd.sample(swappable, rnd.randint(1, min(3, len(swappable)))):
                chars[i] = rnd.choice(looks[chars[i]])
            text = "".join(chars)
            tried += 1
            if any(h.word_bounded for h in m.find(f"you {text} now")):
                caught += 1
            else:
                missed.append(text)
    assert caught / tried >= 0.95, missed[:20]
    assert tried == 5000


def test_every_listed_look_alike_of_a_letter_folds_to_it() -> None:
    """Each of Unicode's look-alikes of a small Latin letter folds to that letter, or for
    l to the characters read both as i and l (1, |, I)."""
    for letter, chars in _unicode_lookalikes().items():
        for c in chars:
            folded = tx.fold(c)
            read = {tx_normalize._leet(f"a{folded}", r)[1:] for r in ("i", "l")} | {folded}
            read |= {tx_normalize._fold_alt(c)}
            assert letter in read, (letter, c, hex(ord(c)), folded)
