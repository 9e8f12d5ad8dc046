"""Stream helpers shared by the stages of the pipeline (watcher, engine loop, executor).

``send_nowait_or_wait`` is a primitive that breaks trio's rule "always or never
checkpoint" on purpose, and says so in its name: it never yields to the loop while the
stream has room, and waits (yielding) only when the stream is full.
"""

from __future__ import annotations

from typing import TypeVar

import anyio
from anyio.streams.memory import MemoryObjectSendStream

T = TypeVar("T")


async def send_nowait_or_wait(stream: MemoryObjectSendStream[T], item: T) -> None:
    """Deliver ``item`` without yielding when there is room; wait (and yield) when full.

    ``send()`` yields to the loop before it delivers: the receiver would see the item a
    turn of the loop later (a few milliseconds under load), and the sender would pay a
    turn for every item. Callers yield at their next receive anyway, so a task that
    sends here is still cancellable at its next ``await`` on a receive.
    """
    try:
        stream.send_nowait(item)
    except anyio.WouldBlock:
        await stream.send(item)
