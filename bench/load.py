"""Load: many live streams on the fake Euler server, one `modbot run` process with the
example rules, and the figures that say whether it keeps up.

    python bench/load.py                              # 200 streams, 5,000 events/s, 30 s
    python bench/load.py --streams 50 --rate 1000 --seconds 10
    python bench/load.py --mutated-raid                # raid copies each a little changed

The fake server and the load generator run in this process; `modbot run` is a separate
process (its own core). A few streams are raids (1,000+ comments/s each), the others
quiet; about 1 % of comments are slurs (ban) and 1 % scam phrases (mute and a reply).
A raid repeats one text; with ``--mutated-raid`` each copy of a 150-character text has
3-5 random characters changed, as raid tools do to get past exact-match filters (the
copy-paste rule then compares texts instead of finding the same one again).
Reported: events/s sustained by the daemon (from its systemd STATUS, read on a notify
socket); latencies measured by the daemon (an event's arrival to its moderation call
being sent, the engine's decision to the call being sent, and to the API's answer),
the target's decision-to-call as the decision's log line to the call reaching the fake
(both stamped by this machine's clock; the arrival is stamped by a process of its own
that passes the API's traffic to the fake, since the fake's own event loop, busy
sending the events, notices a call late at times), the same to the fake's handler, and
by this bench alone (an event's send to its call reaching the fake's handler: includes
the WebSocket hop); decisions and calls per second, the daemon's CPU while under load
(main thread and all threads), its peak RSS, its event-loop stalls over 50 ms, and the
events delivered versus the events the daemon counted (nothing may vanish uncounted).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import random
import re
import signal
import sys
import tempfile
import time
import urllib.parse
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import SocketAttribute, SocketStream, TaskGroup

from modbot.actions.executor import CallLatency
from modbot.euler.oauth import TokenStore
from modbot.euler.routes import DEFAULT_ROUTES
from modbot.euler.tokens import token_set_from_answer
from modbot.fake import messages as m
from modbot.fake.chatter import RAID_TEXT as MUTATED_RAID_TEXT
from modbot.fake.chatter import mutated
from modbot.fake.harness import (
    NotifyListener,
    call_target,
    fake_and_portal,
    start_run,
    target_of,
    wait,
)
from modbot.fake.server import FakeEuler

REPO = Path(__file__).resolve().parent.parent
SCOPES = [
    "webcast:bulk_live_check",
    "webcast:ban",
    "webcast:mute",
    "webcast:chat",
    "webcast:comments",
]
WORDS = [
    "game",
    "stream",
    "nice",
    "play",
    "wow",
    "level",
    "boss",
    "run",
    "speed",
    "build",
    "team",
    "score",
    "win",
    "lose",
    "again",
    "music",
    "song",
    "dance",
    "love",
    "fun",
    "best",
    "clip",
    "chat",
    "hello",
    "friends",
    "today",
    "tonight",
    "live",
    "watch",
]
TICK = 0.1
RAID_TEXT = "FOLLOW @raid_king FOR FREE GIFTS"


def _processed(notify: NotifyListener, last: int) -> int:
    """The daemon's event count from its latest STATUS= (the last one if none is new)."""
    for msg in reversed(notify.drain()):
        found = re.search(r"(\d+) events", msg.get("STATUS", ""))
        if found:
            return int(found.group(1))
    return last


def _rss_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_s(pid: int) -> tuple[float, float]:
    """CPU time (user + system) a process has used so far: all threads, the main one."""

    def used(stat: Path) -> float:
        fields = stat.read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    return used(Path(f"/proc/{pid}/stat")), used(Path(f"/proc/{pid}/task/{pid}/stat"))


_METHODS = (b"GET ", b"PUT ", b"POST ", b"DELETE ", b"PATCH ", b"HEAD ")


def _stamp_calls(upstream: int, port: Connection, out: str) -> None:
    """A process of its own in front of the fake's HTTP API: it passes bytes both ways
    and stamps each request as it reaches the server's side of the connection.

    The fake's handler stamps a call when its event loop gets to it, and that loop is
    busy pushing 5,000 events/s to 200 sockets (tens of milliseconds late at times, the
    instrument's error, not the daemon's). This process has nothing else to do, so its
    stamp is the moment the call arrived. On SIGTERM it writes ``[epoch seconds, method,
    target]`` of every request to ``out`` as JSON.
    """
    anyio.run(_proxy, upstream, port, Path(out))


