"""SIGKILL `modbot run` while moderation calls are in flight; the restart resolves them all."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from modbot.euler.oauth import TokenStore
from modbot.euler.tokens import token_set_from_answer
from modbot.fake import messages as m
from modbot.fake.server import FakeEuler, Fault
from tests.helpers import REPO, start_run, statuses, wait

# No MODBOT_ settings from the machine; the working directory is empty.
pytestmark = pytest.mark.usefixtures("isolated")


def test_sigkill_with_calls_in_flight(
    euler_env: FakeEuler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = euler_env
    portal = fake.portal  # type: ignore[attr-defined]
    monkeypatch.setenv("MODBOT_STREAMERS", "host_handle")
    monkeypatch.setenv("MODBOT_LIVE_CHECK_INTERVAL", "1")
    state = tmp_path / "state"
    answer = fake.issue_tokens(
        [
            "webcast:bulk_live_check",
            "webcast:ban",
            "webcast:mute",
            "webcast:chat",
            "webcast:comments",
        ]
    )
    TokenStore(state).save(token_set_from_answer(answer, time.time()))
    db = state / "audit.db"
    log = tmp_path / "daemon.log"
    fake.inject("ban", Fault(latency=8.0, times=-1))  # every ban hangs: calls stay in flight
    first = start_run(log, "--state-dir", str(state), "--rules", str(REPO / "rules"))
    try:
        wait(lambda: fake.connections("host_handle") == 1)
        room = fake.streamer("host_handle")
        trolls = [m.Viewer(f"troll_{i}", f"68555555555555555{i:02d}") for i in range(5)]
        portal.call(
            fake.emit,
            "host_handle",
            [m.chat(room.room_id, t, "slurword", fake.now_ms()) for t in trolls],
        )
        wait(lambda: sum(1 for _, s, _ in statuses(db) if s == "pending") == 5)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    assert all(s == "pending" for _, s, _ in statuses(db))
    portal.call(fake.clear_faults)
    wait(lambda: fake.connections("host_handle") == 0)
    second = start_run(log, "--state-dir", str(state), "--rules", str(REPO / "rules"))
    try:
        wait(lambda: statuses(db) and not any(s == "pending" for _, s, _ in statuses(db)))
        wait(lambda: fake.connections("host_handle") == 1)
    finally:
        second.send_signal(signal.SIGTERM)
        code = second.wait(20)
    assert code == 0, log.read_text()[-3000:]
    rows = statuses(db)
    assert [s for _, s, _ in rows] == ["done"] * 5
    assert all(json.loads(p)["recovered_after_restart"] is True for _, _, p in rows)
    assert {t.user_id for t in trolls} <= room.bans
    # Each ban reached TikTok at most twice: the killed call may have landed, and a ban
    # is idempotent; the retry after the restart is flagged in the audit row.
    per_user: dict[str, int] = {}
    for call in fake.calls_to("ban"):
        per_user[call.params["tiktok_user_id"]] = per_user.get(call.params["tiktok_user_id"], 0) + 1
    assert max(per_user.values()) <= 2
