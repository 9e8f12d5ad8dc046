"""``modbot demo``: the real daemon against the bundled fake Euler server (I/O).

A scripted stream (``modbot/fake/scenarios/demo.yaml``: ordinary chat, a question,
link spam, scam phrases, an insult escalation, a flood, a copy-paste raid nuked by a
moderator's ``modbot nuke`` (a request the daemon takes, as the command's), a human
moderator's mute that the nuke's unmute leaves alone, an exempt moderator, the stream
going offline and back live, and a viewer banned in the first live banned again on
joining the second) is played on a fake Euler server on
a free loopback port, with generated credentials; ``modbot run``'s daemon moderates it
with the example rules and every decision is shown as it happens. The audit log stays
in the state directory, so ``modbot audit`` can be tried at once.

The demo also leaves ``demo.json`` (mode 0600) in its state directory: the generated
credentials and the room. ``modbot undo`` on such a directory brings the demo's fake
server back for the length of the command (:func:`revived`), so undo can be tried too;
a real state directory never has this file, and nothing in it reaches TikTok.
The fake's lists and keyword filter are kept in ``demo_world.json`` between commands.

What the terminal shows: each decision once, when its audit entry is finished, with
the outcome the executor wrote (done, observed, or skipped and why); info-level log
lines are not shown (warnings and errors are, on lines of their own); on a terminal
the progress line fits its width and is redrawn in place. A state directory of an
earlier demo is emptied first (its audit log, timers and grant: nothing of it fires at
the new fake server), and any other directory that is not empty is refused.
``--record FILE`` writes every event the daemon reads in the replay format.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
import textwrap
import time
import unicodedata
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TextIO, cast

import anyio
import yaml
from pydantic import SecretStr

from modbot.actions.table import describe as described
from modbot.audit import requests
from modbot.audit.query import AuditFilter
from modbot.audit.store import AuditStore, Entry, default_db
from modbot.config import Settings
from modbot.daemon import Daemon
from modbot.errors import ConfigError
from modbot.euler.oauth import TokenStore
from modbot.euler.scopes import KNOWN_SCOPES
from modbot.euler.tokens import token_set_from_answer
from modbot.events import Event
from modbot.fake.scenario import NukeStep, ScenarioRunner, load_scenario
from modbot.fake.server import FakeEuler
from modbot.fake.world import moderation_state, restore_moderation
from modbot.files import write_private
from modbot.inert import shown
from modbot.log import configure
from modbot.loopback import LoopbackServer, serve
from modbot.rules.engine import Decision

SETTLE = 2.0  # seconds after the last scripted event for the last calls to finish
MARKER = "demo.json"
WORLD = "demo_world.json"  # the fake's lists and keyword filter, kept between commands
NOT_DONE = "; not done: "  # how a skipped intent's reason is appended to its detail
# What a demo leaves in its state directory: removed before the next demo there.
DEMO_FILES = (MARKER, WORLD, "tokens.json", "audit.db", "audit.db-wal", "audit.db-shm")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def example_rules() -> Path | None:
    """The example rules: in the wheel (``modbot/examples/rules``) or the source checkout."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "examples" / "rules", package.parent / "rules"):
        if (candidate / "moderation.yaml").is_file():
            return candidate
    return None


def scenario_text() -> str:
    return resources.files("modbot.fake").joinpath("scenarios/demo.yaml").read_text("utf-8")


