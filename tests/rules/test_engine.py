"""The engine: conditions, windows, escalation, cooldowns, exemptions, the severity merge."""

from __future__ import annotations

import gc
import random
from pathlib import Path

import pytest

from modbot.events import Gift
from modbot.rules.engine import Decision, Engine, merge
from modbot.rules.state import EngineState, Lru

from .util import comment, engine, fired, ruleset, run, user


def enforced(decisions: list[Decision]) -> list[str]:
    return [f"{d.rule}:{d.describe()}" for d in decisions if d.enforced]


# --- conditions -------------------------------------------------------------------------


def test_sibling_keys_are_anded_and_any_all_not_nest() -> None:
    e = engine(
        """
        version: 1
        rules:
          - id: r
            on: comment
            when:
              any:
                - text.words: spam
                - all:
                    - text.contains: buy
                    - not: {text.words: please}
              user.is_follower: false
            then: [log]
        """
    )
    assert fired(e, comment("spam here")) == ["r"]
    assert fired(e, comment("spam here", who=user(is_follower=True))) == []
    assert fired(e, comment("buyers wanted")) == ["r"]
    assert fired(e, comment("buyers wanted please")) == []
    assert fired(e, comment("hello")) == []


@pytest.mark.parametrize(
    ("condition", "text", "expected"),
    [
        ("text.contains: oin", "free coins", True),
        ("text.contains: oin", "free cans", False),
        ("text.equals: hi there", "HI   THERE", True),
        ("text.equals: hi there", "hi there you", False),
        ("text.starts_with: first", "FIRST!!", True),
        ("text.starts_with: first", "not first", False),
        ("text.ends_with: bye", "ok bye", True),
        ("text.regex: '^\\d{3,}$'", "12345", True),
        ("text.regex: ['(?i)^HELLO', 'x{3}']", "hello", True),
        ("text.regex: ['(?i)^HELLO', 'x{3}']", "axxx", True),
        ("text.regex: '^HELLO'", "hello", False),
        ("text.length: '>= 5'", "👍👍👍👍👍", True),
        ("text.length: '>= 5'", "👍👍👍👍", False),
        ("text.caps_ratio: '>= 0.8'", "STOP SHOUTING", True),
        ("text.caps_ratio: '>= 0.8'", "STOP", False),
        ("text.repeated_chars: '> 5'", "nooooooo", True),
        ("text.emoji_count: 3", "🎉🎉🎉", True),
        ("text.emoji_count: '!= 3'", "🎉🎉🎉", False),
        ("text.mentions: '>= 2'", "@a @b", True),
        ("text.zalgo: true", "h\u0336\u0337\u0338i", True),
        ("text.zalgo: false", "hi", True),
        ("text.links: true", "go to bad.example.com", True),
        ("text.links: {allow: [tiktok.com]}", "see m.tiktok.com/@me", False),
        ("text.links: {allow: [tiktok.com]}", "see tiktok.com.evil.io", True),
        ("text.links: false", "no links", True),
    ],
)
def test_text_checks(condition: str, text: str, expected: bool) -> None:
    e = engine(
        f"""
        version: 1
        rules:
          - id: r
            on: comment
            when:
              {condition}
            then: [log]
        """
    )
    assert (fired(e, comment(text)) == ["r"]) is expected


def test_language_nickname_and_user_checks() -> None:
    e = engine(
        """
        version: 1
        lists:
          vips: [viewer_7, "685"]
        rules:
          - id: lang
            on: comment
            when: {text.language: [de, fr]}
            then: [log]
          - id: nick
            on: [comment, join]
            when: {user.nickname.words: [scam]}
            then: [log]
          - id: big
            on: comment
            when: {user.follower_count: ">= 1000", user.gifter_level: "> 2"}
            then: [log]
          - id: vip
            on: comment
            when: {user.in: "@vips"}
            then: [log]
        """
    )
    assert fired(e, comment("hallo", language="de")) == ["lang"]
    assert fired(e, comment("hello", language="en")) == []
    scammer = user(3).__class__(user_id="1", unique_id="x", nickname="S C A M bot")
    assert fired(e, comment("", who=scammer, kind="join")) == ["nick"]
    assert fired(e, comment("hi", who=user(follower_count=5000, gifter_level=3))) == ["big"]
    assert fired(e, comment("hi", who=user(follower_count=5000, gifter_level=2))) == []
    assert fired(e, comment("hi", who=user(7))) == ["vip"]
    assert fired(e, comment("hi", who=user(5))) == ["vip"]  # user_id 685
    assert fired(e, comment("hi", who=user(8))) == []


