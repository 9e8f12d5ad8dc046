"""Guards in the style of httpx's export test: the project's own files agree with each other."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    """The test command the README gives is the one .ci/run runs."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)\n```", readme, re.DOTALL)
    assert blocks[0].endswith("modbot demo")
    test_command = blocks[1].split("&&")[-1].strip()
    assert test_command == "pytest"
    # .ci/run runs the README's command itself (tests/test_ci.py checks the parts).
    assert 'eval "$install_part"' in ci
    assert 'eval "$test_part"' in ci
    assert "ruff check" in ci
    assert "mypy" in ci


def test_readme_shows_the_demo_first():
    """The README opens with the demo command, the first one a new user runs."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.index("modbot demo") < readme.index("pytest")
