"""A clock that moves only when told to, for tests, replays and scenarios."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class FakeClock:
    """A settable clock: ``advance()`` moves both wall and monotonic time."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 11, 24, 20, 0, 0, tzinfo=UTC)
        if self._now.tzinfo is None:
            msg = "FakeClock needs a timezone-aware start time"
            raise ValueError(msg)
        self._mono = 1000.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (never backwards)."""
        if seconds < 0:
            msg = "a FakeClock cannot go backwards"
            raise ValueError(msg)
        self._now += timedelta(seconds=seconds)
        self._mono += seconds

    def set(self, when: datetime) -> None:
        """Jump to ``when`` if it is later than now (replays use event timestamps)."""
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        if when > self._now:
            self.advance((when - self._now).total_seconds())
