"""`modbot run` as a process, fed a stream built to hurt it; an ordinary slur is still banned.

The stream: blank, control-only, bidi, emoji-only, 10,000-character and surrogate-laden
nicknames and texts under reply templates that use every field; a malformed number in
every numeric field of every kind of message, and in the bundle's timestamp; frames nested
100,000 deep; a mutated copy-paste raid from distinct accounts. Then a canary: a viewer
who says a listed slur, who must be banned within seconds. The daemon must be alive, the
canary banned, no row pending, and nothing the bot posted may fail its own check.
"""

from __future__ import annotations

import copy
import json
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from modbot.euler.oauth import TokenStore
from modbot.euler.tokens import token_set_from_answer
from modbot.fake import messages as m
from modbot.fake.chatter import mutated
from modbot.fake.harness import audit_rows
from modbot.fake.server import FakeEuler
from modbot.inert import INVISIBLE
from modbot.rules.compile import load_ruleset
from modbot.rules.engine import Engine
from tests.helpers import start_run, statuses, wait

pytestmark = pytest.mark.usefixtures("isolated")

RULES = """\
version: 1
rules:
  - id: echo
    on: comment
    when: {text.contains: echo}
    then: [{reply: "{user.nickname}"}]
  - id: greet
    on: comment
    when: {text.contains: hello}
    then:
      - reply: "hi {user.nickname} (@{user.unique_id}) from {rule.id} on {streamer} {duration}"
  - id: shouting
    on: comment
    when: {text.words: [loud]}
    then:
      - mute: 1m
      - reply: "{user.nickname} muted for {duration}"
  - id: slurs
    on: comment
    when:
      any:
        - text.words: [slurword, "free coins"]
        - user.nickname.words: [slurword]
    then: [ban]
  - id: links
    on: comment
    when: {text.links: {allow: [tiktok.com]}}
    then: [{mute: 5m}]
  - id: copy-paste-raid
    on: comment
    priority: 5
    when:
      repeat: {count: 8, within: 30s, per: room, similarity: 0.85}
    then:
      - comments: {enabled: false, for: 2m}
"""

NICKNAMES = [
    "",
    "   ",
    "\u3000\u2800",
    "\u202e",
    "\u200b\u200c\u200d\u2060\ufeff",
    "\x1b[2J\x1b]0;pwn\x07",
    "\u202eslurword",
    "🌸🌸🌸",
    "x" * 10_000,
    "a\ud800b\udfff",
    "@everyone free coins at scam.com",
    "{user.unique_id}{0.__class__}%s",
    "Z̸̡̢̛̗̘̙̜̝̞̟̠̣̤̥̦̩̪̫̬̭̮̯̰̱̲̳̹̺̻̼͇͈͉͍͎̀́̂̃̄̅̆̇̈̉̊̋̌̍̎̏̐̑̒̓̔̽̾̿̀́͂̓̈́͆͊͋͌̕̚ͅ͏͓͔͕͖͙͚͐͑͒͗͛ͣͤͥͦͧͨͩͪͫͬͭͮͯ͘͜͟͢͝͞͠͡",
]
TEXTS = ["hello", "LOUD hello", "hello \u202e", "hello " + "y" * 9_990, "hello \ud83d", "🌸"]
BAD_NUMBERS = ["²", "--1", "١٢٣", "1e400", "+1", " 7", "9" * 5_000, "-", "0x10", "NaN"]


def _viewer(n: int, nickname: str) -> m.Viewer:
    return m.Viewer(f"hostile_{n}", f"6811111111{n:09d}", extra={"nickname": nickname})


