"""How long moderation calls wait: the delays of first tries and their percentiles.

Three delays are kept per first try of a call, each over the last 100,000 calls:
from the event's bundle reaching the daemon to the call being sent (``arrival``), from
the engine's decision to the call being sent (``decision``), and from the decision to
the API's answer (``answer``). Retries and replays are not counted.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from modbot.clock import Clock

KEPT = 100_000  # delays kept per kind


class Stamps(NamedTuple):
    """When an intent's event arrived and when it was decided (monotonic seconds)."""

    received: float | None = None
    decided: float | None = None


class CallLatency(NamedTuple):
    """Percentiles of a delay before moderation calls (ms), over the last 100,000 calls."""

    calls: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, delays: Iterable[float]) -> CallLatency:
        ordered = sorted(delays)
        n = len(ordered)
        if not n:
            return cls(0, 0.0, 0.0, 0.0)
        return cls(
            n,
            round(ordered[n // 2] * 1000, 1),
            round(ordered[min(n - 1, int(n * 0.99))] * 1000, 1),
            round(ordered[-1] * 1000, 1),
        )


class Delays:
    """The delays of first tries, noted around each call by :meth:`timed`."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._arrival: deque[float] = deque(maxlen=KEPT)
        self._decision: deque[float] = deque(maxlen=KEPT)
        self._answer: deque[float] = deque(maxlen=KEPT)

    @contextlib.contextmanager
    def timed(self, stamps: Stamps | None) -> Iterator[None]:
        """Note a first try's delays (``stamps`` None: not a first try, nothing noted)."""
        if stamps is None:
            yield
            return
        sent = self.clock.monotonic()
        if stamps.received is not None:
            self._arrival.append(sent - stamps.received)
        if stamps.decided is not None:
            self._decision.append(sent - stamps.decided)
        try:
            yield
        finally:
            if stamps.decided is not None:
                self._answer.append(self.clock.monotonic() - stamps.decided)

    def percentiles(self) -> dict[str, CallLatency]:
        """``arrival_to_call``, ``decision_to_call`` and ``decision_to_answer``."""
        return {
            "arrival_to_call": CallLatency.of(self._arrival),
            "decision_to_call": CallLatency.of(self._decision),
            "decision_to_answer": CallLatency.of(self._answer),
        }
