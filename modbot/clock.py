"""The clock, injected everywhere so that windows, cooldowns and expiries are testable.

``Clock.now()`` is wall time (UTC, timezone-aware) for timestamps and expiries;
``Clock.monotonic()`` is for measuring intervals. ``modbot.fake.clock.FakeClock``
is the test double; ``SystemClock`` is the real one.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Something that tells the time."""

    def now(self) -> datetime:
        """The current UTC time, timezone-aware."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def timestamp(self) -> float:
        """Seconds since the epoch."""
        return time.time()


def epoch(clock: Clock) -> float:
    """Seconds since the epoch according to ``clock``."""
    return clock.now().timestamp()
