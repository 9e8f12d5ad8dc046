"""docs/rules.md: every example is a rule file that checks, and every key has an example."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from modbot.rules.compile import load_ruleset
from modbot.rules.diagnostics import errors
from modbot.rules.schema import ACTIONS, CONDITION_KEYS, RULE_KEYS
from tests.helpers import REPO

DOC = REPO / "docs" / "rules.md"
# The lists of rules/moderation.yaml, for examples that stand alone.
LISTS = """\
lists:
  scam: ["free coins", "dm me for promo"]
  slurs: [slurword]
  insults: [idiot]
  trusted: [good_friend]
"""


def _examples() -> list[tuple[int, str]]:
    text = DOC.read_text(encoding="utf-8")
    found = []
    for match in re.finditer(r"```yaml\n(.*?)```", text, re.DOTALL):
        line = text.count("\n", 0, match.start()) + 2
        found.append((line, match.group(1)))
    return found


def _as_file(block: str) -> str:
    if block.lstrip().startswith("version:"):
        return block
    body = "".join(f"  {line}\n" if line else "\n" for line in block.splitlines())
    return f"version: 1\n{LISTS}rules:\n{body}"


@pytest.mark.parametrize(("line", "block"), _examples(), ids=lambda v: str(v)[:12])
def test_every_example_checks(line: int, block: str, tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    (folder / "lists").mkdir(parents=True)
    for name in ("slurs", "trusted"):
        (folder / "lists" / f"{name}.txt").write_text("slurword\n")
    (folder / "example.yaml").write_text(_as_file(block))
    ruleset, diagnostics = load_ruleset([folder])
    problems = [str(d) for d in diagnostics]
    assert ruleset is not None, f"docs/rules.md:{line}: {problems}"
    assert not errors(diagnostics), f"docs/rules.md:{line}: {problems}"
    assert not problems, f"docs/rules.md:{line}: {problems}"
    assert ruleset.rules


def test_every_key_and_action_has_an_example() -> None:
    examples = "\n".join(block for _, block in _examples())
    # user.nickname.X is text.X on the nickname: one example stands for them all.
    keys = [k for k in CONDITION_KEYS if not k.startswith("user.nickname.")]
    for key in [*keys, "user.nickname.words"]:
        assert re.search(rf"(^|\s|-\s){re.escape(key)}:", examples, re.MULTILINE), key
    for key in RULE_KEYS:
        assert re.search(rf"^\s*(- )?{key}:", examples, re.MULTILINE), key
    for action in ACTIONS:
        assert re.search(rf"\b{action}\b", examples), action
