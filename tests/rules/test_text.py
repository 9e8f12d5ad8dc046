"""Text matching: the normalisation levels, evasions caught, innocent words left alone."""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Sequence

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from modbot.rules import text as tx
from modbot.rules.text import matcher as tx_matcher
from modbot.rules.text import measures as tx_measures
from modbot.rules.text import normalize as tx_normalize
from modbot.rules.text import tables as tx_tables

from .util import comment, fired, words_rule

TERMS = ["ass", "cunt", "cock", "rapist", "fuck", "shit", "hello", "free coins", "idiot"]


@pytest.fixture(scope="module")
def standard() -> object:
    return words_rule(TERMS)


EVASIONS = [
    ("you ass", "plain word"),
    ("ASS!", "case and punctuation"),
    ("a s s", "spaced letters"),
    ("a.s.s", "dotted letters"),
    ("a-s-s", "dashed letters"),
    ("@ss", "leading @ as a"),
    ("4ss", "leet 4"),
    ("c0ck", "leet 0"),
    ("sh!t", "leet !"),
    ("5hit", "leet 5"),
    ("$hit", "leet $"),
    ("1d1ot", "leet 1 as i"),
    ("f*ck", "masked letter"),
    ("f#ck", "masked with #"),
    ("fuuuuck", "stretched letter"),
    ("heeelllooo", "every letter stretched"),
    ("f.r.e.e c.o.i.n.s", "dotted phrase"),
    ("free   coins", "extra spaces"),
    ("freecoins", "phrase glued"),
    ("f r e e c o i n s", "phrase fully spaced"),
    ("ｆｒｅｅ ｃｏｉｎｓ", "fullwidth"),
    ("frее coins", "Cyrillic look-alikes"),
    ("𝐟𝐫𝐞𝐞 coins", "mathematical bold"),
    ("ⓕⓡⓔⓔ coins", "circled letters"),
    ("ѕһіt", "all Cyrillic"),
    ("ĉöçk", "accents"),
    ("c\u0336o\u0336c\u0336k\u0336", "strike-through combining marks"),
    ("ass-hat", "a word joined by a dash"),
    ("the rapist", "a separate word"),
]


@pytest.mark.parametrize(("text", "why"), EVASIONS, ids=[w for _, w in EVASIONS])
def test_evasions_are_caught(standard: object, text: str, why: str) -> None:
    assert fired(standard, comment(text)) == ["words"], why  # type: ignore[arg-type]


INNOCENT = [
    "class",
    "assassin",
    "Scunthorpe",
    "cocktail",
    "therapist",
    "passes the glass",
    "bass guitar",
    "shiitake mushrooms",
    "peacock",
    "Othello and shellos",
    "free of coins",
    "a classic",
    "Sussex",
    "massive",
]


@pytest.mark.parametrize("text", INNOCENT)
def test_innocent_words_are_left_alone(standard: object, text: str) -> None:
    assert fired(standard, comment(text)) == []  # type: ignore[arg-type]


def test_none_level_matches_raw_words_only() -> None:
    e = words_rule(["Ass"], normalize="none")
    assert fired(e, comment("you Ass")) == ["words"]
    assert fired(e, comment("you ass")) == []
    assert fired(e, comment("you 4ss")) == []


def test_basic_level_folds_case_and_width_but_not_leet() -> None:
    e = words_rule(["ass"], normalize="basic")
    assert fired(e, comment("ＡＳＳ")) == ["words"]
    assert fired(e, comment("ASS")) == ["words"]
    assert fired(e, comment("4ss")) == []
    assert fired(e, comment("class")) == []


def test_one_automaton_per_level_whatever_the_number_of_rules() -> None:
    from .util import ruleset

    rules = "\n".join(
        f"  - id: r{i}\n    on: comment\n    when: {{text.words: [term{i}a, term{i}b]}}\n    then: [log]"
        for i in range(50)
    )
    compiled = ruleset("version: 1\nrules:\n" + rules + "\n")
    assert compiled.matchers["standard"].size == 100
    assert len(compiled.matchers) == len(tx.LEVELS)


