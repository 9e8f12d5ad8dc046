"""Test helpers that are not fixtures: the fake server in a thread for in-process CLI runs."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal

from modbot.fake.server import FakeEuler
from modbot.loopback import LoopbackServer, serve


@contextlib.contextmanager
def fake_in_thread(fake: FakeEuler) -> Iterator[LoopbackServer]:
    """Serve ``fake`` from its own event loop thread, so sync code (the CLI) can call it."""
    with fake_and_portal(fake) as (server, _):
        yield server


@contextlib.contextmanager
def fake_and_portal(fake: FakeEuler) -> Iterator[tuple[LoopbackServer, BlockingPortal]]:
    """Like ``fake_in_thread``, with the portal to call the fake on its own loop."""
    with (
        start_blocking_portal("asyncio") as portal,
        portal.wrap_async_context_manager(serve(fake.app)) as server,
    ):
        yield server, portal


async def until(check: Callable[[], object], timeout: float = 10.0) -> None:
    """Poll a condition on the fake server (it has no event to wait on for each one)."""
    with anyio.fail_after(timeout):
        while not check():  # noqa: ASYNC110
            await anyio.sleep(0.02)
