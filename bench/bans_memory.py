"""What the remembered-ban check costs per event, and what a join flood costs.

The daemon asks ``BanMemory.check`` about every event. This measures, interleaved over
several rounds (the machine is shared, so figures are noisy: compare the ratios, same
run), per event of a viewer nobody banned:

- ``empty``: an empty ban list;
- ``100k``: 100,000 remembered bans (none of them this viewer);

and per join of a remembered viewer already banned in the room (a flood: no call), and
the resident size of the 100,000-ban list.

    python bench/bans_memory.py [--events 200000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from datetime import UTC, datetime

from modbot.actions.memory import BanMemory
from modbot.audit.bans import BanRecord
from modbot.events import Event, User

TS = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)


def memory_of(count: int) -> BanMemory:
    memory = BanMemory()
    memory.load(
        BanRecord(i, str(6_800_000_000_000_000_000 + i), f"t{i}", "host", "1", False, "x")
        for i in range(count)
    )
    return memory


def events(count: int, user_base: int, room: str, kind: str = "comment") -> list[Event]:
    return [
        Event(
            kind=kind,  # type: ignore[arg-type]
            ts=TS,
            streamer="host",
            room_id=room,
            msg_id=str(7_000_000_000 + i),
            user=User(str(user_base + i % 5_000)),
        )
        for i in range(count)
    ]


def per_event_ns(memory: BanMemory, batch: list[Event]) -> float:
    check = memory.check
    start = time.perf_counter_ns()
    for event in batch:
        check(event, 0.0)
    return (time.perf_counter_ns() - start) / len(batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    empty, full = BanMemory(), memory_of(100_000)
    strangers = events(args.events, 6_900_000_000_000_000_000, "2")
    # A flood: one remembered viewer joining again and again in a room already carried.
    flooder = User("6800000000000000007")
    flood = [
        Event(kind="join", ts=TS, streamer="host", room_id="2", msg_id=str(i), user=flooder)
        for i in range(args.events)
    ]
    first = full.check(flood[0], 0.0)
    assert first is not None
    figures: dict[str, list[float]] = {"empty": [], "100k": [], "flood": []}
    for _ in range(args.rounds):
        figures["empty"].append(per_event_ns(empty, strangers))
        figures["100k"].append(per_event_ns(full, strangers))
        figures["flood"].append(per_event_ns(full, flood))
    base = min(figures["empty"])
    for name, values in figures.items():
        best = min(values)
        print(f"{name:>6}: {best:7.0f} ns/event (best of {args.rounds}), x{best / base:.2f}")
    print(
        f"carried: {full.counts['carried']}, again in the room: {full.counts['again in the room']}"
    )
    tracemalloc.start()
    kept = memory_of(100_000)
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del kept
    print(f"100,000 remembered bans: {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