LINKS = [
    ("visit example.com now", ["example.com"]),
    ("https://x.y/path?q=1", ["x.y"]),
    ("example dot com", ["example.com"]),
    ("example (dot) com", ["example.com"]),
    ("example[.]com", ["example.com"]),
    ("e x a m p l e . c o m", ["example.com"]),
    ("bad . net", ["bad.net"]),
    ("www.bad.co.uk", ["www.bad.co.uk"]),
    ("ＥＸＡＭＰＬＥ.ＣＯＭ", ["example.com"]),
]

NOT_LINKS = ["3.14", "v1.2", "lol.", "i.e. yes", "hello...world", "me@home", "ok so"]


@pytest.mark.parametrize(("text", "expected"), LINKS)
def test_links_are_found(text: str, expected: list[str]) -> None:
    assert tx.find_links(text) == expected


@pytest.mark.parametrize("text", NOT_LINKS)
def test_not_links(text: str) -> None:
    assert tx.find_links(text) == []


def test_allow_list_covers_subdomains_only() -> None:
    assert tx.domain_allowed("tiktok.com", ["tiktok.com"])
    assert tx.domain_allowed("m.tiktok.com", ["tiktok.com"])
    assert tx.domain_allowed("www.tiktok.com", ["tiktok.com"])
    assert not tx.domain_allowed("nottiktok.com", ["tiktok.com"])
    assert not tx.domain_allowed("tiktok.com.evil.io", ["tiktok.com"])


@pytest.mark.parametrize(
    ("text", "length", "caps", "run", "emoji", "mentions", "zalgo"),
    [
        ("hello", 5, 0.0, 2, 0, 0, False),
        ("HELLO WORLD", 11, 1.0, 2, 0, 0, False),
        ("HI", 2, 0.0, 1, 0, 0, False),  # fewer than 5 letters: ratio 0
        ("👍🏽👨‍👩‍👧🇫🇷", 3, 0.0, 1, 3, 0, False),
        ("@a and @b.c but not me@home", 27, 0.0, 1, 0, 2, False),
        ("!!!!!!!", 7, 0.0, 7, 0, 0, False),
        ("z\u0300\u0301\u0302\u0303o", 2, 0.0, 1, 0, 0, True),
        ("é", 1, 0.0, 1, 0, 0, False),
    ],
)
def test_measures(
    text: str, length: int, caps: float, run: int, emoji: int, mentions: int, zalgo: bool
) -> None:
    m = tx.measure(text)
    assert (m.length, m.caps_ratio, m.repeated_chars, m.emoji_count, m.mentions, m.zalgo) == (
        length,
        caps,
        run,
        emoji,
        mentions,
        zalgo,
    )


def test_similarity_key_ignores_case_stretching_and_separators() -> None:
    assert tx.similarity_key("FOLLOW @raid NOW!!!") == tx.similarity_key("follow  @raid now")
    assert tx.similarity_key("heeey") == tx.similarity_key("hey")


# --- properties ------------------------------------------------------------------------

LETTERS = st.text(alphabet=st.characters(codec="utf-8"), max_size=200)


@settings(max_examples=300, deadline=None)
@given(LETTERS)
def test_normalisation_never_raises(text: str) -> None:
    for level in tx.LEVELS:
        tx.words(text, level)
        tx.words(text, level, alt=True)
    tx.find_links(text)
    tx.measure(text)
    tx.similarity_key(text)


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=6),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=6),
)
def test_a_term_inside_a_longer_word_is_not_a_word_hit(prefix: str, suffix: str) -> None:
    """`text.words` never matches a term glued inside a longer ordinary word."""
    term = "zqxj"  # letters that do not squeeze into or out of the term
    assume(not prefix.endswith("z") and not suffix.startswith("j"))  # zzqxjj is zqxj stretched
    m = tx.Matcher("standard")
    m.add(term)
    m.freeze()
    hits = [h for h in m.find(f"{prefix}{term}{suffix}") if h.word_bounded]
    assert hits == []
    assert [h for h in m.find(f"{prefix} {term} {suffix}") if h.word_bounded]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["free coins", "scam", "idiot"]), st.sampled_from([".", "-", " ", "_"]))
