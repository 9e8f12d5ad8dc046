"""A duration under a key of a rule (``within``, ``escalate.window``): its problems are
said at the value, or at the mapping when the key is missing."""

from __future__ import annotations

import textwrap

from modbot.rules.compile import compile_texts

RULES = """\
version: 1
rules:
  - id: no-within
    on: comment
    when: {rate: {count: 3, per: user}}
    then: {reply: slow down}
  - id: bad-within
    on: comment
    when: {repeat: {count: 3, within: never}}
    then: {reply: slow down}
  - id: bad-window
    on: comment
    when: {text.contains: [x]}
    escalate: {window: soon, steps: [warn]}
  - id: no-window
    on: comment
    when: {text.contains: [y]}
    escalate:
      steps: [warn, ban]
"""


def test_duration_problems_name_the_key_and_the_place() -> None:
    compiled, diagnostics = compile_texts({"r.yaml": textwrap.dedent(RULES)})
    assert compiled is None
    expected = "expected a duration like 30s, 10m, 2h or 1d"
    assert [str(d) for d in diagnostics] == [
        f"r.yaml:5:18: error: rate.within: {expected}, got None",
        f"r.yaml:9:39: error: repeat.within: {expected}, got 'never'",
        f"r.yaml:14:24: error: escalate.window: {expected}, got 'soon'",
        f"r.yaml:19:7: error: escalate.window: {expected}, got None",
    ]
