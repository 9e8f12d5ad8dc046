"""``modbot mutes``, ``modbot bans`` and ``modbot moderators``: the console's lists (I/O).

The lists come from the API, all pages (``EulerClient.all_mutes``: capped, and a list the
cap cut short is said on stderr and exits 1), with modbot's own record beside each user
where it has one: the newest done mute or ban of that user in that room that was not
undone. ``moderators add|remove`` are audited actions (rule ``manual``, the operator's
``--reason`` and login name), carried out by the executor as undo carries out its
reversals, so ``modbot undo ID`` reverses them. Like ``undo``, the commands work on a
``modbot demo`` state directory, against the demo's fake server.

Viewers' names are theirs, not ours: every one is shown inert (``modbot.inert.shown``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import anyio

from modbot.actions import manual
from modbot.cli.output import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Usage,
    demo_or,
    fail,
    open_state_dir,
)
from modbot.cli.viewers import who_ran
from modbot.clock import SystemClock
from modbot.config import Settings
from modbot.errors import ModbotError
from modbot.inert import shown

if TYPE_CHECKING:
    from modbot.actions.executor import Executor
    from modbot.audit.records import Entry
    from modbot.audit.store import AuditStore
    from modbot.euler.client import EulerClient, ListedUser

MANUAL_RULE = manual.MANUAL_RULE  # the rule id of an action by hand (cli.md, the console)

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]  # noqa: SLF001


class Refused(ModbotError):
    """A console command that cannot be done as asked (exit 1, one sentence)."""


# --- the commands' options -------------------------------------------------------------


def add_console_lists(commands: Subparsers, common: argparse.ArgumentParser) -> None:
    """Register ``mutes``, ``bans``, ``moderators`` and ``keywords``."""
    from modbot.cli.console_keywords import add_keywords  # noqa: PLC0415

    for name, what in (("mutes", "muted"), ("bans", "banned")):
        cmd = commands.add_parser(
            name,
            parents=[common],
            help=f"who is {what} now in a streamer's room, with modbot's record of it",
            description=(
                f"Who is {what} now in the streamer's room, from the API (all pages), with "
                f"modbot's own record beside each (rule, when, audit id) where it has one."
            ),
        )
        cmd.add_argument("--streamer", help="whose room (may be left out with one streamer)")
        cmd.add_argument("--json", action="store_true", help="one JSON object per line")
        cmd.set_defaults(handler=lists_command, list_kind=name)

    mods = commands.add_parser(
        "moderators",
        parents=[common],
        help="list, add or remove the streamer's moderators (audited, undoable)",
        description=(
            "The streamer's moderators (scope webcast:moderators). add and remove are "
            "audited like every action by hand; `modbot undo ID` reverses them."
        ),
    )
    mods.add_argument("op", choices=("list", "add", "remove"), help="what to do")
    mods.add_argument("viewer", nargs="?", metavar="VIEWER", help="@handle or numeric user id")
    where = mods.add_mutually_exclusive_group()
    where.add_argument("--streamer", help="whose moderators (may be left out with one streamer)")
    where.add_argument(
        "--everywhere", action="store_true", help="every configured streamer's moderators"
    )
    mods.add_argument("--reason", metavar="TEXT", help="why, kept in the audit log")
    mods.add_argument("--json", action="store_true", help="one JSON object per line")
    mods.set_defaults(handler=moderators_command)
    add_keywords(commands, common)


# --- what every console command opens ---------------------------------------------------


@dataclass
class Console:
    """The audit store, the client acting for the streamer, its grant, and an executor."""

    settings: Settings
    store: AuditStore
    client: EulerClient
    scopes: frozenset[str]
    executor: Executor
    clock: SystemClock

    def streamers(self, args: argparse.Namespace) -> list[str]:
        """The streamers a command acts for, picked as for every command by hand
        (:func:`modbot.actions.manual.pick_streamers`): a ``--streamer`` that is not
        configured is refused."""
        try:
            return manual.pick_streamers(
                args.streamer,
                self.settings.streamers,
                everywhere=bool(getattr(args, "everywhere", False)),
            )
        except manual.Refused as exc:
            raise Usage(str(exc)) from None

    def need(self, scope: str, what: str) -> None:
        if scope not in self.scopes:
            msg = f"{what} needs the OAuth scope {scope}, which the grant lacks; run `modbot auth login`"
            raise Refused(msg)

    async def anchor_id(self, handle: str) -> str:
        """A streamer's numeric user id (the handle cache of the audit DB, else the API)."""
        from modbot.audit.handles import Handles  # noqa: PLC0415

        known = await Handles(self.store).user_id(handle)
        if known:
            return known
        found = await self.client.user_id(handle)
        await Handles(self.store).save(handle, found, self.clock.now())
        return found

    async def room_of(self, handle: str) -> str:
        """The streamer's room: the live one, else the newest room modbot acted in."""
        from modbot.audit.query import AuditFilter  # noqa: PLC0415

        status = await self.client.room_id(handle)
        if status.room_id:
            return status.room_id
        for entry in await self.store.query(AuditFilter(streamer=handle, limit=50)):
            if entry.room_id:
                return entry.room_id
        msg = f"@{shown(handle)} is not live and modbot has no room of theirs on record"
        raise Refused(msg)

    async def viewer(self, given: str, note: TextIO) -> tuple[str, str]:
        """(user id, handle) of ``@handle`` or a numeric id, as every console command
        resolves it (:func:`modbot.cli.viewers.resolve_viewer`: the API now); when the
        handle cache stood in for the API, that is said on ``note``."""
        from modbot.cli.viewers import resolve_viewer  # noqa: PLC0415

        try:
            parsed = manual.parse_viewer(given.strip())
        except manual.Refused as exc:
            raise Usage(f"VIEWER: {exc}") from None
        found = await resolve_viewer(parsed, self.store, self.client, self.clock.now())
        if found.note is not None:
            print(f"modbot: note: {found.note}", file=note)
        return found.user_id, found.unique_id