def test_separated_letters_still_match(term: str, sep: str) -> None:
    m = tx.Matcher("standard")
    m.add(term)
    m.freeze()
    spread = " ".join(sep.join(word) for word in term.split())
    assert any(h.word_bounded for h in m.find(f"look {spread} here")), spread


def _canonical_general(
    found: Sequence[str], level: tx.Level
) -> tuple[str, tuple[int, ...], list[str], list[int]]:
    """The canonical text word by word: the model the joined-and-squeezed one must match."""
    letters = [tx.START]
    counts = [1]
    starts: list[int] = []
    length = 1
    for i, word in enumerate(found):
        if i:
            letters.append(tx.SPACE)
            counts.append(1)
            length += 1
        starts.append(length)
        if level == "standard":
            s, c = tx.squeeze(word)
            letters.append(s)
            counts.extend(c)
            length += len(s)
        else:
            letters.append(word)
            counts.extend([1] * len(word))
            length += len(word)
    letters.append(tx.END)
    counts.append(1)
    return "".join(letters), tuple(counts), list(found), starts


def _plain_fold(text: str, alt: bool) -> str:
    """The fold in its plain form: every table applied, whatever the text holds."""
    plain = unicodedata.normalize(
        "NFKC", tx_normalize._strip_marks(text.translate(tx_tables.LOOKALIKES))
    )
    if alt:
        plain = plain.replace("I", "l")
    folded = plain.casefold().translate(tx_tables.LOOKALIKES_FOLDED[alt])
    return tx_normalize._strip_marks(folded)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=60), LETTERS)
@example("I am IN", "\u0399\u0456 \uff29x \U0001d408 l\u0406 I \u2160 \u0132 fi\u0301")
def test_the_fast_paths_of_normalisation_agree_with_the_general_ones(
    ascii_text: str, text: str
) -> None:
    """ASCII folding, letters-only words and words without runs skip work that would
    not change them."""
    assert tx.fold(ascii_text) == tx_normalize._fold(ascii_text)
    for t in (ascii_text, text):
        assert tx_normalize.fold_both(t) == (tx_normalize.fold(t), tx_normalize._fold_alt(t))
        for alt in (False, True):
            assert tx_normalize._fold(t, alt) == _plain_fold(t, alt)
    assert tx.basic(ascii_text) == tx_normalize._basic(ascii_text)
    for word in [*ascii_text.split(), *text.split(), ascii_text, text]:
        assert tx.squeeze(word) == tx_normalize._squeeze(word)
    for t in (ascii_text, text):
        found = tx.words(t, "standard")
        assert tx.similarity_key(t) == " ".join(tx.squeeze(w)[0] for w in found)
    for level in tx.LEVELS:
        for found in (tx.words(text, level), tx.words(ascii_text, level)):
            if found:
                canon = tx_matcher._Canonical(tuple(found), level, tx.Reader())
                assert (canon.text, canon.counts, canon.words, canon.starts) == (
                    _canonical_general(found, level)
                )
    for token in tx.fold(text).split() + tx.fold(ascii_text).split():
        if token.isalpha():
            assert tx_normalize._token_words(token, alt=False) == [token]
            assert tx_normalize._token_words(token, alt=True) == [token]


# The plain forms of the regexes and checks that normalize and measures put a cheaper
# one in front of (a literal first, a length sum, a look at the last character).
_PLAIN_MENTION = re.compile(r"(?<![\w@])@[\w.]{1,64}")
_PLAIN_WIDE_GAP = re.compile(r"\s\s")
_PLAIN_BANGS = re.compile(r"[!1]*![!1]*$")
SPACED = st.text(alphabet=st.sampled_from("aiouyexlb1!|@._ \t\u3000\u2003é"), max_size=24)


