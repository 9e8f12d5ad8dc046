"""The executor's slots: how many calls may be in flight, in all and per route, and
which routes are paused after a ``RateLimited`` answer.

An in-flight slot is taken when a batch's calling intents are handed on (intake must not
run ahead of the calls) and freed by whichever task ends the call, or finds it was never
to be made (a repeat delivery already in the audit log): the slot travels with the call
from task to task, so it is taken with :meth:`Slots.take` and freed with
:meth:`Slots.free`, never by a ``with`` block.

``fast_acquire``: taking a free slot does not yield to the loop. Under load every turn
of the loop is a few milliseconds, and a call goes through two such slots (in flight,
route) before it is sent.
"""

from __future__ import annotations

from collections.abc import Iterable

import anyio

from modbot.clock import Clock, epoch

PAUSE_WAIT_MAX = 120.0  # the longest one wait for a paused route


class Slots:
    """In-flight slots (in all and per route) and the routes' pauses."""

    def __init__(
        self, clock: Clock, *, max_in_flight: int, per_route: int, routes: Iterable[str]
    ) -> None:
        self.clock = clock
        self.max_in_flight = max_in_flight
        self.running = 0  # calls holding an in-flight slot
        self._in_flight = anyio.Semaphore(max_in_flight, fast_acquire=True)
        self._per_route = per_route
        self._routes = {r: anyio.Semaphore(per_route, fast_acquire=True) for r in sorted(routes)}
        self._paused_until: dict[str, float] = {}

    async def take(self, calls: int) -> None:
        """Take ``calls`` in-flight slots (waiting while too many calls are in flight)."""
        for _ in range(calls):
            await self._in_flight.acquire()
        self.running += calls

    def free(self, calls: int) -> None:
        """Calls that are over (or were never made) free their in-flight slots."""
        self.running -= calls
        for _ in range(calls):
            self._in_flight.release()

    def route(self, route: str) -> anyio.Semaphore:
        """The slots of one route (a route added to the action table later gets its own)."""
        limit = self._routes.get(route)
        if limit is None:
            limit = self._routes[route] = anyio.Semaphore(self._per_route, fast_acquire=True)
        return limit

    def pause(self, route: str, seconds: float) -> None:
        """No call on ``route`` before ``seconds`` from now (a later pause wins)."""
        until = epoch(self.clock) + seconds
        self._paused_until[route] = max(self._paused_until.get(route, 0.0), until)

    async def wait_route(self, route: str) -> None:
        """Wait while ``route`` is paused (at most ``PAUSE_WAIT_MAX`` seconds)."""
        until = self._paused_until.get(route)
        if until is None:
            return
        delay = until - epoch(self.clock)
        if delay > 0:
            await anyio.sleep(min(delay, PAUSE_WAIT_MAX))

    def paused(self) -> int:
        """How many routes are paused now."""
        now = epoch(self.clock)
        return sum(1 for until in self._paused_until.values() if until > now)
