"""One bad intent, call, answer or row never stops the executor, and the bot says only what it means."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, cast

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modbot.actions import executor as executor_module
from modbot.actions import recovery as recovery_module
from modbot.actions.executor import Executor, Work
from modbot.actions.plan import intent_for
from modbot.actions.timers import Timers
from modbot.audit.query import AuditFilter
from modbot.audit.store import AuditStore
from modbot.errors import (
    ApiUnavailable,
    AuthExpired,
    BadResponse,
    NotFound,
    PlanOrScopeDenied,
    RateLimited,
    RequestRejected,
    ServerError,
)
from modbot.euler.client import EulerClient
from modbot.events import Event, User
from modbot.fake.clock import FakeClock
from modbot.fake.server import FakeEuler
from modbot.rules.engine import Engine
from tests.rules.util import engine as engine_of

from .util import decision, event, execute


async def rows(store: AuditStore) -> list[Any]:
    return await store.query(AuditFilter(limit=None, oldest_first=True))


async def test_a_call_that_raises_anything_fails_alone(
    client: EulerClient, store: AuditStore, fake: FakeEuler, clock: FakeClock, monkeypatch
) -> None:
    """A non-API error from a call is that intent's failure; the next intent is carried out."""
    real_mute = client.mute

    async def mute(room: str, user: str, duration: int, msg: str | None = None) -> None:
        if user.endswith("1"):
            raise RecursionError("maximum recursion depth exceeded \ud800\x1b[2J")
        await real_mute(room, user, duration, msg)

    monkeypatch.setattr(client, "mute", mute)
    executor = Executor(client, store, clock)
    one, two, three = (event(fake, clock, n) for n in (1, 2, 3))
    await execute(
        executor,
        Work(one, [decision(one, "mute", duration_s=60.0)]),
        Work(two, [decision(two, "ban")]),
        Work(three, [decision(three, "mute", duration_s=60.0)]),
    )
    found = await rows(store)
    assert [(r.action, r.status) for r in found] == [
        ("mute", "failed"),
        ("ban", "done"),
        ("mute", "done"),
    ]
    error = found[0].error or ""
    assert error.startswith("RecursionError: maximum recursion depth exceeded")
    assert "\ud800" not in error
    assert "\x1b" not in error
    assert executor.statistics().failed == 1
    assert await store.count("pending") == 0


async def test_a_decision_that_cannot_become_an_intent_is_counted_and_the_next_goes_on(
    executor: Executor, store: AuditStore, fake: FakeEuler, clock: FakeClock, monkeypatch
) -> None:
    one, two = event(fake, clock, 1), event(fake, clock, 2)

    def intent_for_some(d: Any, e: Event) -> Any:
        if e is one:
            raise ValueError("a decision no rule could have made")
        return intent_for(d, e)

    monkeypatch.setattr(executor_module, "intent_for", intent_for_some)
    await execute(executor, Work(one, [decision(one, "ban")]), Work(two, [decision(two, "ban")]))
    assert [(r.action, r.status, r.user_id) for r in await rows(store)] == [
        ("ban", "done", two.user.user_id)  # type: ignore[union-attr]
    ]
    assert executor.statistics().errors == 1


@pytest.mark.parametrize(
    "nickname", ["", "   ", "\u202e", "\u200b\u200f\u2066", "\u3000\u2800", "\U000e0041\ufeff"]
)
async def test_a_reply_that_renders_blank_is_skipped_not_sent(
    executor: Executor, store: AuditStore, fake: FakeEuler, clock: FakeClock, nickname: str
) -> None:
    rules = engine_of(
        """
        version: 1
        rules:
          - id: greet
            on: comment
            when: {text.contains: hello}
            then: [{reply: "{user.nickname}"}]
        """
    )
    e = event(fake, clock, 1, text="hello")
    e = dataclasses.replace(e, user=User(e.user.user_id, "v", nickname))  # type: ignore[union-attr]
    decisions = rules.evaluate(e, e.ts)
    assert [d.action for d in decisions] == ["reply"]
    await execute(executor, Work(e, decisions))
    (row,) = await rows(store)
    assert row.status == "skipped"
    assert "not said: the message is empty" in row.detail
    assert fake.calls_to("chat") == []


