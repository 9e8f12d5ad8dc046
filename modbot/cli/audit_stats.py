"""``modbot audit stats``: per rule, fired, enforced, observed, skipped, failed, undone
and the undo rate, from the audit log (read only) (I/O)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

import anyio

from modbot.cli.output import EXIT_OK, EXIT_USAGE, fail
from modbot.clock import SystemClock
from modbot.config import Settings


def add_audit_stats(audit: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    """``stats`` under ``modbot audit`` (``modbot audit`` alone still lists entries)."""
    below = audit.add_subparsers(dest="audit_command", metavar="stats", required=False)
    stats = below.add_parser(
        "stats",
        parents=[common],
        help="per rule: fired, enforced, observed, skipped, failed, undone, undo rate",
        description=(
            "Count each rule's decisions since a time: fired (all of them), enforced "
            "(done), observed, skipped, failed, undone later, and the undo rate (undone "
            "over its done mutes, bans and comments off). A rule whose actions are often "
            "undone misfires: one whose rate is far above the other rules' is flagged for "
            "review. Reversals (undo, expiry timers) are not counted as decisions."
        ),
    )
    stats.add_argument("--db", type=Path, metavar="FILE", help="the audit database")
    stats.add_argument(
        "--since", default="24h", help="10m, 2h, 1d ago, or an ISO 8601 time (default: 24h)"
    )
    stats.add_argument("--streamer", help="only this streamer's rooms (with or without @)")
    stats.add_argument(
        "--format",
        choices=["table", "json"],
        default="table",
        help="table for people (default), or json: one object per rule per line",
    )
    stats.add_argument(
        "--json", dest="format", action="store_const", const="json", help="--format json"
    )
    stats.set_defaults(handler=stats_command)


def stats_command(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    from modbot.audit import stats  # noqa: PLC0415
    from modbot.audit.query import FilterError, parse_when  # noqa: PLC0415
    from modbot.audit.store import AuditStore  # noqa: PLC0415
    from modbot.cli.audit import db_path  # noqa: PLC0415

    try:
        since = parse_when(args.since, SystemClock().now())
    except FilterError as exc:
        fail(f"modbot: --since: {exc}")
        return EXIT_USAGE
    path = db_path(args, settings)
    sql, params = stats.query(since, args.streamer)

    async def read() -> list[stats.RuleStats]:
        async with AuditStore.open_readonly(path) as store:  # never created nor migrated
            return stats.from_rows(await store.execute(sql, params))

    found = anyio.run(read, backend="asyncio")
    if args.format == "json":
        if found:
            print(stats.json_lines(found), file=out)
    elif found:
        print(stats.table(found), file=out)
    else:
        print(f"No rule fired since {args.since}.", file=out)
    return EXIT_OK
