"""`rules check` on reply and warn texts: fields that stay empty, texts that can render empty,
and texts the rules' own checks would never let the bot say."""

from __future__ import annotations

import textwrap

from modbot.rules.compile import compile_texts


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