HOSTILE_RULES = """
version: 1
rules:
  - id: slurs
    on: comment
    when: {text.words: [slurword, "free coins"]}
    then: [ban]
  - id: nick-slurs
    on: comment
    when: {user.nickname.words: [nickslur]}
    then: [ban]
  - id: observed-only
    on: comment
    mode: observe
    when: {text.words: [harmless]}
    then: [{mute: 1m}]
  - id: greet
    on: comment
    when: {text.contains: hello}
    then: [{reply: "hi {user.nickname}"}]
"""


@pytest.mark.parametrize(
    ("nickname", "said"),
    [
        ("@everyone free coins at scam.example", None),
        ("visit scam.com", None),
        ("scam(dot)com", None),
        ("s l u r w o r d", None),
        ("\uff33\uff2c\uff35\uff32\uff37\uff2f\uff32\uff24", None),
        ("sl\u200burword", None),
        ("nickslur", None),
        ("harmless", "hi harmless"),
        ("Anna \u202edlrow", "hi Anna dlrow"),
        ("Zoë 🌸", "hi Zoë 🌸"),
    ],
)
async def test_the_bot_never_says_what_its_rules_would_punish(
    store: AuditStore,
    client: EulerClient,
    fake: FakeEuler,
    clock: FakeClock,
    nickname: str,
    said: str | None,
) -> None:
    """A reply holding a link or a term an enforcing rule acts on is skipped with the reason."""
    rules = engine_of(HOSTILE_RULES)
    executor = Executor(client, store, clock, speech=rules.speech_problem)
    e = event(fake, clock, 1, text="hello")
    e = dataclasses.replace(e, user=User(e.user.user_id, "viewer_1", nickname))  # type: ignore[union-attr]
    decisions = [d for d in rules.evaluate(e, e.ts) if d.action == "reply"]
    assert decisions
    await execute(executor, Work(e, decisions))
    chats = [c.params.get("content") or c.params.get("text") for c in fake.calls_to("chat")]
    if said is None:
        assert chats == []
        (row,) = await rows(store)
        assert row.status == "skipped"
        assert "not said: the message" in row.detail
    else:
        assert len(chats) == 1
        assert [r.params["text"] for r in await rows(store)] == [said]


def test_template_fields_lose_every_invisible_and_bidi_control() -> None:
    from modbot.rules.schema import parse_template

    template = parse_template("hi {user.nickname}!")
    hostile = "a\u202eb\u2066c\u200bd\u061ce\ufeff\u2060f\U000e0041\x1b[2J\u2028g"
    text = template.render({"user.nickname": hostile})
    assert text == "hi abcdef[2J g!"


async def test_a_poison_row_is_replayed_once_and_never_again(
    client: EulerClient, store: AuditStore, fake: FakeEuler, clock: FakeClock, monkeypatch
) -> None:
    """A replay that never finishes (the process dies in it) is not tried at the next start."""
    e = event(fake, clock, 1)
    await store.add([intent_for(decision(e, "ban"), e).entry()], clock.now())

    async def hangs(*args: object, **kwargs: object) -> None:
        await anyio.sleep_forever()

    monkeypatch.setattr(client, "ban", hangs)
    monkeypatch.setattr(recovery_module, "RECOVER_CALL_LIMIT", 0.05)
    with anyio.move_on_after(0.02):  # the process is killed in the middle of the replay
        await Executor(client, store, clock).recover()
    (row,) = await rows(store)
    assert row.status == "pending"
    assert row.params["replayed_at_start"] is True
    # The next start does not call it again.
    assert await Executor(client, store, clock).recover() == (0, 1)
    (row,) = await rows(store)
    assert row.status == "failed"
    assert "interrupted again" in (row.error or "")
    assert fake.calls_to("ban") == []


async def test_a_replay_that_hangs_fails_after_its_limit_and_start_up_goes_on(
    client: EulerClient, store: AuditStore, fake: FakeEuler, clock: FakeClock, monkeypatch
) -> None:
    one, two = event(fake, clock, 1), event(fake, clock, 2)
    await store.add(
        [
            intent_for(decision(one, "mute", duration_s=60.0), one).entry(),
            intent_for(decision(two, "ban"), two).entry(),
        ],
        clock.now(),
    )

    async def hangs(*args: object, **kwargs: object) -> None:
        await anyio.sleep_forever()

    monkeypatch.setattr(client, "mute", hangs)
    monkeypatch.setattr(recovery_module, "RECOVER_CALL_LIMIT", 0.05)
    assert await Executor(client, store, clock).recover() == (2, 0)
    found = await rows(store)
    assert [(r.action, r.status) for r in found] == [("mute", "failed"), ("ban", "done")]
    assert "took over 0.05s" in (found[0].error or "")


