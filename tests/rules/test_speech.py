"""The speech check puts a message only to the rules its terms can trip: the same
answer as putting it to every text check of every enforcing rule."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from modbot.rules import conditions as c
from modbot.rules.speech import SpeechCheck, _NoRates, _said
from tests.rules.util import ruleset

WORDS = ["idiot", "loser", "free", "coins", "spam", "hello", "there", "1d1ot", "l0ser"]
RULES = """
version: 1
rules:
  - id: words
    on: comment
    when: {text.words: [idiot, free coins]}
    then: [log]
  - id: names
    on: comment
    when: {user.nickname.words: [loser]}
    then: [log]
  - id: starts
    on: comment
    when: {text.starts_with: [spam]}
    then: [log]
  - id: pattern
    on: comment
    when: {text.regex: "^hello there$"}
    then: [log]
  - id: observed
    on: comment
    mode: observe
    when: {text.words: [hello]}
    then: [log]
""" + "".join(
    f"""  - id: extra-{i}
    on: comment
    when: {{text.words: [word{i}, "other {i}"]}}
    then: [log]
"""
    for i in range(40)
)
CHECKS = SpeechCheck(ruleset(RULES))
MESSAGES = st.lists(
    st.one_of(st.sampled_from(WORDS), st.builds("word{}".format, st.integers(0, 45))),
    max_size=6,
).map(" ".join)


def _plainly(speech: SpeechCheck, text: str, fields: tuple[str, ...]) -> str | None:
    """Every text check of every enforcing rule, in order, on each part (of a message
    that is not blank and holds no link: those are refused before any rule)."""
    for part in (text, *fields):
        if not part:
            continue
        ctx = c.EvalContext(_said(part), 0.0, speech.matchers, _NoRates())
        for rule_id, check in speech.checks:
            reason = check(ctx)
            if reason is not None:
                return f"the message would trip rule {rule_id!r} ({reason})"
    return None


@settings(max_examples=300, deadline=None)
@given(MESSAGES.filter(bool), st.lists(MESSAGES, max_size=2).map(tuple))
def test_a_message_is_put_to_the_rules_its_terms_name(text: str, fields: tuple[str, ...]) -> None:
    assert CHECKS._problem(text, fields) == _plainly(CHECKS, text, fields)


def test_what_trips_and_what_does_not() -> None:
    assert "'words'" in (CHECKS.problem("you idiot") or "")
    assert "'names'" in (CHECKS.problem("bye loser") or "")  # a nickname rule counts too
    assert "'starts'" in (CHECKS.problem("no spam here") or "")  # anywhere, as a word
    assert "'pattern'" in (CHECKS.problem("hello there") or "")
    assert "'extra-7'" in (CHECKS.problem("say other 7") or "")
    assert CHECKS.problem("hello") is None  # an observing rule does not hold speech back
    assert CHECKS.problem("Chat paused for 2 minutes") is None