def prepare_state(state_dir: Path) -> str | None:
    """Make ``state_dir`` fit for a new demo; what was done to it, for the user (or None).

    An earlier demo's files are removed (its audit entries, its timers, which would
    fire at the new fake server, and its fake grant). A directory that holds anything
    else is refused: it may be a real state directory.
    """
    if not state_dir.exists():
        return None
    try:
        present = sorted(path.name for path in state_dir.iterdir())
    except OSError as exc:
        msg = f"the state directory {state_dir} cannot be read ({exc.strerror or exc})"
        raise ConfigError(msg, setting="state_dir") from None
    if not present:
        return None
    if MARKER not in present:
        msg = (
            f"{state_dir} is not empty and is not a `modbot demo` state directory (it has "
            f"{', '.join(present[:5])}); give the demo a new or empty directory"
        )
        raise ConfigError(msg, setting="state_dir")
    others = [name for name in present if name not in DEMO_FILES]
    if others:
        msg = (
            f"{state_dir} holds an earlier demo and other files ({', '.join(others[:5])}); "
            "give the demo a new or empty directory"
        )
        raise ConfigError(msg, setting="state_dir")
    for name in present:
        (state_dir / name).unlink()
    return (
        f"{state_dir} held an earlier demo: starting fresh (its audit log, timers and "
        "grant were removed)"
    )


class _DemoDaemon(Daemon):
    """The daemon, also writing every event it reads to ``--record FILE``."""

    def __init__(self, *args: Any, record: TextIO | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.record = record
        self.recorded = 0

    def _decide(self, event: Event) -> list[Decision]:
        if self.record is not None:
            self.record.write(json.dumps(event.to_json(), ensure_ascii=False) + "\n")
            self.recorded += 1
        return super()._decide(event)


async def run_demo(
    *,
    rules: list[Path],
    state_dir: Path,
    duration: float,
    speed: float,
    out: TextIO,
    log_level: str = "warning",
    log_format: Literal["auto", "json", "console"] = "auto",
    record: Path | None = None,
    logs: TextIO | None = None,
) -> int:
    """Play the demo stream; returns 0 when the scenario ran."""
    fresh = prepare_state(state_dir)
    fake = FakeEuler(
        api_key="demo-" + secrets.token_hex(12),
        client_id="demo-client",
        client_secret="demo-" + secrets.token_hex(12),
    )
    scenario = load_scenario(yaml.safe_load(scenario_text()))
    handle = scenario.streamer.unique_id
    nuker = _Nuker(speed, handle)
    runner = ScenarioRunner(fake, scenario, speed=speed, on_nuke=nuker.nuke)
    screen = nuker.screen = _Screen(out, scenario.duration / speed)
    # Log lines never land on the progress line: it is cleared before each one.
    configure(
        log_format, level=log_level, stream=cast("TextIO", _LogStream(screen, logs or sys.stderr))
    )
    sink = record.open("w", encoding="utf-8", buffering=1) if record else None
    try:
        async with serve(fake.app) as server:
            TokenStore(state_dir).save(
                token_set_from_answer(fake.issue_tokens(KNOWN_SCOPES, account=handle), time.time())
            )
            _remember(state_dir, fake, handle)
            settings = _settings(fake, server, state_dir, handle).model_copy(
                update={"rules_dir": rules[0]}
            )
            daemon = _DemoDaemon(settings, rule_paths=rules, handle_signals=False, record=sink)
            nuker.daemon = daemon
            if fresh:
                screen.say(f"modbot demo: {fresh}.")
            screen.say(
                f"modbot demo: the fake Euler server is on {server.url}; playing "
                f"{scenario.duration / speed:.0f}s of scripted chat for @{handle} (rules: "
                f"{', '.join(map(str, rules))})"
            )
            screen.say("Each decision is shown once it is carried out, observed or skipped.\n")
            code = 0
            async with anyio.create_task_group() as tg:

                async def daemon_task() -> None:
                    nonlocal code
                    code = await daemon.run()
                    tg.cancel_scope.cancel()

                tg.start_soon(daemon_task)
                with anyio.move_on_after(duration):
                    await daemon.started.wait()
                    async with anyio.create_task_group() as shows:
                        shows.start_soon(screen.follow, daemon, runner)
                        await runner.run()
                        await anyio.sleep(SETTLE)
                        shows.cancel_scope.cancel()
                if daemon.store is not None:
                    await screen.outcomes(daemon.store)
                screen.finish(daemon, runner)
                daemon.stop()
            _remember(state_dir, fake, handle)  # with the rooms of every stream played
            _keep_world(state_dir, fake, handle)
            if code:
                return code
    finally:
        if sink is not None:
            sink.close()
    await _summary(state_dir, runner.done.is_set(), screen, record)
    return 0 if runner.done.is_set() else 1


class _Nuker:
    """The scenario's ``modbot nuke``: a request in the audit database, as the command
    writes it, taken by the daemon's sweeper (the same path as the command's)."""

    def __init__(self, speed: float, handle: str) -> None:
        self.speed = speed
        self.handle = handle
        self.daemon: Daemon | None = None
        self.screen: _Screen | None = None

    async def nuke(self, step: NukeStep) -> None:
        if self.daemon is None or self.daemon.store is None:
            return
        order = nuke_order(step, self.speed, self.handle)
        await requests.submit(self.daemon.store, "nuke", order, self.daemon.clock.now())
        if self.screen is not None:
            self.screen.say(
                f"modbot demo: a moderator runs `modbot nuke {order['pattern']!r} "
                f"--then {order['then']!r}`",
                cut=True,
            )


def nuke_order(step: NukeStep, speed: float, handle: str) -> dict[str, Any]:
    """The request ``modbot nuke`` would write for ``step``, its spans in real seconds."""
    then = "ban" if step.mute is None else f"mute {max(1, round(step.mute / speed))}s"
    return {
        "pattern": step.pattern,
        "then": then,
        "since_s": step.since / speed,
        "for_s": step.for_ / speed,
        "streamer": handle,
        "reason": "the demo's raid",
        "by": "demo",
    }


def _cells(text: str) -> int:
    """Terminal columns ``text`` takes (wide East Asian characters take two)."""
    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
        for c in text
    )


def fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` terminal columns, with an ellipsis when cut."""
    if _cells(text) <= width:
        return text
    kept, used = [], 0
    for c in text:
        need = _cells(c)
        if used + need > width - 1:
            break
        kept.append(c)
        used += need
    return "".join(kept) + "…"


def describe(entry: Entry) -> str:
    """An audit entry's action in short: ``mute 10m``, ``reply 'hi …'``, ``comments off``."""
    return described(entry.action, entry.params, text_limit=16)


def outcome(entry: Entry) -> tuple[str, str]:
    """The verdict of a finished entry and why (empty when done)."""
    if entry.status == "skipped":
        return "skipped", entry.detail.rpartition(NOT_DONE)[2] if NOT_DONE in entry.detail else ""
    if entry.status == "failed":
        return "failed", entry.error or ""
    if entry.status == "observed":
        return "observed", "the rule only observes" if entry.mode == "observe" else ""
    return entry.status, ""


class _Screen:
    """The demo's terminal: decisions as their audit entries finish, and a progress line
    redrawn in place on a terminal (fitted to its width), a plain line now and then
    elsewhere."""

    def __init__(self, out: TextIO, total: float) -> None:
        self.out = out
        self.total = total
        self.started = time.monotonic()
        self.tty = out.isatty()
        self.drawn = False
        self.shown: set[int] = set()
        self.reasons: Counter[tuple[str, str]] = Counter()

    def width(self) -> int:
        if not self.tty:
            return 160
        try:
            return max(20, os.get_terminal_size(self.out.fileno()).columns)
        except (OSError, ValueError):
            return 80

    def say(self, text: str, *, cut: bool = False) -> None:
        """Lines of their own above the progress line; on a terminal each is wrapped
        (or ``cut``) to its width."""
        self.clear()
        width = self.width() - 1
        for line in text.split("\n"):
            if not self.tty or _cells(line) <= width:
                print(line, file=self.out)
            elif cut:
                print(fit(line, width), file=self.out)
            else:
                print("\n".join(textwrap.wrap(line, width, subsequent_indent="  ")), file=self.out)
        self.out.flush()

    def text(self, daemon: Daemon, runner: ScenarioRunner) -> str:
        done = daemon.executor.statistics().done if daemon.executor else 0
        live = "live" if runner.streamer.is_live else "offline"
        elapsed = time.monotonic() - self.started
        return (
            f"[{elapsed:3.0f}s of ~{self.total:.0f}s] stream {live}: "
            f"{daemon.stats.events} events read, {daemon.stats.decisions} decisions, "
            f"{done} actions done"
        )

    def clear(self) -> None:
        if self.drawn:
            self.out.write("\r\x1b[K")
            self.out.flush()
            self.drawn = False

    def draw(self, text: str) -> None:
        self.out.write("\r\x1b[K" + fit(text, self.width() - 1))
        self.out.flush()
        self.drawn = True

    def entry(self, entry: Entry) -> None:
        """One finished decision: when, verdict, rule, action, viewer, comment; and why."""
        verdict, why = outcome(entry)
        elapsed = time.monotonic() - self.started
        line = (
            f"{elapsed:5.1f}s {verdict:<8} {shown(entry.rule, 14):<14} {describe(entry):<10} "
            f"@{shown(entry.unique_id, 14)} {shown(entry.msg_text, 60)!r}"
        )
        width = self.width() - 1
        self.say(line, cut=True)
        if why:
            self.reasons[(verdict, why)] += 1
            lines = textwrap.wrap(why, max(20, width - 9))
            self.say(
                "\n".join(f"{'':7}{'└ ' if i == 0 else '  '}{part}" for i, part in enumerate(lines))
            )

    async def outcomes(self, store: AuditStore) -> None:
        """Show the audit entries that are finished and not shown yet, oldest first."""
        for entry in await store.query(AuditFilter(limit=None, oldest_first=True)):
            if entry.id not in self.shown and entry.status != "pending":
                self.shown.add(entry.id)
                self.entry(entry)

    async def follow(self, daemon: Daemon, runner: ScenarioRunner) -> None:
        every = 0.25 if self.tty else 10.0
        last = time.monotonic()
        while True:
            await anyio.sleep(0.25)
            if daemon.store is not None:
                await self.outcomes(daemon.store)
            if self.tty:
                self.draw(self.text(daemon, runner))
            elif time.monotonic() - last >= every:
                last = time.monotonic()
                self.say(self.text(daemon, runner))

    def finish(self, daemon: Daemon, runner: ScenarioRunner) -> None:
        self.say(self.text(daemon, runner))


class _LogStream:
    """Where log lines go during the demo: the progress line is cleared before each,
    and on a terminal a long line is wrapped to its width (without colours)."""

    def __init__(self, screen: _Screen, target: TextIO) -> None:
        self.screen = screen
        self.target = target

    def write(self, text: str) -> int:
        self.screen.clear()
        if self.screen.tty and self.target.isatty():
            width = self.screen.width() - 1
            text = "\n".join(
                "\n".join(textwrap.wrap(ANSI.sub("", line), width, subsequent_indent="    "))
                for line in text.split("\n")
            )
        return self.target.write(text)

    def flush(self) -> None:
        self.target.flush()

    def isatty(self) -> bool:
        return self.target.isatty()


def _settings(fake: FakeEuler, server: LoopbackServer, state_dir: Path, handle: str) -> Settings:
    return Settings(
        api_key=SecretStr(fake.api_key),
        client_id=fake.client_id,
        client_secret=SecretStr(fake.client_secret),
        api_base_url=server.url,
        ws_url=server.ws_url,
        streamers=[handle],
        state_dir=state_dir,
        live_check_interval=1.0,
        dry_run=False,
    )


def _remember(state_dir: Path, fake: FakeEuler, handle: str) -> None:
    """Write ``demo.json``: what :func:`revived` needs to bring this fake server back."""
    streamer = fake.streamer(handle)
    marker = {
        "note": "written by `modbot demo`: generated credentials for its fake Euler server",
        "api_key": fake.api_key,
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "streamer": handle,
        "room_id": streamer.room_id,
        "past_rooms": sorted(streamer.past_rooms),
        "owner_user_id": streamer.owner.user_id,
        "live": streamer.is_live,
    }
    write_private(state_dir / MARKER, json.dumps(marker, indent=2).encode())


def _keep_world(state_dir: Path, fake: FakeEuler, handle: str) -> None:
    """Write ``demo_world.json``: the fake's mutes, bans, moderators and keyword filter,
    so the next command on this state directory finds them as this one left them."""
    state = moderation_state(fake.world, fake.streamer(handle))
    write_private(state_dir / WORLD, json.dumps(state, indent=2).encode())


def _revive_world(state_dir: Path, fake: FakeEuler, handle: str) -> None:
    """Read ``demo_world.json`` back; a missing one is an empty world, a broken or hostile
    one too, said once on stderr."""
    path = state_dir / WORLD
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return
    except OSError as exc:
        problem = type(exc).__name__
    else:
        try:
            restore_moderation(fake.world, fake.streamer(handle), json.loads(text))
        except (ValueError, RecursionError) as exc:
            problem = shown(str(exc), 120)
        else:
            return
    sys.stderr.write(
        f"modbot: warning: {path} is not readable ({problem}); the demo's fake server "
        "starts with empty lists and keyword filter\n"
    )


def is_demo_state(state_dir: Path) -> bool:
    return (state_dir / MARKER).is_file()


@asynccontextmanager
async def revived(state_dir: Path) -> AsyncIterator[Settings]:
    """The demo's fake Euler server again (same credentials, room and grant), for
    ``undo`` and the actions by hand."""
    try:
        marker = json.loads((state_dir / MARKER).read_text(encoding="utf-8"))
        fake = FakeEuler(
            api_key=str(marker["api_key"]),
            client_id=str(marker["client_id"]),
            client_secret=str(marker["client_secret"]),
        )
        handle = str(marker["streamer"])
        # Live in its last room, as the demo left it: actions by hand act there.
        streamer = fake.add_streamer(
            handle,
            user_id=str(marker["owner_user_id"]),
            room_id=str(marker["room_id"]),
            live=marker.get("live", True) is True,
        )
        streamer.past_rooms.update(str(room) for room in marker["past_rooms"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        msg = f"{state_dir / MARKER} is not a readable demo marker ({exc!r})"
        raise ConfigError(msg, setting="state_dir") from None
    tokens = TokenStore(state_dir).load()
    if tokens is None:
        msg = f"the demo's grant is missing from {state_dir}; run `modbot demo` again"
        raise ConfigError(msg, setting="state_dir")
    fake.accept_grant(
        tokens.access_token.get_secret_value(),
        tokens.refresh_token.get_secret_value(),
        tokens.scopes,
        handle,
    )
    _revive_world(state_dir, fake, handle)
    try:
        async with serve(fake.app) as server:
            yield _settings(fake, server, state_dir, handle)
    finally:
        _keep_world(state_dir, fake, handle)


async def _summary(state_dir: Path, finished: bool, screen: _Screen, record: Path | None) -> None:
    db = default_db(state_dir)
    async with AuditStore.open(db) as store:
        await screen.outcomes(store)  # any that finished as the daemon stopped
        entries = await store.query(AuditFilter(limit=None))
    table = Counter((e.rule, e.action, e.status) for e in entries)
    lines = ["", "rule              action     status     count"]
    lines += [
        f"{rule:<17} {action:<10} {status:<10} {count:>5}"
        for (rule, action, status), count in sorted(table.items())
    ]
    if screen.reasons:
        lines += ["", "Why not done:"]
        lines += [
            f"{count:>5} {verdict}: {why}"
            for (verdict, why), count in sorted(screen.reasons.items())
        ]
    if not finished:
        lines.append("\nThe scenario did not finish within --duration.")
    if record is not None:
        lines.append(
            f"\nThe stream's events are in {record}: try modbot replay {record} --rules rules/"
        )
    lines.append(
        f"\nAudit log: {db}\nTry: modbot audit --state-dir {state_dir}\n"
        f"     modbot audit --state-dir {state_dir} --format json\n"
        f"     modbot undo --state-dir {state_dir} ID   (against the demo's fake server)\n"
        f"The demo's state directory {state_dir} (its audit log and fake grant) is kept "
        "for `modbot audit` and `modbot undo`; delete it when done."
    )
    screen.say("\n".join(lines))
