"""Drive modbot from the outside (I/O): the fake Euler server in a thread, ``modbot run``
as a subprocess, the audit database read directly, and systemd's notify socket.

Used by ``bench/`` (``load.py``, ``soak.py``, which may run against an installed modbot)
and by the tests; what only the tests use lives with them, in ``tests/harness.py``."""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from anyio.from_thread import BlockingPortal, start_blocking_portal

from modbot.fake.server import FakeEuler, RecordedCall
from modbot.loopback import LoopbackServer, serve


@contextlib.contextmanager
def fake_and_portal(fake: FakeEuler) -> Iterator[tuple[LoopbackServer, BlockingPortal]]:
    """Serve ``fake`` from its own event loop thread, so sync code (the CLI, a subprocess's
    driver) can reach it, with the portal to call the fake on its own loop."""
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


def audit_rows(db: Path) -> list[dict[str, Any]]:
    """Every audit action as a dict of its columns, oldest first (read directly)."""
    if not db.exists():
        return []
    with sqlite3.connect(db, timeout=10) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM actions ORDER BY id")]


def call_target(call: RecordedCall) -> str:
    """The viewer a moderation call is for: ``tiktok_user_id`` (ban) or ``user_id`` (mute)."""
    return target_of(call.params)


def target_of(params: Mapping[str, Any]) -> str:
    """The viewer named by a moderation call's parameters (see :func:`call_target`)."""
    return str(params.get("tiktok_user_id") or params.get("user_id", ""))


def user_calls(fake: FakeEuler, *routes: str) -> Counter[tuple[str, str]]:
    """How many successful calls each (route, viewer's user id) got at the fake."""
    found: Counter[tuple[str, str]] = Counter()
    for call in fake.calls_to(*routes, ok_only=True):
        found[call.route, call_target(call)] += 1
    return found


class NotifyListener:
    """A datagram socket standing in for systemd's ``$NOTIFY_SOCKET``.

    Keep ``path`` short: AF_UNIX addresses are limited to about 100 bytes.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[dict[str, str]] = []

    def drain(self) -> list[dict[str, str]]:
        """Every notification so far (each datagram as its KEY=value fields)."""
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return self.messages
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if line)
            self.messages.append(fields)

    def seen(self, key: str, value: str | None = None, since: int = 0) -> bool:
        return any(
            key in msg and (value is None or msg[key] == value) for msg in self.drain()[since:]
        )

    def close(self) -> None:
        self.sock.close()


def start_run(
    log: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    python: str | None = None,
) -> subprocess.Popen[bytes]:
    """``modbot run ARGS`` as a subprocess (JSON logs appended to ``log``), by this
    interpreter or by ``python`` (another environment's, e.g. a compiled install)."""
    full_env = {**os.environ, "MODBOT_LOG_FORMAT": "json", **(env or {})}
    with log.open("ab") as out:
        return subprocess.Popen(
            [python or sys.executable, "-m", "modbot", "run", *args],
            env=full_env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
