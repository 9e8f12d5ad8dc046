"""``modbot demo``: the real daemon against the bundled fake Euler server (I/O).

A scripted stream (``modbot/fake/scenarios/demo.yaml``: ordinary chat, a question,
link spam, scam phrases, an insult escalation, a flood, a copy-paste raid, an exempt
moderator, the stream going offline and back live) is played on a fake Euler server on
a free loopback port, with generated credentials; ``modbot run``'s daemon moderates it
with the example rules and every decision is shown as it happens. The audit log stays
in the state directory, so ``modbot audit`` can be tried at once.

The demo also leaves ``demo.json`` (mode 0600) in its state directory: the generated
credentials and the room. ``modbot undo`` on such a directory brings the demo's fake
server back for the length of the command (:func:`revived`), so undo can be tried too;
a real state directory never has this file, and nothing in it reaches TikTok.
"""

from __future__ import annotations

import json
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import TextIO

import anyio
import yaml
from pydantic import SecretStr

from modbot.audit.query import AuditFilter
from modbot.audit.store import AuditStore, default_db
from modbot.config import Settings
from modbot.daemon import Daemon
from modbot.errors import ConfigError
from modbot.euler.oauth import TokenStore
from modbot.euler.scopes import KNOWN_SCOPES
from modbot.euler.tokens import token_set_from_answer
from modbot.events import Event
from modbot.fake.scenario import ScenarioRunner, load_scenario
from modbot.fake.server import FakeEuler
from modbot.files import write_private
from modbot.inert import shown
from modbot.loopback import LoopbackServer, serve
from modbot.rules.engine import Decision

SETTLE = 2.0  # seconds after the last scripted event for the last calls to finish
MARKER = "demo.json"


def example_rules() -> Path | None:
    """The example rules: in the wheel (``modbot/examples/rules``) or the source checkout."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "examples" / "rules", package.parent / "rules"):
        if (candidate / "moderation.yaml").is_file():
            return candidate
    return None


def scenario_text() -> str:
    return resources.files("modbot.fake").joinpath("scenarios/demo.yaml").read_text("utf-8")


async def run_demo(
    *,
    rules: list[Path],
    state_dir: Path,
    duration: float,
    speed: float,
    out: TextIO,
) -> int:
    """Play the demo stream; returns 0 when the scenario ran."""
    fake = FakeEuler(
        api_key="demo-" + secrets.token_hex(12),
        client_id="demo-client",
        client_secret="demo-" + secrets.token_hex(12),
    )
    scenario = load_scenario(yaml.safe_load(scenario_text()))
    runner = ScenarioRunner(fake, scenario, speed=speed)
    handle = scenario.streamer.unique_id
    started = time.monotonic()
    progress = _Progress(out, scenario.duration / speed)

    def show(event: Event, decisions: list[Decision]) -> None:
        who = event.user.unique_id if event.user else "?"
        for d in decisions:
            if d.suppressed:
                verdict = f"not done ({d.suppressed})"
            elif d.mode == "observe":
                verdict = "observed only"
            else:
                verdict = "acting"
            progress.clear()
            print(
                f"{time.monotonic() - started:5.1f}s  @{shown(who, 20):<20} "
                f"{shown(event.text, 40)!r:<44} {d.rule_id:<16} {d.describe()} [{verdict}]",
                file=out,
                flush=True,
            )

    async with serve(fake.app) as server:
        TokenStore(state_dir).save(
            token_set_from_answer(fake.issue_tokens(KNOWN_SCOPES, account=handle), time.time())
        )
        _remember(state_dir, fake, handle)
        settings = _settings(fake, server, state_dir, handle).model_copy(
            update={"rules_dir": rules[0]}
        )
        daemon = Daemon(settings, rule_paths=rules, handle_signals=False, on_decisions=show)
        print(
            f"modbot demo: the fake Euler server is on {server.url}; playing "
            f"{scenario.duration / speed:.0f}s of scripted chat for @{handle} (rules: "
            f"{', '.join(map(str, rules))})\n",
            file=out,
            flush=True,
        )
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
                    shows.start_soon(progress.follow, daemon, runner)
                    await runner.run()
                    await anyio.sleep(SETTLE)
                    shows.cancel_scope.cancel()
            progress.finish(daemon, runner)
            daemon.stop()
        _remember(state_dir, fake, handle)  # with the rooms of every stream played
        if code:
            return code
    await _summary(state_dir, runner.done.is_set(), out)
    return 0 if runner.done.is_set() else 1


class _Progress:
    """The progress line: redrawn in place on a terminal, a plain line now and then elsewhere."""

    def __init__(self, out: TextIO, total: float) -> None:
        self.out = out
        self.total = total
        self.started = time.monotonic()
        self.tty = out.isatty()
        self.drawn = False

    def text(self, daemon: Daemon, runner: ScenarioRunner) -> str:
        done = daemon.executor.statistics().done if daemon.executor else 0
        live = "live" if runner.streamer.is_live else "offline"
        elapsed = time.monotonic() - self.started
        return (
            f"[{elapsed:4.0f}s of the ~{self.total:.0f}s script] stream {live}, "
            f"{daemon.stats.events} events read, {daemon.stats.decisions} decisions, "
            f"{done} actions done"
        )

    def clear(self) -> None:
        if self.drawn:
            self.out.write("\r\x1b[K")
            self.drawn = False

    async def follow(self, daemon: Daemon, runner: ScenarioRunner) -> None:
        every = 0.25 if self.tty else 10.0
        while True:
            await anyio.sleep(every)
            if self.tty:
                self.out.write("\r\x1b[K" + self.text(daemon, runner))
                self.out.flush()
                self.drawn = True
            else:
                print(self.text(daemon, runner), file=self.out, flush=True)

    def finish(self, daemon: Daemon, runner: ScenarioRunner) -> None:
        self.clear()
        print(self.text(daemon, runner), file=self.out, flush=True)


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
    }
    write_private(state_dir / MARKER, json.dumps(marker, indent=2).encode())


def is_demo_state(state_dir: Path) -> bool:
    return (state_dir / MARKER).is_file()


@asynccontextmanager
async def revived(state_dir: Path) -> AsyncIterator[Settings]:
    """The demo's fake Euler server again (same credentials, room and grant), for ``undo``."""
    try:
        marker = json.loads((state_dir / MARKER).read_text(encoding="utf-8"))
        fake = FakeEuler(
            api_key=str(marker["api_key"]),
            client_id=str(marker["client_id"]),
            client_secret=str(marker["client_secret"]),
        )
        handle = str(marker["streamer"])
        streamer = fake.add_streamer(
            handle, user_id=str(marker["owner_user_id"]), room_id=str(marker["room_id"])
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
    async with serve(fake.app) as server:
        yield _settings(fake, server, state_dir, handle)


async def _summary(state_dir: Path, finished: bool, out: TextIO) -> None:
    db = default_db(state_dir)
    async with AuditStore.open(db) as store:
        entries = await store.query(AuditFilter(limit=None))
    table = Counter((e.rule, e.action, e.status) for e in entries)
    print("\nrule              action     status     count", file=out)
    for (rule, action, status), count in sorted(table.items()):
        print(f"{rule:<17} {action:<10} {status:<10} {count:>5}", file=out)
    if not finished:
        print("\nThe scenario did not finish within --duration.", file=out)
    print(
        f"\nAudit log: {db}\nTry: modbot audit --state-dir {state_dir}\n"
        f"     modbot audit --state-dir {state_dir} --format json\n"
        f"     modbot undo --state-dir {state_dir} ID   (against the demo's fake server)",
        file=out,
    )