async def test_a_row_that_cannot_be_rebuilt_fails_with_why(
    executor: Executor, store: AuditStore, fake: FakeEuler, clock: FakeClock
) -> None:
    e = event(fake, clock, 1)
    entry = intent_for(decision(e, "mute", duration_s=60.0), e).entry()
    entry = dataclasses.replace(entry, params={**entry.params, "duration_s": "forever"})
    good = event(fake, clock, 2)
    await store.add([entry, intent_for(decision(good, "ban"), good).entry()], clock.now())
    await executor.recover()
    found = await rows(store)
    assert [(r.action, r.status) for r in found] == [("mute", "failed"), ("ban", "done")]
    # Refused as the row is rebuilt (both builds alike), saying which param is wrong.
    assert "TypeError" in (found[0].error or "")
    assert "duration_s is str, not float" in (found[0].error or "")


@pytest.mark.parametrize(
    ("changed", "why"),
    [
        ({"duration_s": True}, "duration_s is bool, not float"),
        ({"duration_s": [60]}, "duration_s is list, not float"),
        ({"text": 7}, "text is int, not str"),
        ({"enabled": "yes"}, "enabled is str, not bool"),
        ({"for_s": "2m"}, "for_s is str, not float"),
        ({"duration_s": 10**400}, "duration_s is out of range"),
        ({"duration_s": 60}, None),  # a whole number of seconds, written as an int
    ],
)
async def test_a_recorded_param_of_the_wrong_kind_is_refused_as_the_row_is_rebuilt(
    executor: Executor,
    store: AuditStore,
    fake: FakeEuler,
    clock: FakeClock,
    changed: dict[str, Any],
    why: str | None,
) -> None:
    e = event(fake, clock, 1)
    entry = intent_for(decision(e, "mute", duration_s=60.0), e).entry()
    await store.add([dataclasses.replace(entry, params={**entry.params, **changed})], clock.now())
    await executor.recover()
    (found,) = await rows(store)
    if why is None:
        assert (found.status, found.params["duration_s"]) == ("done", 60.0)
    else:
        assert found.status == "failed"
        assert why in (found.error or "")


async def test_a_timer_that_crashes_ends_failed_and_the_next_fires(
    executor: Executor, store: AuditStore, fake: FakeEuler, clock: FakeClock, monkeypatch
) -> None:
    one, two = event(fake, clock, 1), event(fake, clock, 2)
    await execute(
        executor,
        Work(one, [decision(one, "mute", duration_s=900.0)]),
        Work(two, [decision(two, "mute", duration_s=900.0)]),
    )
    timers = Timers(executor, store, clock)
    real = executor.carry_out
    calls = 0

    async def carry_out(intent: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
        return await real(intent)

    monkeypatch.setattr(executor, "carry_out", carry_out)
    clock.advance(1000)
    assert await timers.fire_due() == 2
    assert await store.pending_timers() == []
    assert [(r.action, r.status) for r in await rows(store)][-1] == ("unmute", "done")


# --- the property: random intents and random answers never stop the executor ----------------

ERRORS: list[BaseException | None] = [
    None,
    ValueError("a chat message needs some text"),
    RecursionError("deep"),
    UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
    OverflowError("cannot convert float infinity to integer"),
    TypeError("'NoneType' object is not subscriptable"),
    KeyError("status_code"),
    OSError(28, "No space left on device"),
    RuntimeError("\x1b]0;pwn\x07"),
    BadResponse("not JSON"),
    ServerError("500", status=500),
    ApiUnavailable("connection refused"),
    NotFound("room gone", status=404),
    RequestRejected("bad", status=400),
    AuthExpired("expired", status=401),
    PlanOrScopeDenied("no scope", route="ban", scope="webcast:ban", status=403),
    RateLimited("slow down", retry_after=0.0),
]


class ScriptedClient:
    """Answers each call with the next scripted error (None: success)."""

    def __init__(self, script: list[int]) -> None:
        self.script = script
        self.calls = 0

    async def _answer(self, *args: object, **kwargs: object) -> None:
        i = self.script[self.calls % len(self.script)] if self.script else 0
        self.calls += 1
        error = ERRORS[i]
        if error is not None:
            raise error

    mute = unmute = ban = unban = send_chat = toggle_comments = _answer


texts = st.one_of(
    st.none(),
    st.sampled_from(["", "   ", "\u202e", "ok", "x" * 10_000, "\ud800", "free coins"]),
    st.text(max_size=40),
)
actions = st.sampled_from(["mute", "ban", "reply", "warn", "comments", "log", "unmute", "nuke"])
durations = st.one_of(
    st.none(),
    st.sampled_from([0.0, -1.0, math.inf, math.nan, 1e300, 60.0, 3600.0]),
)


@st.composite
def decisions_of(draw: st.DrawFn) -> list[tuple[str, str | None, float | None, str, str | None]]:
    return draw(
        st.lists(
            st.tuples(
                actions,
                texts,
                durations,
                st.sampled_from(["enforce", "observe"]),
                st.sampled_from([None, "cooldown"]),
            ),
            max_size=12,
        )
    )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=decisions_of(), script=st.lists(st.integers(0, len(ERRORS) - 1), max_size=8))