async def _proxy(upstream: int, port: Connection, out: Path) -> None:
    stamps: list[tuple[float, str, str]] = []

    def note(chunk: bytes) -> None:
        if chunk.startswith(_METHODS):
            method, target, _ = chunk.split(b" ", 2)
            stamps.append((time.time(), method.decode(), target.decode()))

    async def pump(src: SocketStream, dst: SocketStream, requests: bool, both: TaskGroup) -> None:
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            while True:
                chunk = await src.receive()
                if requests:
                    note(chunk)
                await dst.send(chunk)
        both.cancel_scope.cancel()  # either side closing closes both (idle keep-alives)

    async def serve(client: SocketStream) -> None:
        async with (
            client,
            await anyio.connect_tcp("127.0.0.1", upstream) as server,
            anyio.create_task_group() as both,
        ):
            both.start_soon(pump, server, client, False, both)
            both.start_soon(pump, client, server, True, both)

    with anyio.open_signal_receiver(signal.SIGTERM) as signals:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        async with listener, anyio.create_task_group() as tg:
            port.send(listener.extra(SocketAttribute.local_port))  # noqa: S610 (anyio, not Django)
            tg.start_soon(listener.serve, serve)
            async for _ in signals:
                await anyio.Path(out).write_text(json.dumps(stamps))
                tg.cancel_scope.cancel()
                break


# The routes whose arrival is measured, as (name, method, path pattern) of the client's table.
_MEASURED = [
    (r.name, r.method, re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(r.path))))
    for r in (DEFAULT_ROUTES["ban"], DEFAULT_ROUTES["mute"])
]


def _arrivals(stamps: Path) -> dict[tuple[str, str], float]:
    """When each ban and mute reached the stamping proxy, by (viewer's user id, route)."""
    arrived: dict[tuple[str, str], float] = {}
    if not stamps.exists():
        print(f"the stamping proxy wrote no {stamps}: no arrival figures", file=sys.stderr)
        return arrived
    for at, method, target in json.loads(stamps.read_text()):
        path, _, query = target.partition("?")
        for route, route_method, pattern in _MEASURED:
            if method == route_method and pattern.fullmatch(path):
                user = target_of(dict(urllib.parse.parse_qsl(query)))
                arrived.setdefault((user, route), at)
    return arrived