@settings(max_examples=1000, deadline=None)
@given(SPACED)
@example("such a l o s e r")
@example("a b c d")
@example(" a  b c d")
@example("x@y @z @@w a@b.c")
@example("idiot!!1 k!ll 1d1ot!")
def test_the_cheaper_checks_answer_as_the_plain_regexes(text: str) -> None:
    assert tx_measures._mentions(text) == len(_PLAIN_MENTION.findall(text))
    for folded in (text, tx.fold(text)):
        plain = None
        if "  " not in folded and tx_normalize._BEFORE_SPACED.search(folded) is not None:
            plain = tuple(
                tx_normalize.standard_words(
                    tx_normalize._BEFORE_SPACED.sub(r"\1  ", folded), alt=False
                )
            )
        assert tx_normalize.detached(folded, False) == plain
        tokens = folded.split()
        if sum(map(len, tokens)) + len(tokens) - 1 == len(folded):  # _tokens' shortcut
            assert _PLAIN_WIDE_GAP.search(folded) is None
        if _PLAIN_WIDE_GAP.search(folded) is None or all(len(t) > 1 for t in tokens):
            assert tx_normalize._tokens(folded) == tx_normalize._glue_single_chars(tokens)
        for word in tokens:
            cut = word.rstrip(tx_normalize._TAIL).lstrip(tx_normalize._LEAD)
            if any(c.isalpha() for c in cut):
                assert tx_normalize._edges(word) == _PLAIN_BANGS.sub("", cut)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=60))
@example("a\r\n\r\nb\n\r")
def test_the_ascii_fast_path_measures_like_the_general_one(text: str) -> None:
    assert tx_measures._measure_ascii(
        text, tx_measures.longest_run
    ) == tx_measures._measure_unicode(text)
    # One cluster per character, but for CR LF (UAX #29's GB3).
    assert tx.graphemes(text) == re.findall(r"\r\n|.", text, re.DOTALL)


@settings(max_examples=1000, deadline=None)
@given(
    st.text(
        alphabet=st.one_of(
            st.characters(),
            st.sampled_from("aAßΣσς İ\u0301\u200d\ufe0f👍🏽🇧🇷❤😂 \t\x1c@ÉéＡ"),
        ),
        max_size=40,
    )
)
def test_every_fast_path_measures_like_the_clusters(text: str) -> None:
    """ASCII, and text whose characters are each a cluster, skip the cluster walk: the
    figures are the same."""
    assert tx.measure(text) == tx_measures._measure_unicode(text)


# Marks the interpreter's Unicode (14.0 in Python 3.11) has that the regex module's
# newer one calls a spacing mark (Mc): U+1171E AHOM CONSONANT SIGN MEDIAL RA.
RECATEGORISED = frozenset({0x1171E})


def test_the_marks_dropped_are_the_interpreters_and_the_newer_ones() -> None:
    """Normalisation drops the marks (Mn, Me) of the regex module's Unicode tables: every
    mark this interpreter knows but the named recategorised ones, and the marks assigned
    since, which the interpreter does not know yet (unassigned, Cn, to it)."""
    for code in range(0x110000):
        c = chr(code)
        ours = tx.MARKS.fullmatch(c) is not None
        theirs = unicodedata.category(c) in ("Mn", "Me")
        if ours != theirs:
            assert (theirs and code in RECATEGORISED) or (
                ours and unicodedata.category(c) == "Cn"
            ), hex(code)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from("aab  é中\x02\x03👍"), max_size=30))
def test_squeezing_cuts_every_run_to_one_character(text: str) -> None:
    expected = "".join(c for i, c in enumerate(text) if i == 0 or text[i - 1] != c)
    assert tx.squeezed(text) == expected