def _set(message: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(message)
    node = out["data"]
    *parents, last = path.split(".")
    for key in parents:
        node = node[key]
    node[last] = value
    return out


def test_a_hostile_stream_does_not_stop_the_daemon_or_speak_through_it(
    euler_env: FakeEuler, tmp_path: Path
) -> None:
    fake = euler_env
    portal = fake.portal  # type: ignore[attr-defined]
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "main.yaml").write_text(RULES)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    scopes = ["webcast:bulk_live_check", "webcast:ban", "webcast:mute", "webcast:chat"]
    scopes.append("webcast:comments")
    TokenStore(state).save(token_set_from_answer(fake.issue_tokens(scopes), time.time()))
    log = tmp_path / "daemon.log"
    env = {
        "MODBOT_STATE_DIR": str(state),
        "MODBOT_RULES_DIR": str(rules),
        "MODBOT_STREAMERS": "host_handle",
        "MODBOT_LIVE_CHECK_INTERVAL": "1",
    }
    proc = start_run(log, env=env, cwd=tmp_path)
    room = fake.streamer("host_handle")
    rid = room.room_id

    def emit(messages: list[dict[str, Any]]) -> None:
        portal.call(fake.emit, "host_handle", messages)

    def raw(text: str) -> None:
        portal.call(fake.emit_raw, "host_handle", text)

    try:
        wait(lambda: fake.connections("host_handle") == 1, timeout=30)
        now = fake.now_ms()
        # 1. Hostile nicknames and texts under templates that use every field; first
        # a reply that renders blank (it used to crash the daemon, at every restart).
        emit([m.chat(rid, _viewer(0, "\u202e"), "echo", now)])
        n = 0
        for nickname in NICKNAMES:
            for text in TEXTS:
                n += 1
                emit([m.chat(rid, _viewer(n, nickname), text, now)])
        # 2. A malformed number in every numeric field, and in the bundle's timestamp.
        plain = m.Viewer("numbers_1", "6822222222000000001")
        fields = {
            "chat": (
                m.chat(rid, plain, "hello", now),
                [
                    "common.createTime",
                    "common.msgId",
                    "common.roomId",
                    "user.userId",
                    "user.followInfo.followStatus",
                    "user.followInfo.followerCount",
                    "user.followInfo.followingCount",
                    "user.userHonor.level",
                ],
            ),
            "like": (m.like(rid, plain, 5, now), ["likeCount", "totalLikeCount"]),
            "gift": (
                m.gift(rid, plain, "Rose", 1, 3, now),
                ["repeatCount", "giftId", "giftDetails.diamondCount", "giftDetails.giftType"],
            ),
            "viewers": (m.viewers(rid, 10, now), ["viewerCount", "totalUser"]),
            "end": (m.stream_end(rid, now), ["action"]),
        }
        for message, paths in fields.values():
            for path in paths:
                emit([_set(message, path, bad) for bad in BAD_NUMBERS])
        for bad in BAD_NUMBERS:
            raw(json.dumps({"timestamp": bad, "messages": [m.chat(rid, plain, "hi", now)]}))
        # 3. Frames nested 100,000 deep (as a bundle, as a message, as a field).
        deep = "[" * 100_000 + "]" * 100_000
        raw(deep)
        raw('{"timestamp": 1, "messages": [' + deep + "]}")
        raw(
            '{"timestamp": 1, "messages": [{"type": "WebcastChatMessage", "data": '
            '{"comment": "hello", "user": ' + "{" * 50_000 + "}" * 50_000 + "}}]}"
        )
        # 4. A mutated copy-paste raid from distinct accounts.
        rng = random.Random(7)
        base = "follow my page for free stuff every day it is the best page on all of tiktok ok"
        raiders = [m.Viewer(f"raider_{i}", f"6833333333{i:09d}") for i in range(200)]
        for chunk in range(0, 200, 50):
            emit([m.chat(rid, r, mutated(base, rng), now) for r in raiders[chunk : chunk + 50]])
        # 5. The canary: an ordinary slur, which must still be banned within seconds.
        canary = m.Viewer("canary_1", "6844444444000000001")
        sent = time.monotonic()
        emit([m.chat(rid, canary, "you slurword", fake.now_ms())])
        wait(lambda: canary.user_id in room.bans, timeout=15)
        banned_after = time.monotonic() - sent
        assert proc.poll() is None, log.read_text()[-3000:]
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    output = log.read_text()
    assert code == 0, output[-3000:]
    assert banned_after < 10
    rows = statuses(state / "audit.db")
    assert rows
    assert not [r for r in rows if r[1] == "pending"]
    # A viewer whose nickname holds the slur is banned too (read through the bidi override).
    slur_nicks = [i for i, nick in enumerate(NICKNAMES) if "slurword" in nick]
    for i in slur_nicks:
        assert _viewer(i * len(TEXTS) + 1, NICKNAMES[i]).user_id in room.bans
    # Everything posted passes the bot's own check, and holds nothing invisible.
    ruleset, _ = load_ruleset([rules])
    assert ruleset is not None
    engine = Engine(ruleset)
    assert room.chat, "the greeting of an ordinary viewer is said"
    for said in room.chat:
        assert engine.speech_problem(said) is None, said
        assert not INVISIBLE.search(said), ascii(said)
    # What was not said is in the audit log with why: blank, a link, a listed term.
    details = [r["detail"] for r in audit_rows(state / "audit.db") if r["action"] == "reply"]
    for why in ("the message is empty", "holds a link", "would trip rule 'slurs'"):
        assert any(f"not said: {why}" in d or f"not said: the message {why}" in d for d in details)
    events = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert not [e for e in events if e.get("event") in ("action.crashed", "intent.failed")]
    assert any(e.get("event") == "event.malformed" for e in events)
