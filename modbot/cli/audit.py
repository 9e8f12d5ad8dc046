"""``modbot audit`` and ``modbot undo``: the audit log, read and reversed."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import anyio

from modbot.actions.table import undoable
from modbot.cli.output import EXIT_FAILED, EXIT_OK, EXIT_USAGE, demo_or, fail, open_state_dir
from modbot.clock import SystemClock
from modbot.config import Settings
from modbot.errors import ConfigError, ModbotError
from modbot.euler.session import api_session
from modbot.inert import shown

if TYPE_CHECKING:
    from modbot.actions.undo import UndoResult
    from modbot.audit.store import Entry


def db_path(args: argparse.Namespace, settings: Settings) -> Path:
    """The audit database a command reads or writes (``--db``, else the state
    directory's), after the checks of the directory it is in and of the file itself."""
    from modbot.audit.store import default_db  # noqa: PLC0415

    path: Path = args.db or default_db(settings.state_dir)
    open_state_dir(path.parent)
    if not path.exists():
        msg = (
            f"there is no audit database at {path}; modbot has not run with this state "
            "directory (use --state-dir or --db)"
        )
        raise ModbotError(msg)
    _check_db_file(path)
    return path


def _check_db_file(path: Path) -> None:
    """The audit log (viewers' messages, who was muted and why) is 0600 when modbot made
    it: refuse one that others can write (they could rewrite what it says was done, and
    what undo reverses), and warn about one they can read."""
    import stat  # noqa: PLC0415

    try:
        info = path.stat()
    except OSError as exc:
        raise ModbotError(f"cannot use the audit database {path}: {exc.strerror}") from None
    mode = stat.S_IMODE(info.st_mode)
    if not stat.S_ISREG(info.st_mode):
        raise ModbotError(f"the audit database {path} is not a regular file")
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        msg = (
            f"the audit database {path} has mode {mode:04o}: others can rewrite the audit "
            f"log; run `chmod 600 {path}`"
        )
        raise ConfigError(msg, setting="state_dir")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        fail(
            f"modbot: warning: the audit database {path} has mode {mode:04o}: others can "
            f"read the audit log; `chmod 600 {path}` closes it"
        )


def audit_command(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    from modbot.audit import view  # noqa: PLC0415
    from modbot.audit.query import AuditFilter, FilterError, parse_when  # noqa: PLC0415
    from modbot.audit.store import AuditStore  # noqa: PLC0415

    now = SystemClock().now()
    try:
        where = AuditFilter(
            user=args.user,
            rule=args.rule,
            action=args.action,
            streamer=args.streamer,
            since=parse_when(args.since, now) if args.since else None,
            until=parse_when(args.until, now) if args.until else None,
            status=args.status,
            incident=args.incident,
            limit=args.limit,
        )
    except FilterError as exc:
        fail(f"modbot: {exc}")
        return EXIT_USAGE
    path = db_path(args, settings)

    async def read() -> list[Any]:
        async with AuditStore.open_readonly(path) as store:  # never created nor migrated
            return await store.query(where)

    entries = anyio.run(read, backend="asyncio")
    if args.format == "json":
        text = view.json_lines(entries)
    elif args.format == "csv":
        text = view.csv_text(entries)
    else:
        text = view.table(entries) if entries else "No audit entries match."
    if text:
        print(text, file=out)
    return EXIT_OK


def undo_command(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    from modbot.actions.executor import Executor  # noqa: PLC0415
    from modbot.actions.undo import undo_carried  # noqa: PLC0415
    from modbot.audit import incidents  # noqa: PLC0415
    from modbot.audit.query import AuditFilter, FilterError, parse_when  # noqa: PLC0415
    from modbot.audit.store import AuditStore  # noqa: PLC0415
    from modbot.demo import is_demo_state  # noqa: PLC0415

    usage = _undo_usage(args)
    if usage:
        fail(f"modbot: {usage}")
        return EXIT_USAGE
    clock = SystemClock()
    where = None
    if args.rule:
        if not args.since:
            fail("modbot: --rule needs --since (for example --since 10m)")
            return EXIT_USAGE
        try:
            where = AuditFilter(
                rule=args.rule,
                user=args.user,
                since=parse_when(args.since, clock.now()),
                status="done",
                limit=None,
                oldest_first=True,
            )
        except FilterError as exc:
            fail(f"modbot: {exc}")
            return EXIT_USAGE
    if args.incident is not None:
        where = AuditFilter(incident=args.incident, limit=None, oldest_first=True)
    path = db_path(args, settings)
    if not is_demo_state(path.parent):
        open_state_dir(settings.state_dir)  # the grant is read, and written when refreshed

    async def reverse() -> int:
        failures = 0
        async with AsyncExitStack() as stack:
            note = sys.stderr if args.json else out
            active = await demo_or(settings, path.parent, stack, note, doing="undoing against")
            store = await stack.enter_async_context(AuditStore.open(path))
            client, _, grant = await stack.enter_async_context(api_session(active, clock))
            executor = Executor(client, store, clock, granted_scopes=grant.scopes)
            ids = list(args.ids)
            known = False
            if args.incident is not None:
                # First: a nuke or raid sweep of it still running acts on no one more.
                known = await incidents.stop_incident(store, args.incident, clock.now())
            if where is not None:
                candidates = await store.query(where)
                if args.incident is not None and not candidates and not known:
                    fail(f"modbot: error: there is no incident #{args.incident} in {path}")
                    return EXIT_FAILED
                ids = [e.id for e in candidates if _to_undo(e)]
                if not ids:
                    if not args.json:
                        print(_nothing(args), file=out)
                    return EXIT_OK
            for entry_id in ids:
                # a ban carried into later lives is lifted there too
                for result in await undo_carried(executor, store, entry_id, reason=args.reason):
                    ok, record, text = _undo_outcome(result.original_id, result)
                    failures += not ok
                    print(json.dumps(record, ensure_ascii=True) if args.json else text, file=out)
        return EXIT_FAILED if failures else EXIT_OK

    return anyio.run(reverse, backend="asyncio")


def _to_undo(entry: Entry) -> bool:
    """Whether a selected row is one to reverse: a done action that has an inverse and
    is not undone yet (undo itself says why one of them cannot be)."""
    return entry.status == "done" and undoable(entry.action) and entry.undone_by is None


def _nothing(args: argparse.Namespace) -> str:
    if args.incident is not None:
        return f"Nothing to undo in incident #{args.incident}: each action is undone or ended, and it acts on no one more."
    return f"Nothing to undo for rule {shown(args.rule)} since {shown(args.since, 40)}."


def _undo_usage(args: argparse.Namespace) -> str | None:
    """What is wrong with the way ``undo`` was asked, if anything."""
    if args.incident is not None:
        if args.ids or args.rule or args.since or args.user:
            return "give --incident N alone, not with audit ids, --rule, --since or --user"
        return None
    if args.ids and (args.rule or args.since or args.user):
        return "give audit ids, or --rule R --since TIME [--user U], not both"
    if args.ids or args.rule:
        return None
    narrowing = [f"--{name}" for name in ("since", "user") if getattr(args, name)]
    if not narrowing:
        return "give audit ids (see `modbot audit`), or --rule R --since TIME"
    example = "--rule scam-links --since 10m" + (" --user @viewer" if args.user else "")
    return (
        f"{' and '.join(narrowing)} only narrow{'s' * (len(narrowing) == 1)} an undo by "
        f"rule: also give --rule R and --since TIME (for example {example}), or give "
        "audit ids (see `modbot audit`)"
    )


def _undo_outcome(entry_id: int, result: UndoResult) -> tuple[bool, dict[str, Any], str]:
    """Whether one undo worked, as a JSON object and as a line for people."""
    record: dict[str, Any] = {"id": entry_id, "undone": result.ok}
    if result.refused is not None:
        record["refused"] = result.refused
        return False, record, f"#{entry_id}: not undone: {shown(result.refused, 300)}"
    if result.entry is not None and result.ok:
        done = reversal_words(result.entry)
        record |= {"undone_by": result.entry.id, "reversal": done}
        return True, record, f"#{entry_id}: undone by #{result.entry.id} ({done})"
    # The API's own words: shown inert, they are not ours to trust.
    error = result.entry.error if result.entry else "unknown"
    record |= {"reversal_id": result.entry.id if result.entry else None, "error": error}
    return False, record, f"#{entry_id}: the reversal failed: {shown(error or '', 300)}"


def reversal_words(entry: Entry) -> str:
    """What a reversal did, in a few words: ``unmute``, ``unban``, ``comments back on``."""
    if entry.action == "comments":
        return "comments back on" if entry.params.get("enabled") else "comments off again"
    return shown(entry.action)