def test_gift_checks_and_event_kinds() -> None:
    e = engine(
        """
        version: 1
        rules:
          - id: big-gift
            on: gift
            when: {gift.total_diamonds: ">= 1000", gift.name: [Lion, Universe]}
            then: [reply: "thank you {user.nickname}!"]
          - id: any-kind
            on: any
            when: {user.is_subscriber: true}
            then: [log]
        """
    )
    lion = comment("", kind="gift", gift=Gift("Lion", 29999, 1))
    rose = comment("", kind="gift", gift=Gift("Rose", 1, 5000))
    assert fired(e, lion) == ["big-gift"]
    assert fired(e, rose) == []  # 5000 diamonds but not a named gift
    assert run(e, lion)[0].text == "thank you Viewer 1!"
    sub = user(is_subscriber=True)
    for kind in ("comment", "like", "share", "follow", "join", "emote"):
        assert "any-kind" in fired(e, comment("x", who=sub, kind=kind)), kind


def test_user_is_new_is_the_first_event_in_sixty_seconds() -> None:
    e = engine(
        """
        version: 1
        rules:
          - id: newcomer-link
            on: [join, comment]
            when: {user.is_new: true, text.links: true}
            then: [log]
        """
    )
    # A viewer who joined 10 s ago is still new; at 61 s they are not.
    assert fired(e, comment("", kind="join", at=0)) == []
    assert fired(e, comment("see bad.com", at=10)) == ["newcomer-link"]
    assert fired(e, comment("see bad.com", at=61)) == []
    assert fired(e, comment("see bad.com", who=user(2), at=61)) == ["newcomer-link"]


# --- windows ----------------------------------------------------------------------------

RATE = """
version: 1
rules:
  - id: flood
    on: comment
    when:
      rate: {count: 3, within: 10s, per: %s}
    then: [mute 1m]
"""


def test_rate_per_user_counts_that_user_in_the_window() -> None:
    e = engine(RATE % "user")
    a, b = user(1), user(2)
    assert fired(e, comment("1", who=a, at=0)) == []
    assert fired(e, comment("2", who=b, at=1)) == []
    assert fired(e, comment("3", who=a, at=2)) == []
    assert fired(e, comment("4", who=a, at=3)) == ["flood"]
    # The window slides: at 12.5 s only the events at 3 s and later count.
    assert fired(e, comment("5", who=a, at=12.5)) == []
    assert fired(e, comment("6", who=a, at=12.6)) == ["flood"]


def test_rate_per_room_counts_everyone_and_rooms_apart() -> None:
    e = engine(RATE % "room")
    assert fired(e, comment("1", who=user(1), at=0)) == []
    assert fired(e, comment("2", who=user(2), at=0.1)) == []
    assert fired(e, comment("x", who=user(9), at=0.15, room="other")) == []
    assert fired(e, comment("3", who=user(3), at=0.2)) == ["flood"]


def test_rate_counts_only_events_that_pass_the_other_conditions() -> None:
    e = engine(
        """
        version: 1
        rules:
          - id: emoji-flood
            on: comment
            when:
              text.emoji_count: ">= 3"
              rate: {count: 2, within: 30s, per: user}
            then: [log]
        """
    )
    assert fired(e, comment("🎉🎉🎉", at=0)) == []
    assert fired(e, comment("plain", at=1)) == []
    assert fired(e, comment("🎉🎉🎉", at=2)) == ["emoji-flood"]


REPEAT = """
version: 1
rules:
  - id: raid
    on: comment
    when:
      repeat: {count: 4, within: 30s, per: %s, similarity: 0.85}
    then: [comments: {enabled: false, for: 2m}]
"""


