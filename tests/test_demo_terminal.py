"""`modbot demo` in an 80-column terminal, a re-run into its state directory, and
`--record` then `modbot replay` (issue 20, item 2)."""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from modbot.cli import main
from modbot.events import format_ts

REPO = Path(__file__).parent.parent
COLUMNS = 80
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# A decision line: elapsed, verdict, rule, action, @viewer, comment.
DECISION = re.compile(
    r"^\s*\d+\.\ds (done|skipped|observed|failed|pending)\s+(\S+)\s+(.*?) @(\S+) (.*)$"
)

pytestmark = pytest.mark.usefixtures("isolated")


def run_in_terminal(args: list[str], cwd: Path, timeout: float = 60) -> str:
    """Run ``modbot ARGS`` with stdout and stderr on a pseudo-terminal of 80 columns;
    returns what the terminal received."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, COLUMNS, 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODBOT_")}
    env["COLUMNS"] = "200"  # the terminal's own size wins over a stale variable
    proc = subprocess.Popen(
        [sys.executable, "-m", "modbot", *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        cwd=cwd,
        env=env,
        close_fds=True,
    )
    os.close(follower)
    received = bytearray()
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], timeout)
            if not ready:
                raise AssertionError(
                    "the demo stopped writing: " + received.decode(errors="replace")
                )
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the demo exited and closed the terminal
                break
            if not chunk:
                break
            received += chunk
    finally:
        os.close(leader)
        code = proc.wait(timeout)
    text = received.decode("utf-8", errors="replace")
    assert code == 0, text
    return text


def screen_lines(text: str) -> list[str]:
    """What stays on the screen, line by line: a carriage return and erase-line
    (the progress line redrawn) starts the line over."""
    lines = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        segments = raw.split("\r")
        lines.append(ANSI.sub("", segments[-1]))
    return lines


def test_the_demo_reads_well_in_80_columns(tmp_path: Path) -> None:
    state = tmp_path / "state"
    text = run_in_terminal(
        ["demo", "--state-dir", str(state), "--speed", "12", "--duration", "40"], tmp_path
    )
    lines = screen_lines(text)
    # Every physical chunk written between line ends fits: nothing wraps.
    for raw in text.replace("\r\n", "\n").split("\n"):
        for segment in raw.split("\r"):
            assert len(ANSI.sub("", segment)) <= COLUMNS, segment
    # No info-level log line (the daemon's `decision ...` lines among them).
    assert not [line for line in lines if re.search(r"\[info|\"level\": \"info", line)]
    assert not [line for line in lines if "decision action=" in line]
    # The progress line is redrawn in place: its copies are on one screen line, except
    # the final one printed after the last decision.
    progress = [line for line in lines if re.search(r"^\[\s*\d+s of ~\d+s\] stream", line)]
    assert len(progress) == 1, progress
    assert text.count("\r\x1b[K[") > 3  # redrawn several times
    # Each decision once: no (verdict, rule, action, viewer, comment) line twice,
    # and as many decision lines as audit entries.
    decisions = [line for line in lines if DECISION.match(line)]
    assert decisions
    keys = Counter(line.split("s ", 1)[1] for line in decisions)
    audit = io.StringIO()
    assert (
        main(
            ["audit", "--state-dir", str(state), "--format", "json", "--limit", "1000"],
            stdout=audit,
        )
        == 0
    )
    rows = [json.loads(line) for line in audit.getvalue().splitlines()]
    assert len(decisions) == len(rows)
    assert (
        max(keys.values())
        <= Counter((r["rule"], r["action"], r["msg_id"], r["status"]) for r in rows).most_common(1)[
            0
        ][1]
    )
    # The verdict is the audit outcome; a skipped one says why, on the next line.
    statuses = Counter(DECISION.match(line).group(1) for line in decisions)  # type: ignore[union-attr]
    assert statuses == Counter(r["status"] for r in rows)
    assert "[acting]" not in text
    skipped = [r for r in rows if r["status"] == "skipped"]
    assert skipped
    for row in skipped:
        why = row["detail"].rpartition("; not done: ")[2]
        assert why[:40] in text.replace("\r\n", " ").replace("\n", " ") or why[:20] in text
    assert "Why not done:" in text


def test_record_replay_and_a_rerun_that_starts_fresh(tmp_path: Path, capsys) -> None:
    """--record writes what `modbot replay` reads at once; a second demo into the same
    directory empties it first and says so (no entry or timer of the first run is left
    to fire at the new fake server)."""
    state = tmp_path / "state"
    record = tmp_path / "demo.jsonl"
    args = ["demo", "--state-dir", str(state), "--speed", "20", "--duration", "30", "-q"]
    first = io.StringIO()
    assert main([*args, "--record", str(record)], stdout=first) == 0, first.getvalue()
    assert f"modbot replay {record} --rules rules/" in first.getvalue()
    lines = record.read_text(encoding="utf-8").splitlines()
    assert len(lines) > 20
    capsys.readouterr()
    replayed = io.StringIO()
    replay = ["replay", str(record), "--rules", str(REPO / "rules"), "--json"]
    assert main(replay, stdout=replayed) == 0
    assert f"{len(lines)} events replayed, 0 bad lines skipped" in capsys.readouterr().err
    rules = {json.loads(line)["rule"] for line in replayed.getvalue().splitlines()}
    assert {"scam-links", "insults", "slurs"} <= rules

    before = [json.loads(row) for row in _audit(state).splitlines()]
    rerun = format_ts(datetime.now(UTC))  # as the audit log writes its times
    again = io.StringIO()
    assert main(args, stdout=again) == 0, again.getvalue()
    assert f"{state} held an earlier demo: starting fresh" in again.getvalue()
    after = [json.loads(row) for row in _audit(state).splitlines()]
    # Nothing of the first run is left: the ids start again at 1 and every row was
    # written by the second run. (How many rows each run leaves depends on how many of
    # its timers fall due before it ends, so the counts are not compared.)
    assert before
    assert after
    assert min(row["id"] for row in after) == 1
    assert all(row["ts"] >= rerun for row in after), [r["ts"] for r in after][:5]
    assert not [row for row in after if row["status"] in ("failed", "pending")]


def test_a_demo_refuses_a_directory_that_is_not_its_own(tmp_path: Path, capsys) -> None:
    state = tmp_path / "real"
    state.mkdir(mode=0o700)
    (state / "audit.db").write_bytes(b"")
    assert main(["demo", "--state-dir", str(state), "--duration", "5"]) == 2
    assert "not a `modbot demo` state directory" in capsys.readouterr().err
    assert (state / "audit.db").exists()


def _audit(state: Path) -> str:
    out = io.StringIO()
    assert (
        main(
            ["audit", "--state-dir", str(state), "--format", "json", "--limit", "1000"], stdout=out
        )
        == 0
    )
    return out.getvalue()
