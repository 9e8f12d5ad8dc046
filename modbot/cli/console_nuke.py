"""``modbot nuke``: act on every viewer whose recent comment matches, as one incident.

The command checks its arguments, writes a request to the audit database and waits for
the running daemon to take and answer it (:mod:`modbot.audit.requests`): only the daemon
has the recent comments and sees the new ones. No daemon taking it within ``--wait``
seconds is an error that says so (exit 1), and the request is withdrawn.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import anyio

from modbot.actions import manual
from modbot.cli.output import EXIT_FAILED, EXIT_OK, EXIT_USAGE, fail, open_state_dir
from modbot.cli.viewers import who_ran
from modbot.clock import SystemClock
from modbot.config import Settings
from modbot.inert import shown

if TYPE_CHECKING:
    from modbot.audit.requests import Request
    from modbot.audit.store import AuditStore

WAIT = 10.0  # seconds for a daemon to take the request
MAX_WAIT = 600.0
ANSWER_WAIT = 120.0  # seconds for the daemon, once it took it, to answer
STEP = 0.1


def add_nuke(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """The ``nuke`` command's options."""
    nuke = commands.add_parser(
        "nuke",
        parents=[common],
        help="act on every viewer whose recent comment matches (one incident, undone whole)",
        description=(
            "The running daemon (`modbot run` with this state directory) acts on every "
            "viewer whose comment of the last --since matches PATTERN, and on each new "
            "matching comment for --for: each viewer once, never the streamer or a "
            "moderator. PATTERN is a phrase, matched as text.words matches in rules "
            "(normalised, whole words), or /regex/ (RE2, as text.regex; (?i) for any "
            "case). Every action belongs to one incident: `modbot undo --incident N` "
            "reverses it whole."
        ),
    )
    nuke.add_argument("pattern", metavar="PATTERN", help="a phrase, or /regex/")
    nuke.add_argument(
        "--since", default="2m", help="look back this long: 30s, 2m, up to 15m (default: 2m)"
    )
    nuke.add_argument(
        "--then",
        default="mute 5m",
        metavar="ACTION",
        help="what to do to each viewer: 'mute 5m', 'mute forever', 'ban' or 'log' "
        "(default: 'mute 5m')",
    )
    nuke.add_argument(
        "--for",
        dest="for_",
        default="5m",
        metavar="DURATION",
        help="also act on new matching comments this long; 0 for none (default: 5m)",
    )
    nuke.add_argument("--streamer", help="whose room (may be left out with one streamer)")
    nuke.add_argument("--reason", metavar="TEXT", help="why, kept in the audit log")
    nuke.add_argument("--db", type=Path, metavar="FILE", help="the audit database")
    nuke.add_argument(
        "--wait",
        type=float,
        default=WAIT,
        metavar="SECONDS",
        help=f"how long to wait for the running daemon to take it (default: {WAIT:g})",
    )
    nuke.add_argument("--json", action="store_true", help="the answer as one JSON object")
    nuke.set_defaults(handler=nuke_command)


def nuke_command(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    from modbot.actions import nuke as nk  # noqa: PLC0415
    from modbot.audit import requests  # noqa: PLC0415
    from modbot.audit.store import AuditStore, default_db  # noqa: PLC0415

    try:
        nk.compile_pattern(args.pattern)
        then = nk.parse_then(args.then)
        since_s = nk.parse_span(args.since, option="--since", longest=nk.MAX_SINCE)
        for_s = nk.parse_span(args.for_, option="--for", longest=nk.MAX_FOR, zero=True)
        reason = manual.clean_reason(args.reason)  # as for every action by hand
    except (nk.PatternRefused, manual.Refused) as exc:
        fail(f"modbot: {exc}")
        return EXIT_USAGE
    if not 0 < args.wait <= MAX_WAIT:
        fail(f"modbot: --wait: give a number of seconds above 0, at most {MAX_WAIT:g}")
        return EXIT_USAGE
    path: Path = args.db or default_db(settings.state_dir)
    open_state_dir(path.parent)
    if not path.is_file():
        fail(
            f"modbot: error: no modbot daemon is running with this state directory: there "
            f"is no audit database at {path} (start `modbot run`, or give --state-dir)"
        )
        return EXIT_FAILED
    order: dict[str, Any] = {
        "pattern": args.pattern,
        "then": then.describe(),
        "since_s": since_s,
        "for_s": for_s,
        "streamer": args.streamer,
        "reason": reason,
        "by": who_ran(),
    }
    clock = SystemClock()

    async def ask() -> Request | str:
        async with AuditStore.open(path) as store:
            request_id = await requests.submit(store, "nuke", order, clock.now())
            found = await _wait(store, request_id, args.wait, ("pending",))
            if (
                found is not None
                and found.status == "pending"
                and await requests.expire(store, request_id, clock.now(), "nobody took it")
            ):
                return (
                    f"no modbot daemon took the nuke within {args.wait:g}s: is `modbot "
                    f"run` running with this state directory ({path.parent})?"
                )
            found = await _wait(store, request_id, ANSWER_WAIT, ("pending", "taken"))
            if found is None or found.status in ("pending", "taken"):
                return (
                    f"the daemon took the nuke (request #{request_id}) but gave no answer "
                    f"within {ANSWER_WAIT:g}s; see `modbot audit --rule nuke`"
                )
            return found

    result = anyio.run(ask, backend="asyncio")
    if isinstance(result, str):
        fail(f"modbot: error: {result}")
        return EXIT_FAILED
    answer = result.answer or {}
    if result.status != "done":
        fail(f"modbot: error: the daemon did not nuke: {shown(str(answer.get('error')), 300)}")
        if args.json:
            print(json.dumps({"ok": False, **answer}, ensure_ascii=True), file=out)
        return EXIT_FAILED
    if args.json:
        print(json.dumps({"ok": True, **answer}, ensure_ascii=True), file=out)
    else:
        print(said(answer), file=out)
    return EXIT_OK


async def _wait(
    store: AuditStore, request_id: int, seconds: float, waiting: tuple[str, ...]
) -> Request | None:
    """The request once its status is not one of ``waiting`` (or as it is at the end)."""
    from modbot.audit import requests  # noqa: PLC0415

    found = None
    with anyio.move_on_after(seconds):
        while True:
            found = await requests.get(store, request_id)
            if found is None or found.status not in waiting:
                return found
            await anyio.sleep(STEP)
    return found


def said(answer: dict[str, Any]) -> str:
    """The daemon's answer for people."""
    counts = answer.get("counts") or {}
    parts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none"
    line = (
        f"Incident #{answer.get('incident')}: {shown(str(answer.get('pattern')), 120)} -> "
        f"{shown(str(answer.get('then')), 40)}: {answer.get('past', 0)} viewer(s) from the last "
        f"{shown(str(answer.get('since')), 20)} ({parts})"
    )
    if answer.get("for"):
        line += (
            f"; new matching comments too, for {shown(str(answer['for']), 20)} "
            f"(until {shown(str(answer.get('until')), 30)})"
        )
    return line + f". Undo it whole: modbot undo --incident {answer.get('incident')}"