def test_repeat_per_room_catches_one_text_from_many_accounts() -> None:
    e = engine(REPEAT % "room")
    raid = [
        "FOLLOW @raider for free gifts!!",
        "follow @raider for free gifts",
        "Follow @raider for free gifts!",
        "follow @raider for freee gifts",
    ]
    results = [fired(e, comment(t, who=user(i), at=i)) for i, t in enumerate(raid)]
    assert results == [[], [], [], ["raid"]]
    d = run(e, comment("follow @raider for free gifts", who=user(9), at=5))[0]
    assert (d.action, d.enabled, d.for_s) == ("comments", False, 120.0)
    assert "near-identical texts in 30s per room" in d.detail


def test_repeat_ignores_different_texts_and_old_ones() -> None:
    e = engine(REPEAT % "room")
    chat = ["hi everyone", "love this song", "where are you from", "hi everyone!!", "gg"]
    assert [fired(e, comment(t, who=user(i), at=i)) for i, t in enumerate(chat)] == [[]] * 5
    e2 = engine(REPEAT % "room")
    for i in range(3):
        fired(e2, comment("same text", who=user(i), at=i))
    assert fired(e2, comment("same text", who=user(5), at=40)) == []  # the others expired


def test_repeat_per_user_is_one_person_repeating() -> None:
    e = engine(REPEAT % "user")
    for i in range(3):
        assert fired(e, comment("buy my stuff", who=user(1), at=i)) == []
        assert fired(e, comment("buy my stuff", who=user(2 + i), at=i)) == []
    assert fired(e, comment("BUY my stuff!", who=user(1), at=4)) == ["raid"]


def test_room_comment_rate() -> None:
    e = engine(
        """
        version: 1
        rules:
          - id: busy
            on: comment
            mode: observe
            when: {room.comment_rate: "> 2"}
            then: [log]
        """
    )
    decisions = [run(e, comment("x", who=user(i), at=i * 0.25)) for i in range(40)]
    first = next(i for i, d in enumerate(decisions) if d)
    # 4 comments per second; over a 10 s window the rate passes 2/s after 20 comments.
    assert 20 <= first <= 22
    assert decisions[first][0].mode == "observe"
    assert not decisions[first][0].enforced


# --- escalation, cooldown, exemption, mode, priority -----------------------------------

ESCALATE = """
version: 1
rules:
  - id: insults
    on: comment
    when: {text.words: [idiot]}
    escalate:
      window: 1h
      steps: [warn, mute 10m, ban]
    warn: "@{user.unique_id} please be kind"
"""


def test_escalation_steps_and_decay() -> None:
    e = engine(ESCALATE)
    steps = [run(e, comment("idiot", at=t)) for t in (0, 60, 120, 180)]
    assert [enforced(s) for s in steps] == [
        ["insults:warn '@viewer_1 please be kind'"],
        ["insults:mute 10m"],
        ["insults:ban"],
        ["insults:ban"],  # the last step repeats
    ]
    assert [s[0].strike for s in steps] == [1, 2, 3, 4]
    # Strikes older than the window drop away: an hour after the last strike, a warning.
    later = run(e, comment("idiot", at=180 + 3601))
    assert enforced(later) == ["insults:warn '@viewer_1 please be kind'"]
    # Strikes are per user.
    assert enforced(run(e, comment("idiot", who=user(2), at=200))) == [
        "insults:warn '@viewer_2 please be kind'"
    ]


def test_cooldown_suppresses_a_second_action_on_the_same_user() -> None:
    e = engine(
        """
        version: 1
        rules:
          - id: links
            on: comment
            when: {text.links: true}
            then: [mute 5m]
            cooldown: 1m
        """
    )
    first = run(e, comment("a.com", at=0))
    second = run(e, comment("b.com", at=30))
    other = run(e, comment("c.com", who=user(2), at=31))
    third = run(e, comment("d.com", at=61))
    assert first[0].enforced
    assert (second[0].enforced, second[0].suppressed) == (False, "cooldown")
    assert other[0].enforced
    assert third[0].enforced


def test_exempt_roles_and_lists_and_defaults() -> None:
    e = engine(
        """
        version: 1
        lists:
          trusted: [viewer_3]
        defaults:
          exempt: [moderator, "@trusted"]
        rules:
          - id: default-exempt
            on: comment
            when: {text.words: bad}
            then: [log]
          - id: own-exempt
            on: comment
            exempt: [subscriber]
            when: {text.words: bad}
            then: [log]
        """
    )
    assert fired(e, comment("bad")) == ["default-exempt", "own-exempt"]
    assert fired(e, comment("bad", who=user(is_moderator=True))) == ["own-exempt"]
    assert fired(e, comment("bad", who=user(3))) == ["own-exempt"]
    assert fired(e, comment("bad", who=user(is_subscriber=True))) == ["default-exempt"]


