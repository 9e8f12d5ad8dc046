"""``modbot mute|unmute|ban|unban|comments|say``: a moderator's actions by hand (I/O).

Each goes the way a rule's action goes (:mod:`modbot.actions.manual` makes the intent,
rule ``manual``, with the operator's ``--reason`` and the OS user who ran it): the gate
(scopes, de-duplication, comment state, the speech check of the loaded rules for
``say``), the intent written to the audit database, the call, the outcome with its
expiry timer. The room is the streamer's current live room; ``unmute`` and ``unban`` of
an offline streamer use the room modbot last muted or banned the viewer in.

The commands and ``modbot run`` share the audit database: the gate starts from what
the database says was done in the room lately (a mute the daemon just made is not made
again), and a timer written here (the rest of a long mute, comments back on) is fired
by the running daemon, which reads its timers from the database (or by the next
``modbot run``). On a ``modbot demo`` state directory they act against the demo's fake
server, as ``modbot undo`` does.

``ban --everywhere`` (and ``unban --everywhere``) acts in every configured streamer's
room, each an audit row of one incident (``modbot undo --incident N``); a streamer who
is not live gets a skipped row that says so. A ban while the streamer is offline is
remembered all the same: a done row with nothing called (params ``offline``) that the
bans table keeps, so the daemon bans the viewer at the next live; ``unban`` while
offline, with no room to call in, ends that memory the same way.
"""

from __future__ import annotations

import argparse
import json
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import anyio

from modbot.actions import manual
from modbot.actions.manual import Order, Refused, pick_streamers
from modbot.actions.table import describe, format_duration, kind_of, severity
from modbot.cli.output import EXIT_FAILED, EXIT_OK, EXIT_USAGE, fail, open_state_dir
from modbot.cli.viewers import Resolved, resolve_viewer, who_ran
from modbot.clock import SystemClock
from modbot.config import Settings
from modbot.errors import ModbotError, NotFound
from modbot.events import format_ts
from modbot.inert import shown
from modbot.rules.schema import SchemaProblem, parse_duration

if TYPE_CHECKING:
    from modbot.actions.executor import Executor
    from modbot.actions.gate import Speech
    from modbot.actions.plan import Intent
    from modbot.audit.records import Entry
    from modbot.audit.store import AuditStore
    from modbot.euler.client import EulerClient

_TIMER_OF = {"mute": "unmute", "unmute": "unmute", "comments": "comments_on"}
"""The expiry timers a done action by hand ends: a later mute or unmute of the viewer
ends the unmute timer of an earlier mute; a comments toggle ends a comments-on timer."""


def add_console_actions(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """The commands of actions by hand: mute, unmute, ban, unban, comments, say."""
    mute = _command(commands, common, "mute", "mute a viewer for a while (any duration)")
    _viewer(mute)
    mute.add_argument(
        "duration",
        metavar="DURATION",
        help="30s, 10m, 2h, 1d (up to 366d) or forever; past the API's 5 minutes the "
        "mute is permanent and modbot's timer lifts it",
    )
    _where(mute)
    unmute = _command(commands, common, "unmute", "lift a viewer's mute")
    _viewer(unmute)
    _where(unmute)
    ban = _command(commands, common, "ban", "ban a viewer from the room (or from every room)")
    _viewer(ban)
    _where(ban, everywhere=True)
    unban = _command(commands, common, "unban", "let a banned viewer back in")
    _viewer(unban)
    _where(unban, everywhere=True)
    comments = _command(commands, common, "comments", "turn the room's comments off or on")
    comments.add_argument("state", choices=["off", "on"], help="off or on")
    comments.add_argument(
        "--for",
        dest="for_",
        metavar="DURATION",
        help="with off: turn them back on after this long (30s, 10m, 2h)",
    )
    _where(comments)
    say = _command(commands, common, "say", "say a chat message as the streamer")
    say.add_argument(
        "text",
        metavar="TEXT",
        help="the message (at most 150 characters); it passes the check rule replies "
        "pass: no link, nothing an enforcing rule acts on",
    )
    _where(say)


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    name: str,
    summary: str,
) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        name,
        parents=[common],
        help=f"{summary}, by hand (audited as rule manual)",
        description=(
            f"{summary[0].upper()}{summary[1:]}, by hand: the same path as a rule's "
            "action (an audit intent first, as rule `manual` with your --reason and your "
            "user name, then the call, then the outcome); undo it with `modbot undo ID`. "
            "Works while `modbot run` runs (both use the audit DB), and on a `modbot demo` "
            "state directory (against the demo's fake server)."
        ),
    )
    parser.set_defaults(handler=console_command, console=name)
    return parser