def run(args: argparse.Namespace) -> int:  # noqa: PLR0915
    rng = random.Random(7)
    fake = FakeEuler(api_key="load-api-key", client_secret="load-client-secret")  # noqa: S106
    handles = [f"load_{i:03d}" for i in range(args.streams)]
    for handle in handles:
        fake.add_streamer(handle, live=True)
    raids, quiet = handles[: args.raids], handles[args.raids :]
    work = Path(tempfile.mkdtemp(prefix="modbot-load-"))
    nfy = Path(tempfile.mkdtemp(prefix="nfy"))
    state, log = work / "state", work / "daemon.log"
    TokenStore(state).save(token_set_from_answer(fake.issue_tokens(SCOPES), time.time()))
    notify = NotifyListener(nfy / "notify")
    sent_at: dict[str, float] = {}
    delivered = serial = behind = 0
    with fake_and_portal(fake) as (server, portal):
        stamps_file = work / "stamps.json"
        receive_port, send_port = multiprocessing.get_context("spawn").Pipe(duplex=False)
        stamper = multiprocessing.get_context("spawn").Process(
            target=_stamp_calls, args=(server.port, send_port, str(stamps_file)), daemon=True
        )
        stamper.start()
        if not receive_port.poll(30):
            print("the stamping proxy did not start", file=sys.stderr)
            return 1
        api_url = f"http://127.0.0.1:{receive_port.recv()}"
        env = {
            "MODBOT_API_BASE_URL": api_url,
            "MODBOT_WS_URL": server.ws_url,
            "MODBOT_API_KEY": fake.api_key,
            "MODBOT_CLIENT_ID": fake.client_id,
            "MODBOT_CLIENT_SECRET": fake.client_secret,
            "MODBOT_STREAMERS": ",".join(handles),
            "MODBOT_LIVE_CHECK_INTERVAL": "1",
            "MODBOT_LOG_LEVEL": "info",  # as in production: decisions are logged
            "NOTIFY_SOCKET": str(nfy / "notify"),
            "WATCHDOG_USEC": "200000",  # STATUS (with the event count) every 0.1 s
        }
        # Started in its work directory: `python -m` puts the current directory first on
        # the path, and a checkout's modbot/ would stand in for the one installed.
        proc = start_run(
            log,
            *("--state-dir", str(state), "--rules", str(REPO / "rules")),
            env=env,
            cwd=work,
            python=args.python,
        )
        connect_started = time.monotonic()
        wait(lambda: fake.connections() == args.streams, timeout=180)
        connect_s = time.monotonic() - connect_started
        rooms = {h: fake.streamer(h).room_id for h in handles}

        def comment(handle: str, now_ms: int) -> dict[str, Any]:
            nonlocal serial
            serial += 1
            viewer = m.Viewer(f"v{serial % 50_000}", str(6_880_000_000_000_000_000 + serial))
            roll = rng.random()
            if roll < args.actionable / 2:
                viewer = m.Viewer(f"troll{serial}", str(6_890_000_000_000_000_000 + serial))
                text = "you are a slurword"
            elif roll < args.actionable:
                viewer = m.Viewer(f"promo{serial}", str(6_890_000_000_000_000_000 + serial))
                text = "free coins at my page"
            elif handle in raids and roll < 0.3:
                text = mutated(MUTATED_RAID_TEXT, rng) if args.mutated_raid else RAID_TEXT
            else:
                text = " ".join(rng.choices(WORDS, k=6))
            return m.chat(rooms[handle], viewer, text, now_ms)

        def emit_all(frames: list[tuple[str, list[dict[str, Any]]]]) -> int:
            return sum(len(msgs) for handle, msgs in frames if fake.emit(handle, msgs))

        per_tick = args.rate * TICK
        raid_per_tick = min(per_tick / max(1, len(raids)), args.raid_rate * TICK) if raids else 0
        quiet_per_tick = per_tick - raid_per_tick * len(raids)
        group = max(1, len(quiet) // 10)  # each quiet stream gets a frame every second
        ticks = int(args.seconds / TICK)
        processed = 0
        start = time.monotonic()
        cpu_start = _cpu_s(proc.pid)
        timeline: list[tuple[float, int]] = []
        for tick in range(ticks):
            now_ms = fake.now_ms()
            frames = [(h, [comment(h, now_ms) for _ in range(round(raid_per_tick))]) for h in raids]
            chosen = [quiet[(tick * group + i) % len(quiet)] for i in range(group)] if quiet else []
            each = max(1, round(quiet_per_tick / max(1, len(chosen))))
            frames += [(h, [comment(h, now_ms) for _ in range(each)]) for h in chosen]
            stamp = time.time()
            for _, msgs in frames:
                for msg in msgs:
                    sent_at[msg["data"]["common"]["msgId"]] = stamp
            delivered += portal.call(emit_all, frames)
            processed = _processed(notify, processed)
            timeline.append((time.monotonic() - start, processed))
            delay = start + (tick + 1) * TICK - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                behind += 1
        send_s = time.monotonic() - start
        # Drain: the daemon works through whatever it has buffered.
        drain_deadline = time.monotonic() + 120
        while processed < delivered and time.monotonic() < drain_deadline:
            time.sleep(0.1)
            processed = _processed(notify, processed)
        drain_s = time.monotonic() - start - send_s
        cpu_s, main_s = (b - a for a, b in zip(cpu_start, _cpu_s(proc.pid), strict=True))
        time.sleep(2)  # the last calls
        rss = _rss_peak_mb(proc.pid)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        stamper.terminate()
        stamper.join(30)
        calls = [c for c in fake.calls if c.route in ("ban", "mute", "chat", "toggle_comments")]
        # The copy-paste rule pauses a raid stream's comments for 2 minutes.
        paused = sum(1 for h in raids if not fake.streamer(h).comments_enabled)
    stopped, decided_at, build = _read_log(log)
    # The decision's log line (written just before the engine hands it on) to the call
    # reaching the fake's side of the connection (the stamping proxy; its first try):
    # both clocks are this machine's. Trolls and promo accounts are new for each
    # comment, so a user and a route name one decision.
    arrivals = _arrivals(stamps_file)
    to_fake = CallLatency.of(
        arrivals[key] - at for key, at in decided_at.items() if key in arrivals
    )
    # The same, to the fake's handler: its event loop is busy sending the events, so
    # this includes the instrument's own delay.
    to_handler = CallLatency.of(
        c.arrived - decided_at[key]
        for c in calls
        if 200 <= c.status < 300 and (key := (call_target(c), c.route)) in decided_at
    )
    # The instrument's own delay: the fake's handler from a call's arrival to its answer
    # (this process also runs the generator, so its answers can lag under load).
    fake_answer = CallLatency.of(c.at - c.arrived for c in calls if c.arrived)
    end_to_end = CallLatency.of(
        c.arrived - sent_at[c.params["comment_msg_id"]]
        for c in calls
        if c.params.get("comment_msg_id") in sent_at
    )
    # Sustained: the daemon's processing rate over the middle of the sending window.
    window = [(t, n) for t, n in timeline if send_s * 0.2 <= t <= send_s * 0.9]
    sustained = (
        (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0]) if len(window) > 1 else 0
    )
    counted = int(stopped.get("events", -1))
    ok_calls = sum(1 for c in calls if 200 <= c.status < 300)
    raid_kind = "mutated raid texts" if args.mutated_raid else "identical raid texts"
    print(
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; daemon: {build} "
        f"({args.python or sys.executable})"
    )
    print(
        f"streams: {args.streams} ({len(raids)} raids, {raid_kind}), all connected in "
        f"{connect_s:.1f}s; raid streams paused by the copy-paste rule: {paused} of "
        f"{len(raids)}"
    )
    print(
        f"offered: {args.rate:,} events/s for {args.seconds:.0f}s; generator behind schedule "
        f"in {behind} of {ticks} ticks; delivered {delivered:,} events in {send_s:.1f}s "
        f"({delivered / send_s:,.0f}/s)"
    )
    print(
        f"daemon: sustained {sustained:,.0f} events/s, backlog drained {drain_s:.1f}s after "
        f"the last send; counted {counted:,} events of {delivered:,} delivered "
        f"(undelivered at the fake: {fake.undelivered})"
    )
    loaded_s = send_s + drain_s
    print(
        f"daemon CPU while under load ({loaded_s:.1f} s): main thread {main_s:.1f} s "
        f"({main_s / loaded_s:.0%} of a core, {main_s / max(delivered, 1) * 1e6:.0f} us per "
        f"event), all threads {cpu_s:.1f} s ({cpu_s / max(delivered, 1) * 1e6:.0f} us per event)"
    )
    print(
        f"decisions: {int(stopped.get('decisions', 0)):,} ({int(stopped.get('decisions', 0)) / send_s:,.0f}/s); "
        f"moderation calls: {len(calls):,} ({ok_calls:,} ok, {len(calls) / send_s:,.0f}/s)"
    )

    def figures(name: str) -> str:
        return ", ".join(
            f"{k} {stopped.get(f'{name}_{k}_ms', '?')} ms" for k in ("p50", "p99", "max")
        )

    print(
        f"latency in the daemon ({stopped.get('arrival_to_call_calls', 0)} calls): event "
        f"arrived -> call sent {figures('arrival_to_call')}; decided -> call sent "
        f"{figures('decision_to_call')}; decided -> API answered {figures('decision_to_answer')}"
    )
    print(
        f"decided (the daemon's log line) -> call reached the fake (ban/mute, stamped as it "
        f"arrives by a process in front of the fake, {to_fake.calls} calls): p50 "
        f"{to_fake.p50_ms} ms, p99 {to_fake.p99_ms} ms, max {to_fake.max_ms} ms"
    )
    print(
        f"decided -> the fake's handler started (its loop also sends the events, "
        f"{to_handler.calls} calls): p50 {to_handler.p50_ms} ms, p99 {to_handler.p99_ms} ms, "
        f"max {to_handler.max_ms} ms"
    )
    print(
        f"the fake's own answer time (handler start -> answer, {fake_answer.calls} calls): "
        f"p50 {fake_answer.p50_ms} ms, p99 {fake_answer.p99_ms} ms, max {fake_answer.max_ms} ms"
    )
    print(
        f"latency end to end, bench send -> call handled by the fake (ban/mute, "
        f"{end_to_end.calls} calls; includes the bench's own busy loop): p50 "
        f"{end_to_end.p50_ms} ms, p99 {end_to_end.p99_ms} ms, max {end_to_end.max_ms} ms"
    )
    print(
        f"event loop: {stopped.get('loop_stalls', '?')} stalls over 50 ms, max lag "
        f"{stopped.get('max_loop_lag_ms', '?')} ms; {stopped.get('gc_full', '?')} full garbage "
        f"collections, longest pause {stopped.get('max_gc_pause_ms', '?')} ms; peak RSS {rss:.0f} MB; errors "
        f"{stopped.get('errors', '?')}; exit code {code}"
    )
    print(
        f"load ({build}, {raid_kind}): {args.streams} streams, {sustained:,.0f} events/s sustained "
        f"(offered {args.rate:,}), decision-to-call p99 {to_fake.p99_ms} ms "
        f"(to the fake's handler {to_handler.p99_ms} ms; call sent "
        f"{stopped.get('decision_to_call_p99_ms', '?')} ms; to the answer "
        f"{stopped.get('decision_to_answer_p99_ms', '?')} ms; arrival-to-call "
        f"{stopped.get('arrival_to_call_p99_ms', '?')} ms; end to end {end_to_end.p99_ms:.0f} ms), "
        f"RSS {rss:.0f} MB, {paused} of {len(raids)} raids paused, "
        f"{stopped.get('loop_stalls', '?')} loop stalls, "
        f"{max(0, delivered - counted):,} events uncounted"
    )
    return 0 if code == 0 else 1