def test_the_streamer_is_never_actioned() -> None:
    e = engine(
        """
        version: 1
        rules:
          - id: everyone
            on: any
            when: {text.words: bad}
            then: [ban]
        """
    )
    assert run(e, comment("bad", who=user(is_owner=True))) == []


def test_observe_mode_decides_but_does_not_enforce() -> None:
    e = engine(
        """
        version: 1
        rules:
          - id: watch
            on: comment
            mode: observe
            when: {text.words: bad}
            then: [ban]
        """
    )
    (d,) = run(e, comment("bad"))
    assert (d.action, d.mode, d.enforced) == ("ban", "observe", False)


def test_disabled_rule_never_fires() -> None:
    e = engine(
        """
        version: 1
        rules:
          - id: off
            enabled: false
            on: comment
            when: {text.words: bad}
            then: [ban]
          - id: on
            enabled: true
            on: comment
            when: {text.words: good}
            then: [ban]
        """
    )
    # `off`/`on`/`yes` are words here, not YAML 1.1 booleans: only true/false are.
    assert [r.id for r in e.ruleset.rules] == ["on"]  # the disabled one is left out
    assert run(e, comment("bad")) == []


def test_priority_orders_rules_and_the_most_severe_enforcement_wins() -> None:
    e = engine(
        """
        version: 1
        rules:
          - id: short
            on: comment
            when: {text.words: bad}
            then: [mute 1m, reply: "no {user.unique_id}"]
          - id: long
            priority: 5
            on: comment
            when: {text.words: bad}
            then: [mute 1h, reply: "no {user.unique_id}"]
          - id: logged
            priority: 10
            on: comment
            when: {text.words: bad}
            then: [log]
        """
    )
    decisions = run(e, comment("bad"))
    assert [d.rule for d in decisions] == ["logged", "long", "long", "short", "short"]
    assert enforced(decisions) == ["logged:log", "long:mute 1h", "long:reply 'no viewer_1'"]
    suppressed = {d.rule + ":" + d.action: d.suppressed for d in decisions if d.suppressed}
    assert suppressed == {
        "short:mute": "superseded by mute 1h from rule long",
        "short:reply": "the same reply is already sent for this event",
    }


def _d(rule: str, action: str, duration: float | None = None, mode: str = "enforce") -> Decision:
    return Decision(rule, "h", action, mode, "why", "1", "u", duration_s=duration)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("decisions", "winner"),
    [
        ([_d("a", "mute", 60), _d("b", "ban")], "b"),
        ([_d("a", "ban"), _d("b", "mute", None)], "a"),  # ban beats a permanent mute
        ([_d("a", "mute", 60), _d("b", "mute", None)], "b"),  # forever beats 1 minute
        ([_d("a", "mute", 600), _d("b", "mute", 60)], "a"),
        ([_d("a", "mute", 60), _d("b", "mute", 60)], "a"),  # a tie keeps the first
        ([_d("a", "ban", mode="observe"), _d("b", "mute", 60)], "b"),  # observe never wins
    ],
)
def test_severity_merge(decisions: list[Decision], winner: str) -> None:
    merged = merge(decisions)
    live = [d.rule for d in merged if d.enforced and d.action in ("mute", "ban")]
    assert live == [winner]
    assert len(merged) == len(decisions)  # every firing rule is still reported


def test_templates_insert_viewer_text_inert() -> None:
    e = engine(
        """
        version: 1
        rules:
          - id: r
            on: comment
            when: {text.words: bad}
            then:
              - reply: "{user.nickname} ({user.unique_id}) got {duration} from {rule.id} in {streamer}"
              - mute 10m
        """
    )
    nasty = user(1).__class__(
        user_id="1", unique_id="x", nickname="{user.unique_id}\n{0.__class__}\x1b[31m" + "A" * 500
    )
    (reply, _) = run(e, comment("bad", who=nasty))
    assert reply.text is not None
    # A line break is a space; ESC and other invisible characters are removed.
    assert reply.text.startswith("{user.unique_id} {0.__class__}[31m")
    assert "\n" not in reply.text
    assert "\x1b" not in reply.text
    assert "(x) got 10m from r in host" in reply.text
    assert len(reply.text) < 300


