"""Progress of `modbot replay` and `modbot record` on a terminal, and silence off one
(issue 20, item 8); the demo's summary says its state directory is kept."""

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
import threading
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from modbot.cli.progress import Progress, _AboveProgress
from modbot.demo import _Screen, _summary
from modbot.euler.oauth import TokenStore
from modbot.euler.tokens import token_set_from_answer
from modbot.fake import messages as m
from modbot.fake.server import FakeEuler

REPO = Path(__file__).parent.parent
COLUMNS = 40  # narrower than the progress line, so it has to be cut to fit
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

pytestmark = pytest.mark.usefixtures("isolated")


# --- the helper, with a fake clock ------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def drawn(text: str) -> list[str]:
    """Each line the progress helper drew (between carriage returns)."""
    return [ANSI.sub("", s) for s in text.split("\r") if ANSI.sub("", s).strip()]


def test_redraws_at_most_ten_times_a_second_and_reads_the_clock_every_n_events() -> None:
    clock, screen = Clock(), Terminal()
    progress = Progress(screen, "replay", every=100, clock=clock, columns=lambda: 30)
    assert progress.enabled
    reads = clock.reads
    for _ in range(20_000):  # 20,000 events at 10,000 a second: two seconds
        clock.now += 0.0001
        progress.step()
    assert clock.reads - reads == 200  # once per 100 events, not per event
    lines = drawn(screen.getvalue())
    assert 15 <= len(lines) <= 21  # ~10 a second, the first at once
    assert screen.getvalue().count("\r\x1b[K") == len(lines)  # each in place of the last
    assert all(len(line) <= 29 for line in lines), lines  # fitted, the last column left free
    assert lines[0].startswith("replay: 100 events")
    progress.finish()
    assert screen.getvalue().endswith("\n")
    assert ANSI.sub("", screen.getvalue().rsplit("\r", 1)[1]) == "replay: 20,000 events read\n"


def test_the_line_says_events_rate_and_elapsed() -> None:
    clock = Clock()
    progress = Progress(Terminal(), "recording", clock=clock, columns=lambda: 200)
    progress.step(5000)
    clock.now += 2
    assert progress.line(clock.now) == "recording: 5,000 events read, 2,500/s, 2.0s elapsed"
    clock.now += 123
    assert progress.line(clock.now).endswith(", 40/s, 2m05s elapsed")
    clock.now += 3600
    assert progress.line(clock.now).endswith(" 1h02m05s elapsed")
    assert Progress(Terminal(), "x", clock=clock).line(clock.now) == (
        "x: 0 events read, -/s, 0.0s elapsed"
    )


def test_quiet_off_a_terminal_and_on_a_dumb_one(monkeypatch: pytest.MonkeyPatch) -> None:
    clock, pipe = Clock(), io.StringIO()
    progress = Progress(pipe, "replay", clock=clock)
    reads = clock.reads
    for _ in range(1000):
        clock.now += 1
        progress.step()
        progress.tick()
    progress.clear()
    progress.finish()
    assert pipe.getvalue() == ""
    assert clock.reads == reads  # not even the clock is read
    assert progress.count == 1000
    monkeypatch.setenv("TERM", "dumb")  # no erase-line there
    assert not Progress(Terminal(), "replay").enabled
    monkeypatch.setenv("TERM", "xterm")
    assert Progress(Terminal(), "replay").enabled


def test_log_lines_and_other_output_never_start_on_the_progress_row() -> None:
    clock, screen = Clock(), Terminal()
    with Progress(screen, "recording", clock=clock, columns=lambda: 80) as progress:
        progress.step()
        logs = _AboveProgress(progress, screen)
        logs.write("2026-01-01T00:00:00Z [info] stream.connected\n")
        assert logs.isatty()
        progress.clear()  # nothing drawn: nothing written
        assert screen.getvalue().count("\r\x1b[K") == 2
        clock.now += 1
        progress.tick()  # drawn again below the log line
    assert screen.getvalue().endswith("\r\x1b[K")  # an error's sentence starts clean
    rows = screen.getvalue().split("\n")
    assert ANSI.sub("", rows[0].rsplit("\r", 1)[-1]) == (
        "2026-01-01T00:00:00Z [info] stream.connected"
    )


# --- replay and record, on a pseudo-terminal and off one --------------------------------


def terminal_env() -> dict[str, str]:
    env = dict(os.environ)  # the fake Euler's MODBOT_ settings, when a test set them
    env["TERM"] = "xterm"
    env["COLUMNS"] = "200"  # the terminal's own size wins over a stale variable
    return env


