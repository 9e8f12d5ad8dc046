"""The runtime context of `modbot run`: the interpreter tuned inside it, as it was after."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator

import pytest

from modbot.daemon import DaemonStatistics
from modbot.runtime import FULL_GC_SPACING, SWITCH_INTERVAL, YOUNG_GC, tuned_runtime

Settings = tuple[float, tuple[int, int, int], int, int]


def interpreter() -> Settings:
    """The process-wide settings the context may change."""
    return (sys.getswitchinterval(), gc.get_threshold(), gc.get_freeze_count(), len(gc.callbacks))


@pytest.fixture(autouse=True)
def untouched() -> Iterator[Settings]:
    """Each test starts from CPython's defaults and must leave the interpreter as found."""
    before = interpreter()
    assert sys.getswitchinterval() > SWITCH_INTERVAL
    assert gc.get_threshold()[0] < YOUNG_GC
    yield before
    assert interpreter() == before


class TestTunedRuntime:
    def test_settling_tunes_the_interpreter_and_leaving_restores_it(
        self, untouched: Settings
    ) -> None:
        """After settle() the switch interval is short, young collections wait for
        YOUNG_GC containers, full ones are FULL_GC_SPACING times further apart and
        start-up is frozen; leaving the context puts every setting back."""
        interval, (young, middle, old), frozen, _ = untouched
        with tuned_runtime(DaemonStatistics()) as runtime:
            assert interpreter()[:2] == (interval, (young, middle, old))  # not yet
            runtime.settle()
            assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
            assert gc.get_threshold() == (YOUNG_GC, middle, old * FULL_GC_SPACING)
            assert gc.get_freeze_count() > frozen
        assert interpreter() == untouched

    def test_a_second_settle_changes_nothing(self, untouched: Settings) -> None:
        """Settling twice does not multiply the thresholds again, and leaving still
        restores the interpreter's own values."""
        _, (_, middle, old), _, _ = untouched
        with tuned_runtime(DaemonStatistics()) as runtime:
            runtime.settle()
            runtime.settle()
            assert gc.get_threshold() == (YOUNG_GC, middle, old * FULL_GC_SPACING)
        assert interpreter() == untouched

    def test_the_interpreter_is_restored_when_the_run_fails(self, untouched: Settings) -> None:
        """An exception inside the context (a crash of the daemon) still restores the
        settings, and propagates."""

        def crash() -> None:
            with tuned_runtime(DaemonStatistics()) as runtime:
                runtime.settle()
                msg = "boom"
                raise RuntimeError(msg)

        with pytest.raises(RuntimeError, match="boom"):
            crash()
        assert interpreter() == untouched

    def test_a_start_up_that_fails_before_settling_tunes_nothing(self, untouched: Settings) -> None:
        """Without settle() (the rules did not load), nothing is frozen or tuned."""
        with tuned_runtime(DaemonStatistics()):
            assert interpreter()[:3] == untouched[:3]
            assert len(gc.callbacks) == untouched[3] + 1  # the pauses are measured
        assert interpreter() == untouched

    def test_full_collections_are_counted_only_inside(self) -> None:
        """A full collection inside the context is counted with its pause, from the
        start (before settle()); after leaving, collections are no longer watched."""
        stats = DaemonStatistics(max_gc_pause_ms=-1.0)
        with tuned_runtime(stats):
            gc.collect()
            assert stats.gc_full == 1
            assert stats.max_gc_pause_ms >= 0.0  # measured
        gc.collect()
        assert stats.gc_full == 1