def test_remembered_hits_are_the_hits_and_only_short_names_are_kept() -> None:
    m = tx.Matcher("standard")
    m.add("idiot")
    m.freeze()
    for name in ["1d10t_fan", "id1ot", "viewer_42", "x" * tx.REMEMBERED_LENGTH + " idiot"]:
        assert m.find_remembered(name) == m.find(name)
        assert m.find_remembered(name) == m.find(name)  # the second answer is remembered
    assert list(m._remembered) == ["1d10t_fan", "id1ot", "viewer_42"]  # not the long one
    assert m.find_remembered("id1ot")


def test_only_the_last_names_are_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tx_matcher, "REMEMBERED", 3)
    m = tx.Matcher("standard")
    m.add("idiot")
    m.freeze()
    for name in ["a1", "b2", "c3", "id1ot", "e5"]:
        assert m.find_remembered(name) == m.find(name)
    assert list(m._remembered) == ["c3", "id1ot", "e5"]
    assert m.find_remembered("id1ot")[0].words == "idiot"


def test_the_last_texts_are_kept_and_give_the_same_hits(monkeypatch: pytest.MonkeyPatch) -> None:
    """A raid repeats one text: its hits are found once. Long texts are never kept."""
    monkeypatch.setattr(tx_matcher, "RECENT", 3)
    fresh = tx.Matcher("standard")
    m = tx.Matcher("standard")
    for matcher in (fresh, m):
        matcher.add("free coins")
        matcher.freeze()
    texts = ["FREE COINS here", "hi", "fr33 c0ins", "yo", "x" * tx.RECENT_LENGTH + " free coins"]
    for text in [*texts, *texts]:
        assert m.find(text) == fresh._find_all(text)
    assert list(m._recent) == ["hi", "fr33 c0ins", "yo"]  # the oldest went first each time
    assert m.find("fr33 c0ins")[0].words == "free coins"


def _leet_model(word: str, ambiguous_as: str) -> str:
    if not any(c.isalpha() for c in word):
        return word
    out = []
    for c in word:
        if c in tx.LEET:
            out.append(tx.LEET[c])
        elif c in tx.AMBIGUOUS:
            out.append(ambiguous_as)
        elif c in tx.MASKS:
            out.append(tx.MASK)
        else:
            out.append(c)
    return "".join(out)


def _glue_model(tokens: list[str]) -> list[str]:
    """Runs of three or more one-character letter tokens joined, by groups."""
    out: list[str] = []
    for single, group in itertools.groupby(
        tokens, key=lambda t: len(t) == 1 and tx_normalize._letterish(t)
    ):
        run = list(group)
        out.extend(["".join(run)] if single and len(run) >= 3 else run)
    return out


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab1!|@4$*#_- é٣²ⅷ\u0301.x"), max_size=30), st.text())
def test_leet_cleaning_and_gluing_agree_with_their_character_by_character_models(
    word: str, anything: str
) -> None:
    for text in (word, anything):
        for reading in ("i", "l"):
            assert tx_normalize._leet(text, reading) == _leet_model(text, reading)
        kept = "".join(c for c in text if c.isalnum() or c == tx.MASK)
        assert tx_normalize._NOT_KEPT.sub("", text) == kept
        assert tx_normalize._glue_single_chars(text.split()) == _glue_model(text.split())


def _plain_longest_run(text: str) -> int:
    """The longest run of one character inside a word, by a loop (the model)."""
    longest = 0
    for word in text.split():
        previous, run = "", 0
        for c in word:
            run = run + 1 if c == previous else 1
            previous = c
            longest = max(longest, run)
    return longest


@given(st.text(alphabet="aab \t\u3000\x1c\u00a0xx!!\U0001f338\n\u0301", max_size=40))
def test_the_longest_run_by_regex_is_the_loops(text: str) -> None:
    assert tx_measures.longest_run(text) == _plain_longest_run(text)
    assert tx.Reader().longest_run(text) == _plain_longest_run(text)  # word by word, kept
