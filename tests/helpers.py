"""Test helpers that are not fixtures: the fake server in a thread for in-process CLI runs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from anyio.from_thread import start_blocking_portal

from modbot.fake.server import FakeEuler
from modbot.loopback import LoopbackServer, serve


@contextlib.contextmanager
def fake_in_thread(fake: FakeEuler) -> Iterator[LoopbackServer]:
    """Serve ``fake`` from its own event loop thread, so sync code (the CLI) can call it."""
    with (
        start_blocking_portal("asyncio") as portal,
        portal.wrap_async_context_manager(serve(fake.app)) as server,
    ):
        yield server
