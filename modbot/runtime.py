"""The interpreter tuned for ``modbot run``: one context, left as it was found (I/O).

Process-wide settings belong to the process, not to a component: ``Daemon.run`` enters
:func:`tuned_runtime` once, and nothing else in modbot touches the collector or the
switch interval. Entering it starts measuring the collector's pauses; ``settle()``,
called when start-up is done, applies the tuning; leaving undoes all of it, so a test
that runs the daemon in-process finds the interpreter as it was. Each setting, with
the figures that chose it (``bench/load.py``, 200 streams at 5,000 events/s on 2 cores;
see docs/benchmarks.md):

- **Pauses measured** (``gc.callbacks``): full collections and the longest pause go
  into the daemon's statistics and its ``stopped`` line; a collection stops the event
  loop, so these figures explain a latency spike that nothing else in the log does.
- **Start-up frozen** (``gc.freeze``): what start-up made (modules, the compiled rules,
  the recovered state) is left out of every later collection, so the pauses depend on
  what moderation holds. The freeze (22787fe) has no figure of its own: together with
  the engine's per-user state kept in tuples the collector does not track (f65f44c), a
  busy run's tracked objects fell from 312,000 to 4,000 and its longest full
  collection from 110 to 30 ms.
- **Full collections ten times further apart** (``FULL_GC_SPACING``): with start-up
  frozen the old generation is small, so CPython's rule (collect when a quarter as much
  again is pending) would walk it every few seconds; ten times the third threshold
  makes it about one full collection a run instead of ten (ec5a7ae).
- **Young collections after** ``YOUNG_GC`` **containers, not 700**: the collector's
  share of the loop under load fell from 5.8% (700) to 1.8% (20,000), but 20,000 made
  pauses of 20-50 ms; 2,000 costs half of what 700 does in all, with pauses of a few
  milliseconds (45f6d95, a248c53).
- **Switch interval** ``SWITCH_INTERVAL`` **(0.2 ms, CPython's default is 5 ms)**:
  SQLite works in aiosqlite's thread and takes the interpreter lock for each batch and
  each hand-back; behind a busy engine every take waited out the whole interval, so
  audit writes, and the calls they precede, queued behind the engine. Each step was
  measured together with other changes of its commit: 1 ms with multi-row inserts and
  decisions in slices, decision -> call p99 170 -> 129 ms (6a42749); 0.2 ms with the
  engine's state out of the collector's way, 129 -> about 40 ms (f65f44c).

This is STYLE.md's "speed work stays local": the tricks that are interpreter settings
live here, with their figures, and not in the modules they speed up.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Protocol

SWITCH_INTERVAL = 0.0002  # seconds between the interpreter's thread switches
FULL_GC_SPACING = 10  # the oldest generation's threshold, times this
YOUNG_GC = 2_000  # containers allocated between two young collections (CPython: 700)


class GcStats(Protocol):
    """Where the collector's pauses are counted (the daemon's statistics)."""

    gc_full: int  # full (generation 2) collections
    max_gc_pause_ms: float  # the longest collection


class GcPauses:
    """Measures the garbage collector's pauses (``gc.callbacks``) into ``stats``."""

    def __init__(self, stats: GcStats) -> None:
        self.stats = stats
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause_ms = (time.perf_counter() - self._started) * 1000
        if info.get("generation") == 2:
            self.stats.gc_full += 1
        if pause_ms > self.stats.max_gc_pause_ms:
            self.stats.max_gc_pause_ms = round(pause_ms, 1)


class Tuning:
    """The runtime inside :func:`tuned_runtime`: ``settle()`` once start-up is done."""

    def __init__(self, stack: ExitStack) -> None:
        self._stack = stack
        self.settled = False

    def settle(self) -> None:
        """Freeze what start-up made, then tune the collector and the switch interval.

        Each change registers its undo with the context, so leaving it restores the
        interpreter whether or not this was called. A second call changes nothing.
        """
        if self.settled:
            return
        self.settled = True
        stack = self._stack
        gc.freeze()
        stack.callback(gc.unfreeze)
        young, middle, old = gc.get_threshold()
        stack.callback(gc.set_threshold, young, middle, old)
        gc.set_threshold(max(young, YOUNG_GC), middle, old * FULL_GC_SPACING)
        stack.callback(sys.setswitchinterval, sys.getswitchinterval())
        sys.setswitchinterval(SWITCH_INTERVAL)


@contextmanager
def tuned_runtime(stats: GcStats) -> Iterator[Tuning]:
    """Measure the collector's pauses into ``stats`` until the context is left.

    The tuning itself waits for :meth:`Tuning.settle`, so that the freeze takes what
    start-up made; leaving undoes it in the reverse order, then stops measuring.
    """
    with ExitStack() as stack:
        watch = GcPauses(stats)
        gc.callbacks.append(watch)
        stack.callback(gc.callbacks.remove, watch)
        yield Tuning(stack)