def _read_log(log: Path) -> tuple[dict[str, Any], dict[tuple[str, str], float], str]:
    """The daemon's ``stopped`` record, when each enforced decision was logged (epoch
    seconds, by user id and route: ``mute``, ``ban``, ...), and its build (``ready``)."""
    stopped: dict[str, Any] = {}
    decided_at: dict[tuple[str, str], float] = {}
    build = "?"
    for line in log.read_text().splitlines():
        if '"stopped"' in line:
            stopped = json.loads(line)
        elif '"ready"' in line and (record := json.loads(line)).get("event") == "ready":
            build = str(record.get("build", "?"))
        elif '"decision"' in line:
            record = json.loads(line)
            if (
                record.get("event") == "decision"
                and record.get("mode") == "enforce"
                and not record.get("suppressed")
            ):
                route = str(record.get("action", "")).split(" ")[0]
                stamp = datetime.fromisoformat(record["timestamp"]).timestamp()
                decided_at.setdefault((record["user_id"], route), stamp)
    return stopped, decided_at, build


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--raids", type=int, default=3, help="streams at raid rates")
    parser.add_argument("--rate", type=int, default=5000, help="events/s offered in all")
    parser.add_argument("--raid-rate", type=int, default=1000, help="events/s per raid stream")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--actionable", type=float, default=0.02, help="share of bad comments")
    parser.add_argument(
        "--mutated-raid",
        action="store_true",
        help="raid copies of a 150-character text, each with 3-5 random characters changed",
    )
    parser.add_argument(
        "--python",
        help="the interpreter that runs `modbot run` (default: this one), e.g. the python of "
        "an environment with the compiled build (MODBOT_COMPILE=1 pip install .)",
    )
    # The fake server runs on a thread of this process while the generator builds the
    # next tick: with the default 5 ms switch interval its request handler would wait
    # for the interpreter lock, and stamp calls late (the instrument, not the daemon).
    sys.setswitchinterval(0.0002)
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