async def test_random_intents_and_answers_never_stop_it_and_every_row_is_final(
    tmp_path: Path, plan: list[Any], script: list[int]
) -> None:
    clock = FakeClock()
    scripted = ScriptedClient(script)
    db = tmp_path / f"{abs(hash((repr(plan), repr(script))))}.db"
    async with AuditStore.open(db) as store:
        executor = Executor(cast("EulerClient", scripted), store, clock, dedup_window=0.0)
        works = []
        for n, (action, text, duration, mode, suppressed) in enumerate(plan):
            e = Event(
                kind="comment",
                ts=clock.now(),
                streamer="s",
                room_id="7000000000000000001",
                msg_id=str(7_100_000_000_000_000_000 + n),
                user=User(f"68{n:017d}", f"viewer_{n}", text or ""),
                text=text or "",
            )
            d = decision(
                e,
                action,
                rule=f"r{n}",
                mode=mode,
                text=text,
                duration_s=duration,
                enabled=bool(n % 2),
                suppressed=suppressed,
            )
            works.append(Work(e, [d]))
        with anyio.fail_after(20):
            await execute(executor, *works)
        found = await store.query(AuditFilter(limit=None))
        assert await store.count("pending") == 0
        assert len(found) + executor.statistics().errors == len(plan)
        assert all(r.status in {"done", "failed", "skipped", "observed"} for r in found)


async def test_a_pending_reply_is_checked_again_before_its_replay(
    client: EulerClient, store: AuditStore, fake: FakeEuler, clock: FakeClock
) -> None:
    """A reply left pending (decided under other rules, or by an older modbot) is not sent
    at start-up if the speech check refuses it now."""
    e = event(fake, clock, 1)
    said = intent_for(decision(e, "reply", text="bye, see scam.com"), e).entry()
    await store.add([said], clock.now())
    executor = Executor(client, store, clock, speech=Engine().speech_problem)
    assert await executor.recover() == (0, 1)
    (row,) = await rows(store)
    assert row.status == "skipped"
    assert "holds a link (scam.com)" in (row.error or "")
    assert fake.calls_to("chat") == []


async def test_all_replays_at_start_up_share_one_budget(
    client: EulerClient, store: AuditStore, fake: FakeEuler, clock: FakeClock, monkeypatch
) -> None:
    found = [event(fake, clock, n) for n in (1, 2, 3)]
    await store.add([intent_for(decision(e, "ban"), e).entry() for e in found], clock.now())

    async def hangs(*args: object, **kwargs: object) -> None:
        await anyio.sleep_forever()

    monkeypatch.setattr(client, "ban", hangs)
    monkeypatch.setattr(recovery_module, "RECOVER_CALL_LIMIT", 0.06)
    monkeypatch.setattr(recovery_module, "RECOVER_BUDGET", 0.1)
    await Executor(client, store, clock).recover()
    errors = [r.error or "" for r in await rows(store)]
    assert "took over 0.06s" in errors[0]
    assert "took over" in errors[1]  # what was left of the budget
    assert errors[2].startswith("not replayed: start-up spends at most 0.1s")
    assert await store.count("pending") == 0
