"""The test-only part of the harness: what only the tests read back or wait on.

What ``bench/`` drives as well (the fake in a thread, ``modbot run`` as a subprocess,
the audit rows read directly, the notify socket, who a call was for) stays in
``modbot.fake.harness``, which the bench imports from an installed modbot too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio

from modbot.fake.harness import audit_rows


def statuses(db: Path) -> list[tuple[str, str, str]]:
    """(user_id, status, params) of every audit action, oldest first."""
    return [(r["user_id"], r["status"], r["params"]) for r in audit_rows(db)]


async def until(check: Callable[[], object], timeout: float = 10.0) -> None:
    """Poll a condition on the fake server (it has no event to wait on for each one)."""
    with anyio.fail_after(timeout):
        while not check():  # noqa: ASYNC110
            await anyio.sleep(0.02)