def _viewer(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("viewer", metavar="VIEWER", help="@handle or numeric user id")


def _where(parser: argparse.ArgumentParser, *, everywhere: bool = False) -> None:
    if everywhere:
        group = parser.add_mutually_exclusive_group()
        group.add_argument(
            "--streamer", help="whose room (may be left out with one streamer configured)"
        )
        group.add_argument(
            "--everywhere",
            action="store_true",
            help="in every configured streamer's live room (one incident)",
        )
    else:
        parser.add_argument(
            "--streamer", help="whose room (may be left out with one streamer configured)"
        )
    parser.add_argument("--reason", metavar="TEXT", help="why, kept in the audit log")
    parser.add_argument(
        "--json", action="store_true", help="one JSON object per audit entry instead of text"
    )


# --- the command ---------------------------------------------------------------------


def console_command(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    try:
        order = _order(args)
    except Refused as exc:
        fail(f"modbot: {exc}")
        return EXIT_USAGE
    return anyio.run(_carry_out, order, args, settings, out, backend="asyncio")


def _order(args: argparse.Namespace) -> Order:
    """What was asked, checked (Refused: exit 2)."""
    name: str = args.console
    common: dict[str, Any] = {"by": who_ran(), "reason": manual.clean_reason(args.reason)}
    viewer = manual.parse_viewer(args.viewer) if hasattr(args, "viewer") else None
    everywhere = bool(getattr(args, "everywhere", False))
    if name == "mute":
        try:
            seconds = parse_duration(args.duration, allow_forever=True)
        except SchemaProblem as exc:
            raise Refused(f"DURATION: {exc}") from None
        return Order("mute", viewer=viewer, duration_s=seconds, **common)
    if name in ("unmute", "ban", "unban"):
        return Order(name, viewer=viewer, everywhere=everywhere, **common)
    if name == "comments":
        enabled = args.state == "on"
        for_s = None
        if args.for_ is not None:
            if enabled:
                raise Refused("--for goes with `comments off` (back on after that long)")
            try:
                for_s = parse_duration(args.for_)
            except SchemaProblem as exc:
                raise Refused(f"--for: {exc}") from None
        return Order("comments", enabled=enabled, for_s=for_s, **common)
    return Order("reply", text=manual.clean_message(args.text), **common)


async def _carry_out(
    order: Order, args: argparse.Namespace, settings: Settings, out: TextIO
) -> int:
    from modbot.actions.executor import Executor  # noqa: PLC0415
    from modbot.audit.incidents import new_incident  # noqa: PLC0415
    from modbot.audit.store import AuditStore, default_db  # noqa: PLC0415
    from modbot.demo import is_demo_state, revived  # noqa: PLC0415
    from modbot.euler.session import api_session  # noqa: PLC0415

    clock = SystemClock()
    state_dir = settings.state_dir
    demo = is_demo_state(state_dir)
    if not demo:
        open_state_dir(state_dir)
    async with AsyncExitStack() as stack:
        active = settings
        if demo:
            print(
                "A `modbot demo` state directory: acting against the demo's fake Euler "
                "server (nothing reaches TikTok).",
                file=out if not args.json else _stderr(),
            )
            active = await stack.enter_async_context(revived(state_dir))
        try:
            streamers = pick_streamers(args.streamer, active.streamers, everywhere=order.everywhere)
        except Refused as exc:
            fail(f"modbot: {exc}")
            return EXIT_USAGE
        speech = _speech(settings, demo=demo) if order.action == "reply" else None
        # The key and the grant first: without them nothing is made in the state directory.
        client, _, grant = await stack.enter_async_context(api_session(active, clock))
        store = await stack.enter_async_context(AuditStore.open(default_db(state_dir)))
        executor = Executor(client, store, clock, granted_scopes=grant.scopes, speech=speech)
        target = await _target(order, store, client, clock.now(), _stderr() if args.json else out)
        incident = None
        if len(streamers) > 1:
            incident = await new_incident(
                store,
                clock.now(),
                kind=order.action,
                streamer=manual.EVERYWHERE,
                detail=f"{order.action} {order.viewer} everywhere by hand",
                by=order.by,
            )
        problems = offline = done = 0
        if order.action in ("mute", "ban") and target.user_id:
            for streamer in streamers:  # before any call: none of them, then
                await _not_the_streamer(target, streamer, store, client, clock.now())
        rooms = [await _room(client, store, s, order, target) for s in streamers]
        remembered = "a live room's ban everywhere" if any(rooms) else None
        for streamer, room in zip(streamers, rooms, strict=True):
            intent = manual.intent(
                order,
                ts=clock.now(),
                streamer=streamer,
                room_id=room or "",
                user_id=target.user_id,
                unique_id=target.unique_id,
                incident=incident,
            )
            if room is None:
                entry = await _offline(executor, intent, remembered)
                if entry.status == "done" and order.everywhere:
                    remembered = f"#{entry.id}"
            else:
                await seed_gate(executor, store, room, clock.now())
                intent = executor.gate(intent)
                entry, _ = await executor.carry_out(intent)
            if entry.status == "done":
                await _end_timers(store, entry)
            ok = entry.status == "done" or (
                entry.status == "skipped" and manual.already(intent.suppressed)
            )
            done += ok
            offline += room is None
            problems += not ok and room is not None
            print(
                json.dumps(entry.to_json(), ensure_ascii=True) if args.json else said(entry),
                file=out,
            )
        if incident is not None and not args.json:
            print(
                f"Incident #{incident}: undo it whole with `modbot undo --incident {incident}`.",
                file=out,
            )
    # Everywhere, a streamer who is not live is no failure when it was done elsewhere.
    return EXIT_FAILED if problems or (offline and not done) else EXIT_OK


async def _target(
    order: Order, store: AuditStore, client: EulerClient, now: datetime, note: TextIO
) -> Resolved:
    """Whom the order acts on (:func:`modbot.cli.viewers.resolve_viewer`); when the
    handle cache stood in for the API, that is said."""
    if order.viewer is None:
        return Resolved("")
    target = await resolve_viewer(order.viewer, store, client, now)
    if target.note is not None:
        print(f"modbot: note: {target.note}", file=note)
    return target


def _stderr() -> TextIO:
    import sys  # noqa: PLC0415

    return sys.stderr


def _speech(settings: Settings, *, demo: bool) -> Speech:
    """The check rule replies pass, built from the loaded rules: a message the rules
    cannot be loaded to check is not said."""
    from modbot.demo import example_rules  # noqa: PLC0415
    from modbot.rules.compile import load_ruleset  # noqa: PLC0415
    from modbot.rules.speech import SpeechCheck  # noqa: PLC0415

    rules: Path = settings.rules_dir
    if demo and not rules.exists():
        rules = example_rules() or rules
    ruleset, problems = load_ruleset([rules])
    if ruleset is None:
        first = next((p for p in problems if p.severity == "error"), None)
        msg = (
            f"the rules in {rules} do not load ({first or 'no rules'}); `say` checks its "
            "message against them as rule replies are checked: see `modbot rules check`"
        )
        raise ModbotError(msg)
    return SpeechCheck(ruleset).problem


# --- who and where ---------------------------------------------------------------------


async def _not_the_streamer(
    target: Resolved, streamer: str, store: AuditStore, client: EulerClient, now: datetime
) -> None:
    from modbot.audit.handles import Handles  # noqa: PLC0415

    own = await Handles(store).user_id(streamer)
    if own is None:
        try:
            own = await client.user_id(streamer)
        except NotFound:
            return
        await Handles(store).save(streamer, own, now)
    if own == target.user_id:
        msg = f"{target.user_id} is @{streamer}'s own account: modbot does not mute or ban it"
        raise ModbotError(msg)


async def _room(
    client: EulerClient, store: AuditStore, streamer: str, order: Order, target: Resolved
) -> str | None:
    """The streamer's live room; for an unmute or an unban while they are offline, the
    room modbot last muted or banned the viewer in (None: nowhere to act)."""
    status = await client.room_id(streamer)
    if status.is_live and status.room_id:
        return status.room_id
    lifted = {"unmute": "mute", "unban": "ban"}.get(order.action)
    if lifted is None or not target.user_id:
        return None
    rows = await store.execute(
        "SELECT room_id FROM actions WHERE streamer = ? COLLATE NOCASE AND user_id = ?"
        " AND action = ? AND status = 'done' AND room_id != '' ORDER BY id DESC LIMIT 1",
        (streamer, target.user_id, lifted),
    )
    return str(rows[0][0]) if rows else None


OFFLINE = {
    "ban": "remembered for the next live; nothing to call while offline",
    "unban": "the remembered ban forgotten (not carried into the next live); nothing to "
    "call while offline",
}
"""The detail of a ban or unban by hand while the streamer is offline (params offline)."""


async def _offline(executor: Executor, intent: Intent, remembered: str | None) -> Entry:
    """An action in the room of a streamer who is not live (there is no room to call in).

    A ban is remembered (cli.md: "the ban is remembered"): a done row with nothing
    called (params ``offline``), which the bans table's trigger keeps, so the daemon
    bans the viewer at their next live; an unban of a remembered viewer ends that memory
    the same way. Anything else is skipped, saying why, and so is a ban everywhere that
    ``remembered`` (a live room's ban everywhere, an earlier row) holds already.
    """
    from modbot.actions import recovery  # noqa: PLC0415
    from modbot.audit import bans  # noqa: PLC0415

    store = executor.store
    why = f"@{intent.streamer} is not live: there is no room to act in"
    detail = OFFLINE.get(intent.action)
    if detail is not None and intent.action == "ban" and remembered is not None:
        why, detail = f"{why}; the ban is remembered for their next live by {remembered}", None
    if detail is not None and intent.action == "unban":
        held = [b for b in await bans.of_user(store, intent.user_id) if b.remembered]
        if not any(b.everywhere or b.streamer.lower() == intent.streamer.lower() for b in held):
            detail = None
    if detail is None or not intent.user_id:
        return (await executor.carry_out(intent.skipped(why)))[0]
    gated = executor.gate(intent)
    if gated.mode == "observe":  # the grant lacks the scope: not done, and said so
        return (await executor.carry_out(gated))[0]
    row = intent.entry()
    params = {**row.params, "offline": True, **recovery.process_mark()}
    row = replace(row, params=params, detail=f"{row.detail}; {detail}")
    now = executor.clock.now()
    (entry_id,) = await store.add([row], now)
    if entry_id is None:
        msg = "the audit log already has this entry"
        raise ModbotError(msg)
    await store.finish([(entry_id, "done", None)], now)  # the bans table's triggers
    entry = await store.get(entry_id)
    assert entry is not None
    return entry


# --- the gate's memory, from the audit log -----------------------------------------------


async def seed_gate(executor: Executor, store: AuditStore, room: str, now: datetime) -> None:
    """What was done in ``room`` lately, from the audit database (the daemon's rows too):
    a repeat within the de-duplication window is skipped, comments are not turned off
    while off, and a chat message keeps the room's pace, as for a rule's action."""
    state = executor.gates
    window = executor.dedup_window
    reply_interval = executor.policy.reply_interval
    since = format_ts(now - timedelta(seconds=max(window, reply_interval)))
    rows = await store.execute(
        "SELECT ts, user_id, action, params FROM actions WHERE room_id = ? AND ts >= ?"
        " AND mode = 'enforce' AND status IN ('pending', 'done') ORDER BY ts, id",
        (room, since),
    )
    for ts, user_id, action, params in rows:
        kind = kind_of(str(action))
        when = _epoch(str(ts))
        if kind is None or when is None:
            continue
        if kind.chat:
            state.last_chat[room] = max(state.last_chat.get(room, 0.0), when)
        elif kind.takes != "toggle" and kind.call is not None:
            duration = _params(params).get("duration_s")
            seconds = float(duration) if isinstance(duration, int | float) else None
            state.recent[(room, str(user_id), str(action))] = (
                when,
                severity(str(action), seconds),
            )
    last = await store.execute(
        "SELECT params FROM actions WHERE room_id = ? AND action = 'comments'"
        " AND status = 'done' ORDER BY id DESC LIMIT 1",
        (room,),
    )
    if last:
        state.comments_off[room] = _params(last[0][0]).get("enabled") is False


def _epoch(ts: str) -> float | None:
    try:
        return datetime.fromisoformat(ts).timestamp()
    except ValueError:
        return None


def _params(text: object) -> dict[str, Any]:
    try:
        found = json.loads(str(text))
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


async def _end_timers(store: AuditStore, entry: Entry) -> None:
    """A done action by hand ends the expiry timers it overrides: an earlier mute's
    unmute timer (a new mute sets its own; an unmute lifts it now), or a comments-on
    timer (comments toggled by hand)."""
    kind = _TIMER_OF.get(entry.action)
    if kind is None:
        return
    for timer in await store.pending_timers():
        if (
            timer.kind == kind
            and timer.action_id != entry.id
            and timer.streamer.lower() == entry.streamer.lower()
            and (kind != "unmute" or timer.user_id == entry.user_id)
        ):
            await store.end_timer(timer.id, "cancelled", f"overridden by hand by #{entry.id}")


# --- words -----------------------------------------------------------------------------


def said(entry: Entry) -> str:
    """One line for people: what was done, to whom, where, and how it ended."""
    whom = f"@{entry.unique_id}" if entry.unique_id else entry.user_id
    what = describe(entry.action, entry.params, text_limit=60)
    if entry.action == "reply":
        what = f"say {shown(str(entry.params.get('text', '')), 60)!r}"
    head = f"#{entry.id} {shown(what, 80)}" + (f" {shown(whom, 30)}" if whom else "")
    head += f" in @{shown(entry.streamer, 30)}'s room"
    if entry.status == "done" and entry.params.get("offline") is True:
        said = f"{head}: done: {OFFLINE.get(entry.action, 'nothing to call while offline')}"
        if entry.action == "ban":
            said += f" (lift it with `modbot unban {shown(whom, 30)}`)"
        return said
    if entry.status == "done":
        after = entry.params.get("unmute_after_s") or entry.params.get("for_s")
        tail = "done"
        if after:
            due = datetime.fromisoformat(entry.ts) + timedelta(seconds=float(after))
            back = "unmuted" if entry.action == "mute" else "comments back on"
            tail += (
                f"; {back} at {due.strftime('%Y-%m-%d %H:%M:%S')} UTC by modbot's timer "
                f"({format_duration(float(after))}; fired by `modbot run`)"
            )
        return f"{head}: {tail}"
    if entry.status == "failed":
        return f"{head}: failed: {shown(entry.error or 'unknown', 300)}"
    why = entry.detail.split("; ", 1)[-1].removeprefix("not done: ")
    return f"{head}: {shown(entry.status, 12)}: {shown(why, 300)}"
