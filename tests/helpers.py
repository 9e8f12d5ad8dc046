"""Test helpers that are not fixtures (the harness itself lives in modbot.fake.harness)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio

from modbot.fake.harness import fake_and_portal, fake_in_thread, start_run, statuses, wait

REPO = Path(__file__).parent.parent

__all__ = ["REPO", "fake_and_portal", "fake_in_thread", "start_run", "statuses", "until", "wait"]


async def until(check: Callable[[], object], timeout: float = 10.0) -> None:
    """Poll a condition on the fake server (it has no event to wait on for each one)."""
    with anyio.fail_after(timeout):
        while not check():  # noqa: ASYNC110
            await anyio.sleep(0.02)
