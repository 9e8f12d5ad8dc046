"""The API client alone: N moderation calls, C at a time, to the fake Euler server on
loopback, and what each costs this process.

    python bench/http_calls.py                       # 4,000 mutes, 32 at a time, 3 rounds
    python bench/http_calls.py --calls 2000 --concurrency 64 --profile
    python bench/http_calls.py --transport a,b        # A/B of transports, interleaved

The fake runs in a process of its own, so the CPU time counted (``time.process_time``
of this process, all threads) is the client's: EulerClient's own work, httpx, httpcore,
h11, anyio and asyncio. Reported per round and transport: calls/s, CPU microseconds per
call, and each call's latency (p50, p99) from the coroutine's start to its typed answer.
Transports are named in ``TRANSPORTS``; rounds alternate them, so that the noise of other
work on the machine falls on each alike. ``--profile`` prints cProfile's top functions of
one extra round per transport (by own time).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import multiprocessing
import pstats
import statistics
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import anyio
import httpx

from modbot.euler.client import EulerClient, api_transport
from modbot.fake.server import FakeEuler
from modbot.loopback import serve

SCOPES = ["webcast:mute", "webcast:ban", "webcast:chat"]


class _Token:
    def __init__(self, token: str) -> None:
        self._token = token

    async def access_token(self) -> str:
        return self._token

    async def refresh_after_rejection(self, rejected: str) -> str:
        del rejected  # the bench's token is never refused
        return self._token


TRANSPORTS: dict[str, Callable[[], httpx.AsyncBaseTransport]] = {
    "httpcore": api_transport,
}


def _transport(name: str) -> Callable[[], httpx.AsyncBaseTransport]:
    """A transport by name: ``httpcore:N`` is the API's as one pool of N connections,
    ``pools:N/M`` as N connections in pools of M, ``aiohttp:N`` modbot.euler.aio's
    aiohttp session of N connections (MODBOT_HTTP_TRANSPORT=aiohttp)."""
    kind, _, shape = name.partition(":")
    if kind == "aiohttp":
        return lambda: api_transport(int(shape or 32), library="aiohttp")
    if kind == "httpcore" and shape:
        return lambda: api_transport(int(shape), int(shape))
    if kind == "pools":
        total, _, size = shape.partition("/")
        return lambda: api_transport(int(total), int(size))
    return TRANSPORTS[name]


def _fake(conn: Connection) -> None:
    """The fake Euler server's process: serve until the parent says stop."""

    async def main() -> None:
        fake = FakeEuler()
        streamer = fake.add_streamer("host_handle", live=True, nickname="The Host")
        data = fake.issue_tokens(SCOPES, account="host_handle")
        async with serve(fake.app) as server:
            conn.send(
                {
                    "url": server.url,
                    "api_key": fake.api_key,
                    "token": data["access_token"],
                    "room_id": streamer.room_id,
                }
            )
            while not await anyio.to_thread.run_sync(conn.poll, 0.5):
                fake.calls.clear()  # the bench's rounds would pile up records

    anyio.run(main)


async def _round(
    setup: dict[str, Any], make: Callable[[], httpx.AsyncBaseTransport], calls: int, width: int
) -> tuple[float, float, list[float]]:
    latencies: list[float] = []
    async with EulerClient(
        setup["url"], setup["api_key"], tokens=_Token(setup["token"]), transport=make()
    ) as api:
        room = setup["room_id"]
        await api.mute(room, "7000000000000000001", 5)  # the first connection, uncounted
        limiter = anyio.Semaphore(width)

        async def one(i: int) -> None:
            async with limiter:
                start = time.perf_counter()
                await api.mute(room, str(7_000_000_000_000_000_000 + i), 5)
                latencies.append(time.perf_counter() - start)

        cpu0, wall0 = time.process_time(), time.perf_counter()
        async with anyio.create_task_group() as tg:
            for i in range(calls):
                tg.start_soon(one, i)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return cpu, wall, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--transport",
        default="httpcore",
        help=", ".join([*TRANSPORTS, "httpcore:N", "pools:N/M", "aiohttp:N"]),
    )
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    names = args.transport.split(",")
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_fake, args=(child,), daemon=True)
    proc.start()
    try:
        setup = parent.recv()
        results: dict[str, list[tuple[float, float, list[float]]]] = {n: [] for n in names}
        for r in range(args.rounds):
            for name in names:
                got = anyio.run(_round, setup, _transport(name), args.calls, args.concurrency)
                results[name].append(got)
                cpu, wall, lat = got
                lat.sort()
                print(
                    f"round {r + 1} {name:>10}: {args.calls / wall:7.0f} calls/s, "
                    f"{cpu / args.calls * 1e6:5.0f} us CPU/call, "
                    f"p50 {lat[len(lat) // 2] * 1e3:5.1f} ms, "
                    f"p99 {lat[int(len(lat) * 0.99)] * 1e3:5.1f} ms",
                    flush=True,
                )
        for name in names:
            per_call = [cpu / args.calls * 1e6 for cpu, _, _ in results[name]]
            rates = [args.calls / wall for _, wall, _ in results[name]]
            print(
                f"median {name:>10}: {statistics.median(rates):7.0f} calls/s, "
                f"{statistics.median(per_call):5.0f} us CPU/call"
            )
        if args.profile:
            for name in names:
                profile = cProfile.Profile()
                profile.enable()
                anyio.run(_round, setup, _transport(name), args.calls, args.concurrency)
                profile.disable()
                out = io.StringIO()
                pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(30)
                print(f"--- {name}: top functions by own time ---")
                print(out.getvalue())
    finally:
        parent.send("stop")
        proc.join(10)


if __name__ == "__main__":
    main()
