"""Drive modbot from the outside (I/O): the fake Euler server in a thread, ``modbot run``
as a subprocess, and the audit database read directly. Shared by tests and bench/."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from anyio.from_thread import BlockingPortal, start_blocking_portal

from modbot.fake.server import FakeEuler
from modbot.loopback import LoopbackServer, serve


@contextlib.contextmanager
def fake_in_thread(fake: FakeEuler) -> Iterator[LoopbackServer]:
    """Serve ``fake`` from its own event loop thread, so sync code (the CLI) can call it."""
    with fake_and_portal(fake) as (server, _):
        yield server


@contextlib.contextmanager
def fake_and_portal(fake: FakeEuler) -> Iterator[tuple[LoopbackServer, BlockingPortal]]:
    """Like ``fake_in_thread``, with the portal to call the fake on its own loop."""
    with (
        start_blocking_portal("asyncio") as portal,
        portal.wrap_async_context_manager(serve(fake.app)) as server,
    ):
        yield server, portal


def wait(check: Callable[[], object], timeout: float = 20.0) -> None:
    """Poll a condition from sync test code (a subprocess, a file, the fake via its portal)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            msg = "timed out"
            raise TimeoutError(msg)
        time.sleep(0.05)


def statuses(db: Path) -> list[tuple[str, str, str]]:
    """(user_id, status, params) of every audit action, oldest first."""
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT user_id, status, params FROM actions ORDER BY id").fetchall()


def start_run(
    log: Path, *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """``modbot run ARGS`` as a subprocess (JSON logs appended to ``log``)."""
    full_env = {**os.environ, "MODBOT_LOG_FORMAT": "json", **(env or {})}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "modbot", "run", *args],
            env=full_env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
