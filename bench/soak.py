"""Crash-restart soak: SIGKILL `modbot run` at random moments of a scripted stream, restart
it, N times; then check the audit log and the fake server's record against the script.

    python bench/soak.py                     # 20 kills, mutes of 301 s (unmute timers)
    python bench/soak.py --kills 4 --mute 30s   # the bounded run of tests/test_soak.py

Each round: a slur (ban) and a scam (mute) from new viewers and, every other round, a
copy-paste raid (comments off for 2 s); each moderation call is held 0-1.5 s by the fake,
and the kill lands at a random moment while calls are in flight. Checks: every event the
daemon took in has its audit rows (nothing lost); no intent is left pending; each done
ban and mute reached the fake once, or twice with `recovered_after_restart`; every
comments-off was turned back on and every timed mute was unmuted (timers fired across
the restarts). Exit 1 with the problems listed if any check fails.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from modbot.euler.oauth import TokenStore
from modbot.euler.tokens import token_set_from_answer
from modbot.fake import messages as m
from modbot.fake.harness import audit_rows, fake_and_portal, start_run, user_calls, wait
from modbot.fake.server import FakeEuler, Fault
from modbot.rules.schema import parse_duration

HANDLE = "soak_host"
SCOPES = ["webcast:bulk_live_check", "webcast:ban", "webcast:mute", "webcast:comments"]
RULES = """\
version: 1
defaults: {{exempt: [owner]}}
rules:
  - id: slurs
    on: comment
    when: {{text.words: [slurword]}}
    then: [ban]
  - id: scams
    on: comment
    when: {{text.words: ["free coins"]}}
    then: [mute {mute}]
  - id: raid
    on: comment
    when:
      repeat: {{count: 5, within: 30s, per: room, similarity: 0.9}}
    then:
      - comments: {{enabled: false, for: 2s}}
    cooldown: 1s
