"""Chaos: a raid while the API answers 429/500/503, slows to 2 s, drops every close code
and expires the access token; afterwards everything is accounted for (issue 6)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from modbot.audit.query import AuditFilter
from modbot.audit.store import AuditStore, Entry, default_db
from modbot.clock import SystemClock
from modbot.daemon import Daemon
from modbot.euler.oauth import TokenStore
from modbot.euler.policy import CLOSE_CODES, Next
from modbot.euler.tokens import token_set_from_answer
from modbot.events import Event
from modbot.fake import messages as m
from modbot.fake.harness import user_calls
from modbot.fake.server import FakeEuler, Fault
from modbot.loopback import LoopbackServer, serve
from modbot.rules.engine import Decision
from tests.helpers import until
from tests.test_daemon import settings_for

pytestmark = pytest.mark.usefixtures("isolated")

RAID = "host_handle"
QUIET = "quiet_host"
# A streamer per STOP code: the daemon stops watching it and says why; the others go on.
STOPPERS = {code: f"stop_{code}" for code, (nxt, _) in CLOSE_CODES.items() if nxt is Next.STOP}
# Per-route budgets the fake advertises (requests per second) and enforces with 429s.
ROUTE_LIMITS = {"ban": 6, "mute": 6, "chat": 2, "toggle_comments": 2}
RAIDERS = 60


@pytest.fixture
async def chaos_fake() -> AsyncIterator[tuple[FakeEuler, LoopbackServer]]:
    fake = FakeEuler(api_key="chaos-api-key-7731", client_secret="chaos-client-secret-9902")
    for handle in (RAID, QUIET, *STOPPERS.values()):
        fake.add_streamer(handle, live=True)
    fake.route_limits = {route: (limit, 1.0) for route, limit in ROUTE_LIMITS.items()}
    async with serve(fake.app) as server:
        yield fake, server


async def _audit(state: Path) -> list[Entry]:
    async with AuditStore.open(default_db(state)) as store:
        return await store.query(AuditFilter(limit=None, oldest_first=True))


@pytest.mark.timeout(90)
async def test_chaos_during_a_raid(
    chaos_fake: tuple[FakeEuler, LoopbackServer],
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    fake, server = chaos_fake
    rng = random.Random(20261125)
    state = tmp_path / "state"
    scopes = [
        "webcast:bulk_live_check",
        "webcast:ban",
        "webcast:mute",
        "webcast:chat",
        "webcast:comments",
    ]
    TokenStore(state).save(token_set_from_answer(fake.issue_tokens(scopes), fake.now()))
    settings = settings_for(
        fake, server, state, streamers=[RAID, QUIET, *STOPPERS.values()], max_retry_wait=5.0
    )
    decided: list[tuple[Event, Decision]] = []
    daemon = Daemon(
        settings,
        clock=SystemClock(),
        handle_signals=False,
        grace=5,
        on_decisions=lambda event, ds: decided.extend((event, d) for d in ds),
    )
    delivered = 0
    slur_users: set[str] = set()

    async def raid() -> None:
        """20 comments every 100 ms: slurs (bans), scams (mutes), copy-paste, chat.

        One slur and one scam in 20: 10 bans and 10 mutes a second still outrun the
        6/s budgets (a backlog under every fault), and the backlog drains in seconds."""
        nonlocal delivered
        for tick in range(120):
            room = fake.streamer(RAID)
            batch = []
            for i in range(20):
                n = tick * 20 + i
                viewer = m.Viewer(f"raider_{n % RAIDERS}", str(6_900_000_000_000_000_000 + n))
                kind = n % 20
                if kind == 0:
                    text = "you are a slurword"
                elif kind == 1:
                    text = "free coins at my profile"
                elif kind < 10:
                    text = "FOLLOW @raid_king FOR FREE GIFTS"
                else:
                    text = f"hello stream {n}"
                batch.append((viewer, text))
            messages = [m.chat(room.room_id, v, t, fake.now_ms()) for v, t in batch]
            if fake.emit(RAID, messages):
                delivered += len(messages)
                slur_users.update(v.user_id for v, t in batch if "slurword" in t)
            await anyio.sleep(0.1)

    async def faults() -> None:
        """Every kind of trouble, spread over the raid."""
        await anyio.sleep(0.5)
        for step in range(24):
            choice = step % 6
            if choice == 0:
                route = rng.choice(["ban", "mute", "chat"])
                fake.inject(route, Fault(status=429, retry_after=1, times=2))
            elif choice == 1:
                fake.inject("*", Fault(status=rng.choice([500, 503]), times=3))
            elif choice == 2:
                fake.inject(rng.choice(["ban", "mute"]), Fault(latency=2.0, times=2))
            elif choice == 3:
                codes = [c for c, (nxt, _) in CLOSE_CODES.items() if nxt is not Next.STOP]
                fake.drop(RAID, codes[(step // 6) % len(codes)])
                fake.drop(QUIET, codes[(step // 6 + 3) % len(codes)])
            elif choice == 4:
                fake.expire_access_tokens()
            else:
                fake.drop(RAID, rng.choice([4006, 4500, 4555, 4999]))
            await anyio.sleep(0.5)

    async with anyio.create_task_group() as tg:

        async def run() -> None:
            assert await daemon.run() == 0

        tg.start_soon(run)
        await until(lambda: fake.connections() == 2 + len(STOPPERS), timeout=20)
        for code, handle in STOPPERS.items():
            fake.drop(handle, code)
        async with anyio.create_task_group() as chaos:
            chaos.start_soon(raid)
            chaos.start_soon(faults)
        fake.clear_faults()

        # Everything settles: each decision has a final status, nothing is in flight.
        async def settled() -> bool:
            rows = await _audit(state)
            return bool(rows) and not any(r.status == "pending" for r in rows)

        with anyio.fail_after(40):
            while not (  # noqa: ASYNC110 (polling the audit DB: there is no event to wait on)
                await settled() and daemon.executor and not daemon.executor.statistics().in_flight
            ):
                await anyio.sleep(0.2)
        # Still consuming: a new slur after the chaos is moderated.
        await until(lambda: fake.connections(RAID) == 1, timeout=30)
        late = m.Viewer("late_troll", "6999999999999999999")
        room = fake.streamer(RAID)
        fake.emit(RAID, [m.chat(room.room_id, late, "slurword", fake.now_ms())])
        await until(lambda: late.user_id in room.bans, timeout=20)
        daemon.stop()

    rows = await _audit(state)
    assert delivered > 1000
    assert daemon.stats.errors == 0
    # Every decision reached a final audit status (none left pending or lost).
    assert not [r for r in rows if r.status == "pending"]
    audited = {(r.msg_id, r.rule, r.action) for r in rows if r.msg_id}
    for event, d in decided:
        assert (event.msg_id, d.rule, d.action) in audited, (event.msg_id, d.rule, d.action)
    # Every slur that reached the daemon ended in a done or a failed ban, with a reason.
    bans = {r.user_id: r for r in rows if r.action == "ban" and r.undo_of is None}
    assert slur_users - {late.user_id} <= set(bans)
    assert all(r.error for r in bans.values() if r.status == "failed")
    assert sum(r.status == "done" for r in bans.values()) > len(bans) // 2
    # Every done ban and mute reached the fake exactly once, or twice and flagged.
    ok = user_calls(fake, "ban", "mute")
    for r in rows:
        if r.status == "done" and r.action in ("ban", "mute") and r.undo_of is None:
            route = "ban" if r.action == "ban" else "mute"
            count = ok[route, r.user_id]
            assert count == 1 or (count == 2 and r.params.get("recovered_after_restart")), r
    # Rate manners: never more than the advertised budget per route in any second, and
    # the fake never had to refuse a call for exceeding it.
    for route, limit in ROUTE_LIMITS.items():
        times = sorted(c.arrived for c in fake.calls_to(route))
        for i, start in enumerate(times):
            window = [t for t in times[i : i + limit + 1] if t - start < 1.0]
            assert len(window) <= limit, (route, window)
    assert fake.limited == Counter()
    # The STOP codes stopped their streamers (and only them), with the reason.
    watcher = daemon.watcher
    assert watcher is not None
    stopped = {s.handle for s in watcher.streams.values() if s.state.name == "STOPPED"}
    assert stopped == set(STOPPERS.values())
    # No secret reached a log line, an audit row or an error: the API key, the client
    # secret, and every access and refresh token issued (refreshes included).
    logs = capfd.readouterr()
    secrets = [fake.api_key, fake.client_secret, *fake.oauth.access, *fake.oauth.refresh]
    assert len(fake.oauth.access) >= 2  # the expired token was refreshed
    stored = b"".join(p.read_bytes() for p in sorted(state.glob("audit.db*")))
    assert b"slurword" in stored
    for secret in secrets:
        assert secret not in logs.out + logs.err
        assert secret.encode() not in stored
