"""An audit store on a real file and an executor on the fake Euler server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from modbot.actions.executor import Executor
from modbot.audit.store import AuditStore
from modbot.euler.client import EulerClient
from modbot.fake.clock import FakeClock


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AuditStore]:
    async with AuditStore.open(tmp_path / "state" / "audit.db") as opened:
        yield opened


@pytest.fixture
def executor(client: EulerClient, store: AuditStore, clock: FakeClock) -> Executor:
    return Executor(client, store, clock, reply_interval=3.0, dedup_window=30.0)
