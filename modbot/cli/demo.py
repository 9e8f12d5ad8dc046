"""``modbot demo``: the real daemon against the bundled fake Euler server."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

import anyio

from modbot.cli.output import EXIT_USAGE, fail, open_state_dir
from modbot.config import Settings


def demo_command(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    import tempfile  # noqa: PLC0415

    from modbot.demo import example_rules, run_demo  # noqa: PLC0415

    if args.speed <= 0 or args.duration <= 0:
        fail("modbot: --speed and --duration must be positive")
        return EXIT_USAGE
    rules: Path | None = args.rule_dir or example_rules()
    if rules is None or not rules.exists():
        fail(f"modbot: the rules directory {rules} does not exist (use --rules DIR)")
        return EXIT_USAGE
    # Never the real state directory by default: the demo writes its own fake grant.
    if args.state_dir:
        open_state_dir(args.state_dir)
    state = args.state_dir or Path(tempfile.mkdtemp(prefix="modbot-demo-"))
    # Info-level log lines would repeat the demo's own lines: warnings and errors only,
    # unless -v asks for more.
    level = "debug" if args.verbose else "warning"
    return anyio.run(
        lambda: run_demo(
            rules=[rules],
            state_dir=state,
            duration=args.duration,
            speed=args.speed,
            out=out,
            log_level=level,
            log_format=settings.log_format,
            record=args.record,
        ),
        backend="asyncio",
    )