"""


def run(kills: int, mute: str, seed: int, workdir: Path) -> list[str]:  # noqa: PLR0915
    rng = random.Random(seed)
    fake = FakeEuler(api_key="soak-api-key", client_secret="soak-client-secret")  # noqa: S106
    fake.add_streamer(HANDLE, live=True)
    state, rules, log = workdir / "state", workdir / "rules", workdir / "daemon.log"
    rules.mkdir()
    (rules / "soak.yaml").write_text(RULES.format(mute=mute))
    TokenStore(state).save(token_set_from_answer(fake.issue_tokens(SCOPES), time.time()))
    db = state / "audit.db"
    expected: dict[str, str] = {}  # msg_id -> rule
    started = time.monotonic()
    with fake_and_portal(fake) as (server, portal):
        env = {
            "MODBOT_API_BASE_URL": server.url,
            "MODBOT_WS_URL": server.ws_url,
            "MODBOT_API_KEY": fake.api_key,
            "MODBOT_CLIENT_ID": fake.client_id,
            "MODBOT_CLIENT_SECRET": fake.client_secret,
            "MODBOT_STREAMERS": HANDLE,
            "MODBOT_LIVE_CHECK_INTERVAL": "1",
        }
        args = ("--state-dir", str(state), "--rules", str(rules))
        proc = start_run(log, *args, env=env)
        serial = 0

        def say(text: str, rule: str | None) -> str:
            nonlocal serial
            serial += 1
            viewer = m.Viewer(f"viewer_{serial}", str(6_870_000_000_000_000_000 + serial))
            room = fake.streamer(HANDLE)
            message = m.chat(room.room_id, viewer, text, fake.now_ms())
            portal.call(fake.emit, HANDLE, [message])
            msg_id = str(message["data"]["common"]["msgId"])
            if rule:
                expected[msg_id] = rule
            return msg_id

        def audited(msg_id: str) -> bool:
            return any(r["msg_id"] == msg_id for r in audit_rows(db))

        for round_no in range(kills):
            wait(lambda: fake.connections(HANDLE) == 1, timeout=30)
            for route in ("ban", "mute", "toggle_comments"):
                fake.inject(route, Fault(latency=rng.uniform(0, 1.5), times=1))
            ids = [say("you are a slurword", "slurs"), say("free coins here", "scams")]
            if round_no % 2 == 0:
                ids += [say("JOIN THE RAID NOW", None) for _ in range(4)]
                ids.append(say("JOIN THE RAID NOW", "raid"))
            # The kill lands after intake, at a random moment of the calls in flight.
            round_ids = [i for i in ids if i in expected]
            wait(lambda: all(audited(i) for i in round_ids), timeout=30)  # noqa: B023
            time.sleep(rng.uniform(0, 1.2))
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            wait(lambda: fake.connections(HANDLE) == 0, timeout=30)
            proc = start_run(log, *args, env=env)
        # Let the last run finish everything and fire every timer, then stop it cleanly.
        seconds = parse_duration(mute) or 0
        deadline = 60 + (seconds if seconds > 300 else 0)
        problems: list[str] = []
        try:
            wait(lambda: _settled(audit_rows(db), fake), timeout=deadline)
        except TimeoutError:
            problems.append("not settled in time (pending intents or timers that did not fire)")
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        if code != 0:
            problems.append(f"the last run exited {code}")
        problems += _check(audit_rows(db), fake, expected)
    elapsed = time.monotonic() - started
    calls = Counter(c.route for c in fake.calls if 200 <= c.status < 300)
    repeats = sum(
        1 for r in audit_rows(db) if json.loads(str(r["params"])).get("recovered_after_restart")
    )
    print(
        f"soak: {kills} SIGKILLs in {elapsed:.0f}s, {len(expected)} moderated events, "
        f"{len(audit_rows(db))} audit rows, {repeats} recovered after a restart, calls "
        f"{dict(sorted(calls.items()))}; {'OK' if not problems else 'FAILED: ' + '; '.join(problems)}"
    )
    return problems


def _settled(found: list[dict[str, object]], fake: FakeEuler) -> bool:
    if not found or any(r["status"] == "pending" for r in found):
        return False
    room = fake.streamer(HANDLE)
    return room.comments_enabled and not _timed_mutes_left(found, fake)


def _timed_mutes_left(found: list[dict[str, object]], fake: FakeEuler) -> set[str]:
    """Viewers with a done timed mute (longer than the API's 300 s) still muted."""
    room = fake.streamer(HANDLE)
    timed = {
        str(r["user_id"])
        for r in found
        if r["action"] == "mute"
        and r["status"] == "done"
        and r["undo_of"] is None
        and (json.loads(str(r["params"])).get("duration_s") or 0) > 300
    }
    return timed & set(room.mutes)


def _check(found: list[dict[str, object]], fake: FakeEuler, expected: dict[str, str]) -> list[str]:
    problems = []
    by_msg = {(str(r["msg_id"]), str(r["rule"])) for r in found}
    lost = [(msg, rule) for msg, rule in expected.items() if (msg, rule) not in by_msg]
    if lost:
        problems.append(f"{len(lost)} events without their audit row: {lost[:3]}")
    pending = [r["id"] for r in found if r["status"] == "pending"]
    if pending:
        problems.append(f"pending intents left: {pending}")
    ok = user_calls(fake, "ban", "mute")
    for r in found:
        if r["status"] != "done" or r["action"] not in ("ban", "mute") or r["undo_of"]:
            continue
        count = ok[str(r["action"]), str(r["user_id"])]
        flagged = json.loads(str(r["params"])).get("recovered_after_restart")
        if not (count == 1 or (count == 2 and flagged)):
            problems.append(f"#{r['id']} {r['action']} reached the fake {count} times")
    failed = [r for r in found if r["status"] == "failed" and not r["error"]]
    if failed:
        problems.append(f"failed rows without a reason: {[r['id'] for r in failed]}")
    offs = sum(
        1
        for c in fake.calls_to("toggle_comments", ok_only=True)
        if c.params.get("enabled") == "false"
    )
    ons = sum(
        1
        for c in fake.calls_to("toggle_comments", ok_only=True)
        if c.params.get("enabled") == "true"
    )
    if not fake.streamer(HANDLE).comments_enabled or ons < 1 or offs < 1:
        problems.append(
            f"comments: {offs} turned off, {ons} back on, on now: "
            f"{fake.streamer(HANDLE).comments_enabled}"
        )
    left = _timed_mutes_left(found, fake)
    if left:
        problems.append(f"{len(left)} timed mutes never lifted")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs (default: 20)")
    parser.add_argument(
        "--mute", default="301s", help="the scam rule's mute; over 300s uses unmute timers"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modbot-soak-") as folder:
        problems = run(args.kills, args.mute, args.seed, Path(folder))
    for problem in problems:
        print(f"  problem: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