def run_in_terminal(
    args: list[str], cwd: Path, drive: Callable[[], None] = lambda: None, timeout: float = 30
) -> str:
    """``modbot ARGS`` with stdin, stdout and stderr on a pseudo-terminal of COLUMNS
    columns; ``drive`` runs while it does; returns what the terminal received."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, COLUMNS, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "modbot", *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        cwd=cwd,
        env=terminal_env(),
        close_fds=True,
    )
    os.close(follower)
    received = bytearray()

    def read() -> None:
        while True:
            ready, _, _ = select.select([leader], [], [], timeout)
            if not ready:
                return
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the command exited and closed the terminal
                return
            if not chunk:
                return
            received.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        drive()
    finally:
        code = proc.wait(timeout)
        reader.join(timeout)
        os.close(leader)
    text = received.decode("utf-8", errors="replace")
    assert code == 0, text
    return text


def run_with_pipes(
    args: list[str], cwd: Path, drive: Callable[[], None] = lambda: None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "modbot", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=terminal_env(),
        text=True,
    )
    drive()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def check_progress(text: str, what: str, events: int) -> list[str]:
    """The progress line was drawn in place, never wider than the terminal, and no other
    line started on its row; returns the lines left on the screen."""
    assert "\r\x1b[K" + what + ": " in text
    rows = text.replace("\r\n", "\n").split("\n")
    for row in rows:
        for segment in row.split("\r"):
            if "events read" in segment:
                assert len(ANSI.sub("", segment)) <= COLUMNS - 1, segment
    screen = [ANSI.sub("", row.rsplit("\r", 1)[-1]) for row in rows]
    shown = [line for line in screen if "events read" in line]
    assert len(shown) == 1, shown  # redrawn in place: one line left, the final figures
    assert shown[0].startswith(f"{what}: {events:,} events read"), shown
    return screen


def events_file(path: Path, count: int) -> Path:
    """``count`` comments, one in ten of them scam spam the example rules act on."""
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            text = "free coins at example dot com" if i % 10 == 0 else f"hello number {i}"
            record = {
                "kind": "comment",
                "ts": 1795550400 + i / 10,
                "streamer": "host_handle",
                "msg_id": str(7301234567890000000 + i),
                "user": {"user_id": str(6812345678901230000 + i % 97), "unique_id": f"v{i % 97}"},
                "text": text,
            }
            out.write(json.dumps(record) + "\n")
    return path


def test_replay_shows_progress_on_a_terminal(tmp_path: Path) -> None:
    events = events_file(tmp_path / "big.jsonl", 2000)
    text = run_in_terminal(
        ["replay", str(events), "--rules", str(REPO / "rules"), "--json"], tmp_path
    )
    screen = check_progress(text, "replay", 2000)
    assert "2000 events replayed, 0 bad lines skipped" in screen
    # Each decision on a line of its own: the progress line was taken off first.
    decisions = [line for line in screen if line.startswith("{")]
    assert decisions
    assert all(json.loads(line)["rule"] for line in decisions)


def test_replay_off_a_terminal_prints_no_progress(tmp_path: Path) -> None:
    events = events_file(tmp_path / "big.jsonl", 2000)
    done = run_with_pipes(
        ["replay", str(events), "--rules", str(REPO / "rules"), "--json"], tmp_path
    )
    for stream in (done.stdout, done.stderr):
        assert "events read" not in stream
        assert "\r" not in stream
        assert "\x1b" not in stream
    assert done.stderr.endswith("2000 events replayed, 0 bad lines skipped\n")
    assert all(json.loads(line)["rule"] for line in done.stdout.splitlines())


def grant(fake: FakeEuler, state: Path) -> None:
    answer = fake.issue_tokens(["webcast:bulk_live_check"])
    TokenStore(state).save(token_set_from_answer(answer, time.time()))


def stream_to(fake: FakeEuler, count: int) -> Callable[[], None]:
    """Once `modbot record` is connected: ``count`` comments, then the stream ends."""

    def drive() -> None:
        deadline = time.monotonic() + 20
        while not fake.connections("host_handle") and time.monotonic() < deadline:
            time.sleep(0.02)  # waiting for the subprocess to connect, not for time to pass
        portal = fake.portal  # type: ignore[attr-defined]
        room = fake.streamer("host_handle")
        for start in range(0, count, 50):
            batch = [
                m.chat(
                    room.room_id,
                    m.Viewer(f"v{i}", str(6822222222222220000 + i)),
                    "hi",
                    fake.now_ms(),
                )
                for i in range(start, min(count, start + 50))
            ]
            portal.call(fake.emit, "host_handle", batch)
        portal.call(fake.go_offline, "host_handle")

    return drive


def test_record_shows_progress_on_a_terminal(euler_env: FakeEuler, tmp_path: Path) -> None:
    state = tmp_path / "state"
    grant(euler_env, state)
    output = tmp_path / "stream.jsonl"
    args = ["record", "host_handle", "-o", str(output), "--state-dir", str(state)]
    text = run_in_terminal(args, tmp_path, stream_to(euler_env, 300))
    assert len(output.read_text(encoding="utf-8").splitlines()) == 301  # and stream_end
    screen = check_progress(text, "recording", 301)
    assert "Recorded 301 events." in screen
    # Log lines (stream.connected ...) start on rows of their own.
    assert [line for line in screen if "stream.connected" in line]
    assert not [line for line in screen if "events read" in line and "stream." in line]


def test_record_off_a_terminal_prints_no_progress(euler_env: FakeEuler, tmp_path: Path) -> None:
    state = tmp_path / "state"
    grant(euler_env, state)
    output = tmp_path / "stream.jsonl"
    args = ["record", "host_handle", "-o", str(output), "--state-dir", str(state), "--json"]
    done = run_with_pipes(args, tmp_path, stream_to(euler_env, 300))
    for stream in (done.stdout, done.stderr):
        assert "events read" not in stream
        assert "\r" not in stream
    assert json.loads(done.stdout) == {
        "streamer": "host_handle",
        "output": str(output),
        "events": 301,
    }


# --- the demo's summary -----------------------------------------------------------------


def test_the_demo_summary_says_its_state_directory_is_kept(tmp_path: Path) -> None:
    state = tmp_path / "modbot-demo-abc"
    state.mkdir(mode=0o700)
    out = io.StringIO()
    anyio.run(_summary, state, True, _Screen(out, 10), None)
    text = " ".join(out.getvalue().split())
    assert (
        f"The demo's state directory {state} (its audit log and fake grant) is kept for "
        "`modbot audit` and `modbot undo`; delete it when done." in text
    )