@asynccontextmanager
async def console(settings: Settings, out: TextIO, *, quiet: bool) -> AsyncIterator[Console]:
    """Open what a console command needs: on a demo state directory, the demo's fake
    server again (said on stderr with ``--json``, else on ``out``)."""
    from modbot.actions.executor import Executor  # noqa: PLC0415
    from modbot.audit.store import AuditStore, default_db  # noqa: PLC0415
    from modbot.euler.session import api_session  # noqa: PLC0415

    path: Path = default_db(settings.state_dir)
    clock = SystemClock()
    async with AsyncExitStack() as stack:
        note = sys.stderr if quiet else out
        active = await demo_or(settings, path.parent, stack, note, doing="talking to")
        # the grant first: without credentials nothing is created (no ./var left behind)
        client, _, grant = await stack.enter_async_context(api_session(active, clock))
        open_state_dir(path.parent)
        store = await stack.enter_async_context(AuditStore.open(path))
        executor = Executor(client, store, clock, granted_scopes=grant.scopes)
        yield Console(active, store, client, frozenset(grant.scopes), executor, clock)


def run_console(
    args: argparse.Namespace,
    settings: Settings,
    out: TextIO,
    body: Callable[[Console], Awaitable[int]],
) -> int:
    """Run ``body`` in a console; a Usage (exit 2) or a Refused (exit 1) is said in one
    sentence by the entry point, as every command's errors are."""

    async def main() -> int:
        async with console(settings, out, quiet=bool(getattr(args, "json", False))) as con:
            return await body(con)

    return anyio.run(main, backend="asyncio")


def reason(args: argparse.Namespace) -> str | None:
    """The operator's ``--reason`` as kept (cleaned as for every action by hand)."""
    try:
        return manual.clean_reason(getattr(args, "reason", None))
    except manual.Refused as exc:
        raise Usage(str(exc)) from None


def emit(out: TextIO, record: dict[str, Any]) -> None:
    print(json.dumps(record, ensure_ascii=True), file=out)


