"""`rules check` on reply and warn texts: fields that stay empty, texts that can render empty,
and texts the rules' own checks would never let the bot say."""

from __future__ import annotations

import textwrap

import pytest

from modbot.events import User
from modbot.rules.compile import compile_texts
from modbot.rules.engine import Engine
from tests.rules.util import T0, comment, ruleset


def warnings_of(rules: str) -> list[str]:
    compiled, diagnostics = compile_texts({"rules.yaml": textwrap.dedent(rules)})
    assert compiled is not None, [str(d) for d in diagnostics]
    return [d.message for d in diagnostics if d.severity == "warning"]


def test_duration_without_a_mute_is_reported() -> None:
    found = warnings_of(
        """
        version: 1
        rules:
          - id: r
            on: comment
            when: {text.words: [bad]}
            then: [ban, {reply: "banned for {duration}"}]
        """
    )
    assert found == ["reply: {duration} is always empty here: the rule's then has no mute"]


def test_duration_with_a_mute_is_fine_and_so_are_ordinary_texts() -> None:
    assert (
        warnings_of(
            """
            version: 1
            rules:
              - id: r
                on: comment
                when: {text.words: [bad]}
                then: [{mute: 5m}, {reply: "@{user.unique_id} muted for {duration}"}]
            """
        )
        == []
    )


def test_a_text_made_only_of_fields_can_render_empty() -> None:
    found = warnings_of(
        """
        version: 1
        rules:
          - id: r
            on: comment
            when: {text.words: [bad]}
            then: [{reply: " {user.nickname} \u200b"}]
            escalate: {window: 1h, steps: [warn, ban]}
            warn: "{user.nickname}{streamer}"
        """
    )
    assert len(found) == 2
    assert all("only viewer fields" in f and "not sent" in f for f in found)


def test_a_text_the_rules_would_punish_is_never_sent() -> None:
    found = warnings_of(
        """
        version: 1
        rules:
          - id: slurs
            on: comment
            when: {text.words: [slurword]}
            then: [ban]
          - id: r
            on: comment
            when: {text.words: [bad]}
            then: [{reply: "no slurword here, see scam.com"}]
        """
    )
    assert len(found) == 1
    assert found[0].startswith("rule 'r': 'no slurword here, see scam.com' is never sent:")


NICKNAME_ONLY = """
version: 1
lists:
  slurs: [slurword]
rules:
  - id: nick-slurs
    on: comment
    when: {user.nickname.words: "@slurs"}
    then: [ban]
  - id: nick-equals
    on: comment
    when: {user.nickname.equals: [badname]}
    then: [ban]
  - id: anchored
    on: comment
    when: {text.regex: "^kill yourself$"}
    then: [ban]
  - id: welcome
    on: comment
    when: {text.contains: hello}
    then:
      - reply: "Welcome, this stream has rules: be kind, no spam, no links, have fun! Goodbye {user.nickname}"
"""


@pytest.mark.parametrize("nickname", ["slurword", "badname", "kill yourself"])
def test_a_viewer_field_is_checked_wherever_it_lands_in_the_reply(nickname: str) -> None:
    """A term of a nickname-only rule past the 64th character, a term the rule matches as
    the whole nickname, a pattern anchored to a whole comment: none is said."""
    rules = Engine(ruleset(NICKNAME_ONLY))
    who = User(user_id="681", unique_id="v1", nickname=nickname)
    (reply,) = [d for d in rules.evaluate(comment("hello", who=who), T0) if d.action == "reply"]
    assert reply.suppressed is not None
    assert reply.suppressed.startswith("not said: the message would trip rule")
    assert len(reply.text or "") > 64


def test_an_innocent_nickname_is_said() -> None:
    rules = Engine(ruleset(NICKNAME_ONLY))
    who = User(user_id="681", unique_id="v1", nickname="Anna")
    (reply,) = [d for d in rules.evaluate(comment("hello", who=who), T0) if d.action == "reply"]
    assert reply.suppressed is None
    assert (reply.text or "").endswith("Goodbye Anna")
