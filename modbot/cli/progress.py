"""The progress line of ``replay`` and ``record`` on a terminal."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Self, TextIO


class Progress:
    """A progress line on a terminal: ``what: N events read, R/s, T elapsed``, redrawn in
    place (carriage return, erase line) and cut to the terminal's width, at most once per
    ``interval`` seconds; the clock is read once per ``every`` steps, so a fast loop pays
    a counter increment per event. Off a terminal (``stream`` not a tty, or ``TERM=dumb``)
    it writes nothing at all, so scripts and ``--json`` output stay as they were."""

    def __init__(
        self,
        stream: TextIO,
        what: str,
        *,
        every: int = 1,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        columns: Callable[[], int] | None = None,
        enabled: bool | None = None,
    ) -> None:
        self.stream = stream
        self.what = what
        self.every = max(1, every)
        self.interval = interval
        self.clock = clock
        self.columns = columns or self._terminal_columns
        if enabled is None:
            enabled = os.environ.get("TERM") != "dumb" and is_terminal(stream)
        self.enabled = enabled
        self.count = 0
        self.started = clock()
        self.drawn_at = -math.inf
        self.drawn = False  # the line is on the screen now
        self.draws = 0
        self._unchecked = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.clear()  # an error's sentence starts on a line of its own

    def step(self, n: int = 1) -> None:
        """``n`` more events; redraws when the clock says it is time."""
        self.count += n
        if not self.enabled:
            return
        self._unchecked += n
        if self._unchecked >= self.every:
            self._unchecked = 0
            self.tick()

    def tick(self) -> None:
        """Redraw if ``interval`` has passed since the last time (also while nothing
        arrives, so the elapsed time moves on)."""
        if self.enabled:
            now = self.clock()
            if now - self.drawn_at >= self.interval:
                self._draw(now)

    def line(self, now: float) -> str:
        elapsed = max(0.0, now - self.started)
        rate = f"{self.count / elapsed:,.0f}/s" if elapsed >= 0.05 else "-/s"
        return f"{self.what}: {self.count:,} events read, {rate}, {_elapsed(elapsed)} elapsed"

    def clear(self) -> None:
        """Take the line off the screen (before other output on the same terminal)."""
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.drawn = False

    def finish(self) -> None:
        """The last figures, left on a line of their own if a line was ever shown."""
        if self.enabled and self.draws:
            self._draw(self.clock())
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False

    def _draw(self, now: float) -> None:
        self.drawn_at = now
        width = max(10, self.columns()) - 1  # the last column would wrap on some terminals
        self.stream.write("\r\x1b[K" + _fitted(self.line(now), width))
        self.stream.flush()
        self.drawn = True
        self.draws += 1

    def _terminal_columns(self) -> int:
        try:
            return os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError):
            return 80


class _AboveProgress:
    """Where log lines go while a progress line is shown: the line is taken off before
    each (the next tick draws it again), so no log line starts on its row."""

    def __init__(self, progress: Progress, target: TextIO) -> None:
        self.progress = progress
        self.target = target

    def write(self, text: str) -> int:
        self.progress.clear()
        return self.target.write(text)

    def flush(self) -> None:
        self.target.flush()

    def isatty(self) -> bool:
        return is_terminal(self.target)


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError):  # a closed or odd stream
        return False


def _fitted(line: str, width: int) -> str:
    """``line`` in ``width`` columns (it is ASCII): whole ``, ``-separated parts while
    they fit, a cut first part when even that does not."""
    if len(line) <= width:
        return line
    parts = line.split(", ")
    while len(parts) > 1 and len(", ".join(parts)) > width:
        parts.pop()
    return ", ".join(parts)[:width]


def _elapsed(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"
