"""`modbot run` under a systemd-like supervisor: notify socket, SIGHUP reloads, SIGTERM."""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modbot.euler.oauth import TokenStore
from modbot.euler.tokens import token_set_from_answer
from modbot.fake import messages as m
from modbot.fake.harness import NotifyListener
from modbot.fake.server import FakeEuler
from modbot.sdnotify import Notifier
from tests.helpers import REPO, start_run, statuses, wait

pytestmark = pytest.mark.usefixtures("isolated")

RULES_V1 = """\
version: 1
rules:
  - id: apples
    on: comment
    when: {text.words: [apple]}
    then: [ban]
"""

RULES_V2 = """\
version: 1
rules:
  - id: bananas
    on: comment
    when: {text.words: [banana]}
    then: [ban]
"""

BROKEN = """\
version: 1
rules:
  - id: bananas
    on: comment
    when: {text.wrods: [banana]}
    then: [ban
"""


@pytest.fixture
def notify() -> Iterator[NotifyListener]:
    # A short path: AF_UNIX addresses are limited to about 100 bytes.
    with tempfile.TemporaryDirectory(prefix="nfy") as folder:
        sock = NotifyListener(Path(folder) / "notify")
        yield sock
        sock.close()


def test_notify_reload_and_stop(
    euler_env: FakeEuler,
    notify: NotifyListener,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As systemd/modbot.service runs it: the example modbot.toml, credentials, state dir."""
    fake = euler_env
    portal = fake.portal  # type: ignore[attr-defined]
    # The unit's environment: secrets only as credentials, settings from the example
    # config (the environment still wins for the fake's addresses and the streamer).
    monkeypatch.delenv("MODBOT_API_KEY")
    monkeypatch.delenv("MODBOT_CLIENT_SECRET")
    credentials = tmp_path / "credentials"
    credentials.mkdir(mode=0o700)
    (credentials / "api-key").write_text(fake.api_key)
    (credentials / "client-secret").write_text(fake.client_secret)
    config = tmp_path / "etc"
    rules = config / "rules"
    rules.mkdir(parents=True)
    shutil.copy(REPO / "deploy" / "modbot.toml", config / "modbot.toml")
    state = tmp_path / "state"
    answer = fake.issue_tokens(["webcast:bulk_live_check", "webcast:ban"])
    TokenStore(state).save(token_set_from_answer(answer, time.time()))
    rule_file = rules / "main.yaml"
    rule_file.write_text(RULES_V1)
    db = state / "audit.db"
    log = tmp_path / "daemon.log"
    env = {
        "NOTIFY_SOCKET": str(notify.path),
        "WATCHDOG_USEC": "1000000",
        "STATE_DIRECTORY": str(state),
        "CREDENTIALS_DIRECTORY": str(credentials),
        "MODBOT_CONFIG": str(config / "modbot.toml"),
        "MODBOT_STREAMERS": "host_handle",
        "MODBOT_LIVE_CHECK_INTERVAL": "1",
    }
    proc = start_run(log, env=env, cwd=config)
    room = fake.streamer("host_handle")
    viewers = [m.Viewer(f"viewer_{i}", f"68777777777777777{i:02d}") for i in range(4)]

    def say(viewer: m.Viewer, text: str) -> None:
        portal.call(fake.emit, "host_handle", [m.chat(room.room_id, viewer, text, fake.now_ms())])

    def done_for(viewer: m.Viewer) -> bool:
        return any(u == viewer.user_id and s == "done" for u, s, _ in statuses(db))

    def reload_with(text: str) -> None:
        mark = len(notify.drain())
        rule_file.write_text(text)
        proc.send_signal(signal.SIGHUP)
        wait(lambda: notify.seen("RELOADING", "1", mark) and notify.seen("READY", "1", mark))

    try:
        wait(lambda: notify.seen("READY", "1"))
        wait(lambda: fake.connections("host_handle") == 1)
        ready = next(msg for msg in notify.drain() if "READY" in msg)
        assert "streams live" in ready.get("STATUS", "")
        # The watchdog is kept at half of WATCHDOG_USEC, from the event loop.
        wait(lambda: sum("WATCHDOG" in msg for msg in notify.drain()) >= 2, timeout=5)

        say(viewers[0], "an apple a day")
        wait(lambda: done_for(viewers[0]))

        # A broken file: the errors are logged with their position, the old rules stay.
        reload_with(BROKEN)
        wait(lambda: "rules.rejected" in log.read_text())
        assert "main.yaml:7:1: error: YAML syntax" in log.read_text()
        assert "(started at line 6, column 11)" in log.read_text()
        say(viewers[1], "apple pie")
        wait(lambda: done_for(viewers[1]))

        # A good file applies: bananas now, apples no longer.
        reload_with(RULES_V2)
        say(viewers[2], "apple crumble")
        say(viewers[3], "banana split")
        wait(lambda: done_for(viewers[3]))
        assert not any(u == viewers[2].user_id for u, _, _ in statuses(db))
        assert {viewers[0].user_id, viewers[1].user_id, viewers[3].user_id} == room.bans
        # STATUS follows what was done.
        wait(lambda: any("3 actions done" in msg.get("STATUS", "") for msg in notify.drain()))
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(20)
    assert code == 0, log.read_text()[-3000:]
    assert notify.seen("STOPPING", "1")
    assert statuses(db)
    assert not any(s == "pending" for _, s, _ in statuses(db))
    assert db.stat().st_mode & 0o077 == 0


def test_a_listener_that_does_not_read_never_blocks_the_notifier(notify: NotifyListener) -> None:
    """A full notify queue drops messages instead of stopping the event loop (found by
    bench/load.py: a 60 s loop stall)."""
    notifier = Notifier(str(notify.path))
    started = time.monotonic()
    results = [notifier.status(f"{i} events " + "x" * 200) for i in range(20_000)]
    assert time.monotonic() - started < 5
    assert not all(results)  # the queue filled up, and those were dropped
    assert results[0]
    notifier.close()
