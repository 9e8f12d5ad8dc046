"""Builders for executor tests: events in the fake streamer's room, decisions of one rule."""

from __future__ import annotations

import itertools
from typing import Any

import anyio

from modbot.actions.executor import Executor, Work
from modbot.events import Event, User
from modbot.fake.clock import FakeClock
from modbot.fake.server import FakeEuler
from modbot.rules.engine import Decision

_IDS = itertools.count(7_390_000_000_000_000_001)


def event(fake: FakeEuler, clock: FakeClock, user: int = 1, text: str = "bad words") -> Event:
    room = fake.streamer("host_handle").room_id
    return Event(
        kind="comment",
        ts=clock.now(),
        streamer="host_handle",
        room_id=room,
        msg_id=str(next(_IDS)),
        user=User(user_id=f"68{user:017d}", unique_id=f"viewer_{user}"),
        text=text,
    )


def decision(e: Event, action: str, rule: str = "r", **fields: Any) -> Decision:
    assert e.user is not None
    return Decision(
        rule=rule,
        rule_hash="h",
        action=action,
        mode=fields.pop("mode", "enforce"),
        detail="test",
        user_id=e.user.user_id,
        unique_id=e.user.unique_id,
        **fields,
    )


async def execute(executor: Executor, *work: Work) -> None:
    """Run the executor over these items until every call is finished and recorded."""
    send, receive = anyio.create_memory_object_stream[list[Work]](100)
    async with send:
        for item in work:
            await send.send([item])
    await executor.run(receive)
