"""What nukes and raid sweeps cost the engine loop, and what the recent-comment memory holds.

The daemon hands every event to ``Sweeper.observe`` after the engine: the comment goes
into the recent-comments memory and every running sweep is offered it. This measures,
per comment of ordinary chat through the example rules, interleaved over several rounds
(the machine is shared, so figures are noisy: compare the ratios, same run):

- ``engine``: ``Engine.evaluate`` alone;
- ``+memory``: the same plus ``observe`` with no sweep running (the cost always paid);
- ``+nuke``: with one phrase nuke running; ``+regex``: with one /regex/ nuke;
- ``+raid``: with one raid sweep (near-copy matching) running.

Then the resident memory of a full memory: 16 rooms offered 20,000 comments of ~100
characters each (the total bound, 100,000 comments and 10,000,000 characters, keeps
fewer).

    python bench/sweeps.py [--events 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio

from modbot.actions import nuke as nk
from modbot.actions.recent import MAX_COMMENTS, RecentComments
from modbot.actions.sweeper import Sweeper
from modbot.clock import SystemClock
from modbot.events import Event, User
from modbot.fake.chatter import PLAIN_WORDS
from modbot.rules.compile import load_ruleset
from modbot.rules.engine import Engine

REPO = Path(__file__).resolve().parent.parent
START = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)
ROOMS = 16  # live rooms at once, each filled to its own bound


def chat(n: int, rng: random.Random, room: str = "7001") -> list[Event]:
    out = []
    for i in range(n):
        words = rng.choices(PLAIN_WORDS, k=rng.randint(3, 12))
        out.append(
            Event(
                "comment",
                START + timedelta(milliseconds=10 * i),
                "host",
                room_id=room,
                msg_id=str(7_000_000 + i),
                user=User(str(6_800_000 + i), f"viewer{i}"),
                text=" ".join(words),
            )
        )
    return out


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sweeper_with(engine: Engine, sweep: nk.Sweep | None) -> Sweeper:
    sweeper = Sweeper(engine, SystemClock(), ["host"])
    send, receive = anyio.create_memory_object_stream[object](10**7)
    sweeper._queue = send  # noqa: SLF001 (no task drains it here)
    sweeper._bench_receive = receive  # type: ignore[attr-defined]  # noqa: SLF001
    if sweep is not None:
        sweeper.sweeps.append(sweep)
    return sweeper


def timed(events: list[Event], step: Callable[[Event], object]) -> float:
    gc.collect()
    began = time.perf_counter()
    for event in events:
        step(event)
    return (time.perf_counter() - began) / len(events) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    ruleset, diagnostics = load_ruleset([REPO / "rules"])
    assert ruleset is not None, diagnostics
    rng = random.Random(7)
    events = chat(args.events, rng)
    far = START.timestamp() + 10**6

    def nuke(pattern: str) -> nk.Sweep:
        return nk.Sweep("host", nk.compile_pattern(pattern).matches, nk.Then("log"), far)

    raid = nk.Sweep(
        "host",
        nk.NearCopies((nk.copy_key("JOIN discord gg slash freestuff for FREE nitro now"),), 0.85),
        nk.Then("mute", 300.0),
        far,
        room="7001",
    )
    cases: dict[str, Callable[[], Callable[[Event], object]]] = {}

    def case(sweep: nk.Sweep | None, *, observe: bool = True) -> Callable[[Event], object]:
        engine = Engine(ruleset)
        sweeper = sweeper_with(engine, sweep)

        def step(event: Event) -> object:
            decisions = engine.evaluate(event, event.ts)
            return sweeper.observe(event, decisions) if observe else decisions

        return step

    cases["engine"] = lambda: case(None, observe=False)
    cases["+memory"] = lambda: case(None)
    cases["+nuke"] = lambda: case(nuke("free coins"))
    cases["+regex"] = lambda: case(nuke(r"/(?i)bit\.ly/\w+/"))
    cases["+raid"] = lambda: case(raid)
    figures: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, make in cases.items():
            figures[name].append(timed(events, make()))
    base = sorted(figures["engine"])[len(figures["engine"]) // 2]
    for name, values in figures.items():
        median = sorted(values)[len(values) // 2]
        print(
            f"{name:8} median {median:6.1f} us/comment  ({median / base:.2f} x engine)"
            f"  rounds {', '.join(f'{v:.1f}' for v in values)}"
        )
    gc.collect()
    before = rss_mb()
    recent = RecentComments()
    filler = "x" * 100
    for room in range(ROOMS):
        for i in range(MAX_COMMENTS):
            recent.note(
                Event(
                    "comment",
                    START + timedelta(milliseconds=20 * i),
                    "host",
                    room_id=str(9000 + room),
                    msg_id=str(7_300_000_000_000_000_000 + room * MAX_COMMENTS + i),
                    user=User(str(6_800_000_000_000_000_000 + i), f"viewer_{i}"),
                    text=f"{filler}{i}",
                )
            )
    gc.collect()
    stats = recent.statistics()
    print(
        f"memory: {stats.rooms} rooms, {stats.comments:,} comments, {stats.chars:,} characters:"
        f" {rss_mb() - before:.0f} MB resident"
    )


if __name__ == "__main__":
    main()
