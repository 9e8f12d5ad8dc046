"""Small builders for rule tests: compile YAML text, make events at known times."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from typing import Any

from modbot.events import Event, Gift, User
from modbot.rules.compile import CompiledRuleset, compile_texts
from modbot.rules.diagnostics import errors
from modbot.rules.engine import Decision, Engine

T0 = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)


def ruleset(yaml_text: str, **files: str) -> CompiledRuleset:
    """Compile one rule file (plus any extra named files); fail loudly on errors."""
    texts = {"rules.yaml": textwrap.dedent(yaml_text)}
    texts.update({name: textwrap.dedent(text) for name, text in files.items()})
    compiled, diagnostics = compile_texts(texts)
    assert not errors(diagnostics), [str(d) for d in diagnostics]
    assert compiled is not None
    return compiled


def engine(yaml_text: str) -> Engine:
    return Engine(ruleset(yaml_text))


def user(n: int | str = 1, **flags: Any) -> User:
    return User(user_id=f"68{n}", unique_id=f"viewer_{n}", nickname=f"Viewer {n}", **flags)


def comment(
    text: str,
    *,
    who: User | None = None,
    at: float = 0.0,
    kind: str = "comment",
    language: str = "",
    gift: Gift | None = None,
    room: str = "7300000000000000001",
    streamer: str = "host",
) -> Event:
    return Event(
        kind=kind,  # type: ignore[arg-type]
        ts=T0 + timedelta(seconds=at),
        streamer=streamer,
        room_id=room,
        msg_id=f"m{at}",
        user=who or user(),
        text=text,
        language=language,
        gift=gift,
    )


def run(e: Engine, event: Event) -> list[Decision]:
    return e.evaluate(event, event.ts)


def fired(e: Engine, event: Event) -> list[str]:
    """The ids of the rules whose decisions are carried out for this event."""
    return sorted({d.rule for d in run(e, event) if d.enforced})


def words_rule(terms: list[str], normalize: str = "standard") -> Engine:
    quoted = ", ".join(repr(t) for t in terms)
    return engine(
        f"""
        version: 1
        rules:
          - id: words
            on: comment
            normalize: {normalize}
            when: {{text.words: [{quoted}]}}
            then: [log]
        """
    )
