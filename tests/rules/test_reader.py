"""The ruleset's kept readings of texts: the same answers as the functions, and owned by
the ruleset (a reload starts with nothing kept)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from modbot.rules import text as tx
from modbot.rules.engine import Engine
from modbot.rules.text.links import find_links
from modbot.rules.text.normalize import detached, fold_as
from tests.rules.util import comment, ruleset, run

TEXTS = st.text(
    alphabet=st.sampled_from("aIl1!|@ .-*oé\u0301\u13a5\U0001d41a sxyz😂👍🏽\u200d"), max_size=30
)
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
        assert reader.has_ambiguous(text) == tx.has_ambiguous(text)
        assert reader.similarity_key(text) == tx.similarity_key(text)
        assert reader.measure(text) == tx.measure(text)
        assert reader.links(text) == find_links(text)


def test_each_ruleset_keeps_its_own_readings_and_a_reload_starts_with_none() -> None:
    old = ruleset(RULES)
    engine = Engine(old)
    for i, text in enumerate(["you IDIOT!!", "free c0ins at bad.com", "HELLO THERE"]):
        run(engine, comment(text, at=i))
    assert old.reader._words
    assert old.reader._measures
    assert old.reader._keys
    # every matcher of a ruleset reads through its one reader
    assert all(m.reader is old.reader for m in old.matchers.values())
    new = ruleset(RULES)
    assert new.reader is not old.reader
    assert not new.reader._words
    assert not new.reader._measures
    assert not new.reader._keys
    engine.swap(new)
    run(engine, comment("you IDIOT!!", at=9))
    assert list(new.reader._keys) == ["you IDIOT!!"]


def test_what_is_kept_is_bounded() -> None:
    reader = tx.Reader()
    for i in range(3 * tx.RECENT):
        reader.similarity_key(f"text number {i}")
        reader.measure(f"text number {i}")
    assert len(reader._keys) == tx.RECENT
    assert len(reader._measures) == tx.RECENT
    assert "text number 0" not in reader._keys  # the first added went first
