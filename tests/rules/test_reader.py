"""The ruleset's kept readings of texts: the same answers as the functions, and owned by
the ruleset (a reload starts with nothing kept)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from modbot.rules import text as tx
from modbot.rules.engine import Engine
from modbot.rules.text.links import find_links
from modbot.rules.text.matcher import Hit, Matcher
from modbot.rules.text.normalize import detached, fold_as, key_of, readings, spliced
from tests.rules.util import comment, ruleset, run

TEXTS = st.text(
    alphabet=st.sampled_from("aIl1!|@ .-*oé\u0301\u13a5\U0001d41a sxyz😂👍🏽\u200d"), max_size=30
)
# Texts with the characters the two readings differ by, look-alikes of I among them
# (Greek capital iota, Cyrillic i, the dotless i), and the words of MATCHED's terms.
READ_TWICE = st.lists(
    st.sampled_from(
        [
            "idiot",
            "1d1ot",
            "!d!ot",
            "|oser",
            "loser",
            "l",
            "I",
            "i",
            "a",
            "free",
            "c0ins",
            "coins",
            "@",
            "@ss",
            "ass",
            "f@ck",
            "1",
            "!",
            "|",
            "!!",
            "\u0399",
            "\u0456",
            "\u0131",
            "x",
            "ok",
            "l o s e r",
            "such",
            "s l u t",
            "hi",
            ".",
            "-",
            "*",
            "k!ll",
            "ki||",
            "you",
            "1234",
            "2024",
            "0",
            "l33t",
        ]
    ),
    max_size=14,
).map(lambda parts: "".join(p + (" " if i % 3 else "") for i, p in enumerate(parts)))
MATCHED = ["idiot", "loser", "free coins", "ass", "kill you", "slut", "a b c", "fuck"]


def _plainly(matcher: Matcher, text: str) -> list[tuple[int, str, bool, bool, bool]]:
    """What ``Matcher.find`` answers, worked out the plain way: every reading read and
    searched whole."""
    found = tx.words(text, "standard")
    hits: list[Hit] = matcher._find(tuple(found))
    readings: list[list[str]] = []
    ambiguous = tx.has_ambiguous(text)
    if ambiguous:
        other = tx.words(text, "standard", alt=True)
        if other != found:
            readings.append(other)
    if " " in text:
        for alt in (False, True) if ambiguous else (False,):
            apart = detached(fold_as(text, alt), alt)
            if apart is not None and list(apart) != found and list(apart) not in readings:
                readings.append(list(apart))
    seen = {(h.term_id, h.words) for h in hits}
    for reading in readings:
        for hit in matcher._find(tuple(reading)):
            if (hit.term_id, hit.words) not in seen:
                seen.add((hit.term_id, hit.words))
                hits.append(hit)
    return [(h.term_id, h.words, h.at_start, h.at_end, h.word_bounded) for h in hits]


@settings(max_examples=500, deadline=None)
@given(st.one_of(READ_TWICE, TEXTS))
def test_the_other_reading_is_read_again_only_where_it_differs(text: str) -> None:
    """The other reading, built from the tokens read differently, is the whole other
    reading; and the matcher, searching it only around them, finds what a search of
    every reading finds."""
    found, splices = readings(fold_as(text, False), fold_as(text, True))
    assert found == tx.words(text, "standard")
    whole = tx.words(text, "standard", alt=True)
    assert list(spliced(found, splices)) == whole
    assert bool(splices) == (whole != found)
    reader = tx.Reader()
    assert reader.splices(text) == splices
    matcher = Matcher("standard")
    for term in MATCHED:
        matcher.add(term)
    matcher.freeze()
    # The same hits, in the same order (a rule names the first that fits)
    assert [
        (h.term_id, h.words, h.at_start, h.at_end, h.word_bounded) for h in matcher.find(text)
    ] == _plainly(matcher, text)


RULES = """
version: 1
rules:
  - id: words
    on: comment
    when: {text.words: [idiot, free coins]}
    then: [log]
  - id: copies
    on: comment
    when: {repeat: {count: 3, within: 1m, per: room, similarity: 0.85}}
    then: [log]
  - id: loud
    on: comment
    when: {text.caps_ratio: ">= 0.8", text.length: ">= 5"}
    then: [log]
  - id: links
    on: comment
    when: {text.links: {allow: [example.com]}}
    then: [log]
"""


@settings(max_examples=300, deadline=None)
@given(TEXTS)
def test_the_kept_readings_are_the_functions(text: str) -> None:
    reader = tx.Reader()
    for _ in range(2):  # worked out, then kept
        for alt in (False, True):
            assert reader.fold(text, alt) == fold_as(text, alt)
            assert list(reader.words(text, "standard", alt)) == tx.words(text, "standard", alt=alt)
            assert reader.detached(text, alt) == detached(fold_as(text, alt), alt)
        for level in ("none", "basic"):
            assert list(reader.words(text, level)) == tx.words(text, level)
        assert reader.similarity_key(text) == tx.similarity_key(text)
        for level in tx.LEVELS:
            found = tx.words(text, level)
            assert reader.squeezed(tuple(found)) == key_of(found)
        assert reader.measure(text) == tx.measure(text)
        assert reader.links(text) == find_links(text)


def test_each_ruleset_keeps_its_own_readings_and_a_reload_starts_with_none() -> None:
    old = ruleset(RULES)
    engine = Engine(old)
    for i, text in enumerate(["you IDIOT!!", "free c0ins at bad.com", "HELLO THERE"]):
        run(engine, comment(text, at=i))
    assert old.reader._readings
    assert old.reader._measures
    assert old.reader._keys
    # every matcher of a ruleset reads through its one reader
    assert all(m.reader is old.reader for m in old.matchers.values())
    new = ruleset(RULES)
    assert new.reader is not old.reader
    assert not new.reader._readings
    assert not new.reader._measures
    assert not new.reader._keys
    engine.swap(new)
    run(engine, comment("you IDIOT!!", at=9))
    assert list(new.reader._keys) == ["you IDIOT!!"]


def test_a_long_word_is_worked_out_and_not_kept() -> None:
    """A raid of one-word 10,000-character comments must not fill the per-word tables."""
    reader = tx.Reader()
    word = "ab" * 5000 + "!"
    assert reader.squeezed((word,)) == key_of([word])
    assert reader.longest_run(word) == 1
    assert reader.token_words(word, False) == tuple(tx.words(word, "standard"))
    assert not reader._squeezed
    assert not reader._runs
    assert not reader._tokens
    assert not reader._joined
    assert reader.squeezed(("a" * 4000, "b" * 4000)) == "a b"  # short squeezed, long words
    assert not reader._joined
    reader.squeezed(("short",))
    assert list(reader._squeezed) == ["short"]
    assert list(reader._joined) == [("short",)]


def test_what_is_kept_is_bounded() -> None:
    reader = tx.Reader()
    for i in range(3 * tx.RECENT):
        reader.similarity_key(f"text number {i}")
        reader.measure(f"text number {i}")
    assert len(reader._keys) == tx.RECENT
    assert len(reader._measures) == tx.RECENT
    assert len(reader._joined) == tx.RECENT
    assert "text number 0" not in reader._keys  # the first added went first
