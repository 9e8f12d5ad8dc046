"""``modbot demo``: the real daemon against the bundled fake Euler server (I/O).

A scripted stream (``modbot/fake/scenarios/demo.yaml``: ordinary chat, a question,
link spam, scam phrases, an insult escalation, a flood, a copy-paste raid, an exempt
moderator, the stream going offline and back live) is played on a fake Euler server on
a free loopback port, with generated credentials; ``modbot run``'s daemon moderates it
with the example rules and every decision is shown as it happens. The audit log stays
in the state directory, so ``modbot audit`` can be tried at once.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
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
from modbot.euler.oauth import TokenStore
from modbot.euler.scopes import KNOWN_SCOPES
from modbot.euler.tokens import token_set_from_answer
from modbot.events import Event
from modbot.fake.scenario import ScenarioRunner, load_scenario
from modbot.fake.server import FakeEuler
from modbot.loopback import serve
from modbot.rules.engine import Decision
from modbot.rules.schema import inert

SETTLE = 2.0  # seconds after the last scripted event for the last calls to finish


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
    shown = Counter[str]()
    started = time.monotonic()

    def show(event: Event, decisions: list[Decision]) -> None:
        who = event.user.unique_id if event.user else "?"
        for d in decisions:
            if d.suppressed:
                verdict = f"not done ({d.suppressed})"
            elif d.mode == "observe":
                verdict = "observed only"
            else:
                verdict = "acting"
            shown[d.rule_id] += 1
            print(
                f"{time.monotonic() - started:5.1f}s  @{inert(who, 20):<20} "
                f"{inert(event.text, 40)!r:<44} {d.rule_id:<16} {d.describe()} [{verdict}]",
                file=out,
                flush=True,
            )

    async with serve(fake.app) as server:
        TokenStore(state_dir).save(
            token_set_from_answer(fake.issue_tokens(KNOWN_SCOPES, account=handle), time.time())
        )
        settings = Settings(
            api_key=SecretStr(fake.api_key),
            client_id=fake.client_id,
            client_secret=SecretStr(fake.client_secret),
            api_base_url=server.url,
            ws_url=server.ws_url,
            streamers=[handle],
            state_dir=state_dir,
            rules_dir=rules[0],
            live_check_interval=1.0,
            dry_run=False,
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
                await runner.run()
                await anyio.sleep(SETTLE)
            daemon.stop()
        if code:
            return code
    await _summary(state_dir, runner.done.is_set(), out)
    return 0 if runner.done.is_set() else 1


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
        f"     modbot audit --state-dir {state_dir} --format json",
        file=out,
    )