def table(out: TextIO, header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    """Columns as wide as their widest cell (every cell already inert)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    for row in (header, *rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=out)


# --- mutes and bans ---------------------------------------------------------------------


def lists_command(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    kind: str = args.list_kind  # "mutes" or "bans"
    action = "mute" if kind == "mutes" else "ban"

    async def body(con: Console) -> int:
        (streamer,) = con.streamers(args)
        con.need(f"webcast:{action}", f"modbot {kind}")
        room = await con.room_of(streamer)
        listed = await (
            con.client.all_mutes(room) if kind == "mutes" else con.client.all_bans(room)
        )
        records = await _records(con.store, action, streamer, room)
        rows = []
        for user in listed.users:
            rec = records.get(user.user_id)
            if args.json:
                emit(out, _user_json(streamer, room, user) | {"modbot": _record_json(rec)})
            else:
                rows.append(_user_row(user, rec))
        if not args.json:
            if rows:
                table(out, ("USER ID", "HANDLE", "NICKNAME", "RULE", "WHEN", "AUDIT"), rows)
            else:
                print(
                    f"Nobody is {'muted' if kind == 'mutes' else 'banned'} in @{shown(streamer)}'s room.",
                    file=out,
                )
        if not listed.complete:
            fail(
                f"modbot: error: the API kept saying there is more after {listed.pages} pages; "
                f"the list above is cut there"
            )
            return EXIT_FAILED
        return EXIT_OK

    return run_console(args, settings, out, body)


async def _records(store: AuditStore, action: str, streamer: str, room: str) -> dict[str, Entry]:
    """The newest done ``action`` of each user in ``room`` that was not undone."""
    from modbot.audit.query import AuditFilter  # noqa: PLC0415

    found: dict[str, Entry] = {}
    rows = await store.query(
        AuditFilter(action=action, streamer=streamer, status="done", limit=None)
    )
    for entry in rows:  # newest first
        if entry.room_id == room and entry.undone_by is None:
            found.setdefault(entry.user_id, entry)
    return found


def _user_json(streamer: str, room: str, user: ListedUser) -> dict[str, Any]:
    return {
        "streamer": streamer,
        "room_id": room,
        "user_id": user.user_id,
        "unique_id": user.unique_id,
        "nickname": user.nickname,
    }


def _record_json(entry: Entry | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {"id": entry.id, "rule": entry.rule, "ts": entry.ts, "action": entry.action}


def _user_row(user: ListedUser, entry: Entry | None) -> tuple[str, ...]:
    names = (user.user_id, "@" + shown(user.unique_id or "", 30), shown(user.nickname or "", 30))
    if entry is None:
        return (*names, "-", "-", "-")
    return (*names, shown(entry.rule, 30), entry.ts[:19], f"#{entry.id}")


# --- moderators ---------------------------------------------------------------------------


def moderators_command(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    if args.op == "list" and args.viewer:
        fail("modbot: moderators list takes no VIEWER")
        return EXIT_USAGE
    if args.op != "list" and not args.viewer:
        fail(f"modbot: moderators {args.op} needs VIEWER (@handle or numeric user id)")
        return EXIT_USAGE

    async def body(con: Console) -> int:
        streamers = con.streamers(args)
        con.need("webcast:moderators", f"modbot moderators {args.op}")
        if args.op == "list":
            rows = []
            for streamer in streamers:
                page = await con.client.list_moderators(await con.anchor_id(streamer))
                for user in page.users:
                    if args.json:
                        emit(out, {"streamer": streamer} | _user_json(streamer, "", user))
                    else:
                        rows.append(("@" + shown(streamer, 30), *_user_row(user, None)[:3]))
            if not args.json:
                if rows:
                    table(out, ("STREAMER", "USER ID", "HANDLE", "NICKNAME"), rows)
                else:
                    print("No moderators.", file=out)
            return EXIT_OK
        note = sys.stderr if args.json else out
        user_id, handle = await con.viewer(args.viewer, note)
        failures = 0
        for streamer in streamers:
            entry = await _moderator_change(con, args, streamer, user_id, handle)
            failures += entry.status != "done"
            _said(out, args.json, entry, streamer, handle or user_id)
        return EXIT_FAILED if failures else EXIT_OK

    return run_console(args, settings, out, body)


async def _moderator_change(
    con: Console, args: argparse.Namespace, streamer: str, user_id: str, handle: str
) -> Entry:
    from modbot.actions.plan import own  # noqa: PLC0415

    action = "moderator_add" if args.op == "add" else "moderator_remove"
    by = who_ran()
    intent = own(
        action,
        ts=con.clock.now(),
        streamer=streamer,
        room_id="",
        rule=MANUAL_RULE,
        user_id=user_id,
        unique_id=handle,
        detail=f"by hand: moderators {args.op}, run by {by}",
        reason=reason(args),
        extra={"anchor_id": await con.anchor_id(streamer), "by": by},
    )
    entry, _ = await con.executor.carry_out(intent)
    return entry


def _said(out: TextIO, as_json: bool, entry: Entry, streamer: str, whom: str) -> None:
    """One line (or object) for one audited change."""
    if as_json:
        emit(out, entry.to_json())
        return
    what = entry.action.replace("_", " ")
    line = f"#{entry.id} {what} {shown(whom, 40)} for @{shown(streamer, 30)}: {entry.status}"
    if entry.status != "done":
        line += f" ({shown(entry.error or '', 200)})"
    print(line, file=out)
