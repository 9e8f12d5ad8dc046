"""`modbot demo`: the real daemon against the fake server, decisions shown, audit kept."""

from __future__ import annotations

import io
import json
import re
import stat
from pathlib import Path

import pytest

from modbot.cli import main

REPO = Path(__file__).parent.parent


# No MODBOT_ settings from the machine; the working directory is empty.
pytestmark = pytest.mark.usefixtures("isolated")


def test_the_demo_moderates_the_scripted_stream(tmp_path: Path) -> None:
    state = tmp_path / "demo"
    out = io.StringIO()
    code = main(
        [
            "demo",
            "--state-dir",
            str(state),
            "--rules",
            str(REPO / "rules"),
            "--speed",
            "6",
            "--duration",
            "40",
            "-q",
        ],
        stdout=out,
    )
    text = out.getvalue()
    assert code == 0, text
    assert "@grumpy" in text
    assert f"Audit log: {state / 'audit.db'}" in text
    audit = io.StringIO()
    assert (
        main(
            ["audit", "--state-dir", str(state), "--format", "json", "--limit", "1000"],
            stdout=audit,
        )
        == 0
    )
    rows = [json.loads(line) for line in audit.getvalue().splitlines()]
    done = {(r["action"]) for r in rows if r["status"] == "done"}
    assert {"mute", "ban", "reply", "comments"} <= done
    # The moderator's insult and the ordinary chat were never actioned.
    assert not any(r["unique_id"] in ("mod_max", "ana", "ben", "chloe") for r in rows)
    # The progress line (not a terminal here: plain lines) ends with the totals.
    assert re.search(
        r"s\] stream (live|offline): \d+ events read, \d+ decisions, \d+ actions done", text
    )

    # Undo works at once, against the demo's fake server brought back for the command.
    assert stat.S_IMODE((state / "demo.json").stat().st_mode) == 0o600
    ban = next(r for r in rows if r["action"] == "ban" and r["status"] == "done")
    undone = io.StringIO()
    code = main(["undo", "--state-dir", str(state), str(ban["id"]), "-q"], stdout=undone)
    assert code == 0, undone.getvalue()
    assert "demo's fake Euler server" in undone.getvalue()
    assert re.search(rf"#{ban['id']}: undone by #\d+ \(unban(ned)?\)", undone.getvalue())
    again = io.StringIO()
    assert main(["undo", "--state-dir", str(state), str(ban["id"]), "-q"], stdout=again) == 1
    assert "already undone" in again.getvalue()


def test_the_demo_needs_a_rules_directory(tmp_path: Path) -> None:
    assert main(["demo", "--rules", str(tmp_path / "missing")]) == 2