# --- state, reload ----------------------------------------------------------------------


def test_state_stays_bounded_with_many_distinct_viewers() -> None:
    compiled = ruleset(RATE % "user")
    e = Engine(compiled, EngineState(max_keys=1000))
    for i in range(20_000):
        run(e, comment("hi", who=user(i), at=i * 0.001))
    assert e.state.entries() <= 1100
    # Idle users are swept: long after, their windows are gone.
    run(e, comment("hi", who=user("late"), at=3600))
    assert e.state.entries() < 10


def test_a_sweep_drops_stale_entries_oldest_first_and_stops_at_a_live_one() -> None:
    """A sweep costs what it drops: it walks from the least recently used entry and
    stops at the first live one; one left behind goes once that one has been used."""
    lru: Lru[str, float] = Lru(10)
    for key, last in [("a", 1.0), ("b", 2.0), ("c", 9.0), ("d", 3.0)]:
        lru.put(key, last)
    lru.expire(lambda last: last <= 5.0)
    assert list(lru.data) == ["c", "d"]
    lru.get("c")
    lru.expire(lambda last: last <= 5.0)
    assert list(lru.data) == ["c"]


def test_reload_swaps_only_a_ruleset_that_checks(tmp_path: Path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text(
        "version: 1\nrules:\n  - id: a\n    on: comment\n    when: {text.words: bad}\n"
        "    then: [ban]\n"
    )
    e = Engine()
    assert e.reload([tmp_path]) == []
    assert fired(e, comment("bad")) == ["a"]
    rules.write_text(
        "version: 1\nrules:\n  - id: a\n    on: comment\n    when: {text.wrods: x}\n"
        "    then: [ban]\n"
    )
    problems = e.reload([tmp_path])
    assert problems
    assert "text.wrods" in str(problems[0])
    assert fired(e, comment("bad", at=1)) == ["a"]  # the old rules still hold
    rules.write_text(
        "version: 1\nrules:\n  - id: b\n    on: comment\n    when: {text.words: worse}\n"
        "    then: [ban]\n"
    )
    assert e.reload([tmp_path]) == []
    assert fired(e, comment("bad", at=2)) == []
    assert fired(e, comment("worse", at=3)) == ["b"]


def test_the_state_of_a_busy_room_is_invisible_to_the_garbage_collector() -> None:
    """Windows, strikes and copy-paste clusters are tuples of floats, ints and strings,
    which the collector stops tracking: a full collection does not walk a busy room's
    hundred thousand entries (it did, at 100 ms a pause)."""
    e = engine(
        (RATE % "user")
        + """
  - id: raid
    on: comment
    when:
      repeat: {count: 4, within: 30s, per: room, similarity: 0.85}
    then: [log]
  - id: insults
    on: comment
    when: {text.words: [idiot]}
    escalate: {window: 1h, steps: [mute 1m, ban]}
"""
    )
    words = ["game", "nice", "play", "wow", "level", "boss", "run", "idiot", "été", "🔥"]
    rng = random.Random(5)
    for i in range(3000):
        text = " ".join(rng.choices(words, k=5)) if i % 50 else "follow @raider for free gifts"
        run(e, comment(text, who=user(i % 700), at=i * 0.01))
    state = e.state
    # A tuple goes untracked once what it holds is: a cluster's times tuple is
    # untracked by the first collection, the cluster itself by the next.
    gc.collect()
    gc.collect()
    times = [
        *(v for t in state.windows.values() for v in t.data.values()),
        *(v for t in state.strikes.values() for v in t.data.values()),
    ]
    clusters = [
        c
        for t in state.repeats.values()
        for cs in t.data.values()
        for c in cs.clusters.data.values()
    ]
    assert len(times) > 500
    assert len(clusters) > 500
    entries = times + clusters
    linked = [c for c in clusters if c[1]]
    assert linked  # some texts were near-identical: their link sets are the exception
    assert [v for v in entries if gc.is_tracked(v)] == linked
