"""Crash recovery: the ``pending`` intents a crash left, called again or given up.

Mutes, bans and comment toggles are retried within ten minutes of their decision; chat
messages within a minute (each action's ``recover_age`` in the action table). The
others are marked ``failed`` with why. Each row is replayed at most once, whatever
happens to the replay (the row notes the try before the call), for at most
``RECOVER_CALL_LIMIT`` seconds, and all of them within ``RECOVER_BUDGET``: no row can
hold start-up, or crash it twice. A chat message passes the speech check again (the
rules may have changed since it was decided).

A row that another process on this machine is still carrying out (an action by hand or
an undo from the command line while the daemon restarts: :func:`process_mark` names the
writer in the row) is left alone: that process finishes it, and calling it here too would
do it twice. If that process dies first, the next start-up replays the row.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime
from typing import TYPE_CHECKING, Any

import anyio

from modbot.actions import gate as gating
from modbot.actions.outcomes import Outcome, failure
from modbot.actions.plan import Intent, intent_from_entry
from modbot.actions.table import RECOVER_AGE, kind_of
from modbot.audit.records import Entry
from modbot.inert import shown

if TYPE_CHECKING:
    from modbot.actions.executor import Executor

RECOVER_CALL_LIMIT = 30.0  # one replay at start-up: then it failed, and start-up goes on
RECOVER_BUDGET = 60.0  # all replays at start-up together: the rest fail with why


async def recover(executor: Executor) -> tuple[int, int]:
    """Resolve the ``pending`` rows through ``executor``; (retried, given up)."""
    store, write = executor.store, executor.writers.write
    retried = given_up = 0
    now = executor.clock.now()
    deadline = anyio.current_time() + RECOVER_BUDGET
    for entry in await store.pending():
        if in_flight_elsewhere(entry):
            continue
        intent, why = _replayable(entry, now)
        left = deadline - anyio.current_time()
        if intent is not None and left <= 0:
            intent, why = None, f"not replayed: start-up spends at most {RECOVER_BUDGET:g}s"
        if intent is None:
            await store.finish([(entry.id, "failed", why)], now)
            given_up += 1
            continue
        if (problem := gating.unsaid(intent, executor.policy.speech)) is not None:
            await store.finish([(entry.id, "skipped", problem)], now)
            given_up += 1
            continue
        await store.patch_params(entry.id, {"replayed_at_start": True}, now)
        limit = min(RECOVER_CALL_LIMIT, left)
        outcome = Outcome(entry.id, "failed", f"its replay after a restart took over {limit:.3g}s")
        with anyio.move_on_after(limit):
            outcome = await executor.perform(intent, entry.id)
        outcome.params = {"recovered_after_restart": True}
        with anyio.CancelScope(shield=True):
            await write([outcome])
        retried += 1
    return retried, given_up


def process_mark() -> dict[str, Any]:
    """The params that name the process writing a row it calls at once (``carry_out``)."""
    return {"pid": os.getpid(), "host": socket.gethostname()[:100]}


def in_flight_elsewhere(entry: Entry) -> bool:
    """Whether a live process on this machine, not this one, wrote this pending row."""
    pid, host = entry.params.get("pid"), entry.params.get("host")
    if type(pid) is not int or pid <= 0 or pid == os.getpid():
        return False
    if host != socket.gethostname()[:100]:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by another user
    except OSError:
        return False
    return True


def _replayable(entry: Entry, now: datetime) -> tuple[Intent | None, str | None]:
    """The intent to call again, or None and why not."""
    why = not_replayed(entry, now)
    if why is not None:
        return None, why
    try:
        return intent_from_entry(entry), None
    except Exception as exc:  # noqa: BLE001 (a row no modbot wrote: said in the row)
        return None, f"could not be replayed after a restart: {failure(exc)}"


def not_replayed(entry: Entry, now: datetime) -> str | None:
    """Why a pending row is not called again at start-up (None: it is)."""
    if entry.params.get("replayed_at_start"):
        return "interrupted again while it was replayed after a restart; not tried a third time"
    try:
        age = (now - datetime.fromisoformat(entry.ts)).total_seconds()
    except (TypeError, ValueError):
        return f"its time {shown(str(entry.ts), 40)!r} cannot be read; not replayed"
    kind = kind_of(entry.action)
    limit = kind.recover_age if kind is not None else RECOVER_AGE
    if kind is None or kind.route is None or age > limit:
        return (
            f"interrupted by a restart and {age:.0f}s old when modbot came back "
            f"(retried only within {limit:.0f}s)"
        )
    return None
