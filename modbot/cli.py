"""The ``modbot`` command line: ``main(argv) -> int``, callable in-process by tests.

Exit codes: 0 success, 1 the thing checked is bad or the action failed, 2 usage or
configuration error. Expected failures are one sentence on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TextIO, cast

import anyio

from modbot.__about__ import __version__, build
from modbot.actions.table import kind_of, undoable
from modbot.clock import SystemClock
from modbot.config import (
    DEFAULT_API_BASE_URL,
    DEFAULT_AUTHORIZE_URL,
    Settings,
    load_settings,
    url_host,
)
from modbot.errors import ConfigError, ModbotError, OAuthError
from modbot.euler import scopes as scope_names
from modbot.euler.oauth import TokenStore, login
from modbot.euler.session import api_session, client_for, oauth_config, websocket_factory
from modbot.events import Event, EventError, User, format_ts, parse_event
from modbot.files import check_state_dir
from modbot.inert import escaped, shown
from modbot.log import configure, scrub
from modbot.rules.compile import CompiledRuleset, load_ruleset
from modbot.rules.diagnostics import Diagnostic, did_you_mean
from modbot.rules.engine import Decision, Engine
from modbot.rules.schema import RULE_EVENTS

if TYPE_CHECKING:
    from modbot.actions.undo import UndoResult
    from modbot.audit.store import Entry

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace, Settings, TextIO], int]


def _global_options(*, suppress: bool) -> argparse.ArgumentParser:
    """Options every command takes, before or after the command name."""
    default: Any = argparse.SUPPRESS if suppress else None
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("global options")
    group.add_argument(
        "--state-dir",
        type=Path,
        default=default,
        metavar="DIR",
        help="where the audit DB (audit.db), tokens and timers live "
        "(default: $STATE_DIRECTORY under systemd, else ./var)",
    )
    group.add_argument(
        "--config",
        type=Path,
        default=default,
        metavar="FILE",
        help="a TOML settings file (also $MODBOT_CONFIG)",
    )
    group.add_argument(
        "--env-file",
        type=Path,
        default=default,
        metavar="FILE",
        help="read MODBOT_* settings from this dotenv file too (no .env is read unless "
        "named here: one in the working directory could send the secrets elsewhere)",
    )
    group.add_argument(
        "--log-format",
        choices=["auto", "json", "console"],
        default=default,
        help="log lines as JSON or for people (default: JSON unless on a terminal)",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS if suppress else 0,
        help="more log output (debug)",
    )
    group.add_argument(
        "-q",
        "--quiet",
        action="count",
        default=argparse.SUPPRESS if suppress else 0,
        help="less log output (warnings and errors only)",
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree."""
    common = _global_options(suppress=True)
    parser = argparse.ArgumentParser(
        prog="modbot",
        description=(
            "modbot moderates TikTok LIVE chats through the Euler Stream API: it watches "
            "streams, evaluates your YAML rules on every event, mutes, bans, pauses "
            "comments or replies, and records every action in an audit log you can undo."
        ),
        parents=[_global_options(suppress=False)],
        epilog="Run `modbot COMMAND --help` for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"modbot {__version__} ({build()})")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="see modbot moderate a scripted live chat (no credentials needed)",
        description=(
            "Run the real daemon with the example rules against the bundled fake Euler "
            "server (generated credentials, a free loopback port) and a scripted stream, "
            "showing each decision as it happens and a summary at the end. The audit log "
            "stays in the state directory (default: a new temporary directory), so "
            "`modbot audit --state-dir DIR` and `modbot undo --state-dir DIR ID` work "
            "afterwards (undo brings the demo's fake server back; nothing reaches TikTok)."
        ),
    )
    demo.add_argument(
        "--duration",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="stop after this long (default: 60)",
    )
    demo.add_argument(
        "--rules",
        type=Path,
        dest="rule_dir",
        metavar="DIR",
        help="rule directory (default: the example rules that come with modbot)",
    )
    demo.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="scenario time factor: 2 plays twice as fast (default: 1)",
    )
    demo.add_argument(
        "--record",
        type=Path,
        metavar="FILE",
        help="also write the stream's events to FILE in the replay format, for "
        "`modbot replay FILE --rules rules/`",
    )
    demo.set_defaults(handler=_demo)

    rules = commands.add_parser(
        "rules",
        parents=[common],
        help="check rule files, or try them on one comment",
        description="Work with rule files (see docs/rules.md for the language).",
    )
    rules_commands = rules.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    check = rules_commands.add_parser(
        "check",
        parents=[common],
        help="validate rule files; exit 0 when valid, 1 otherwise",
        description=(
            "Validate rule files and print each problem as FILE:LINE:COL: error: MESSAGE "
            "(or warning:). With a stored OAuth grant, actions it does not allow are warnings."
        ),
    )
    _rules_option(check, positional=True)
    check.add_argument(
        "--json",
        action="store_true",
        help='one JSON object per problem: {"file", "line", "col", "severity", "message"}',
    )
    check.set_defaults(handler=_rules_check)
    test = rules_commands.add_parser(
        "test",
        parents=[common],
        help="evaluate one comment and show which rules fire and what would be done",
        description="Evaluate one comment against the rules, with the reasons, and call nothing.",
    )
    _rules_option(test, positional=True)
    test.add_argument(
        "--text", help="the comment (or question) to evaluate; needed for those two kinds"
    )
    test.add_argument(
        "--user-json",
        metavar="JSON",
        help='the viewer as a JSON object, e.g. \'{"unique_id": "x", "is_follower": true}\' '
        "(default: a new viewer who follows nobody); docs/replay.md lists the keys",
    )
    test.add_argument(
        "--kind",
        default="comment",
        choices=RULE_EVENTS,
        help="the event kind, any a rule can be `on` (default: comment)",
    )
    test.add_argument(
        "--event-json",
        metavar="JSON",
        help='more of the event record, e.g. \'{"gift": {"name": "Rose", "diamonds": 1, '
        '"count": 5}}\' or \'{"count": 20}\' for likes (docs/replay.md; default: a '
        "1-diamond Rose for a gift, 1 like)",
    )
    test.add_argument("--json", action="store_true", help="one JSON object per decision")
    test.set_defaults(handler=_rules_test)

    replay = commands.add_parser(
        "replay",
        parents=[common],
        help="run recorded events through the rules offline (no API call)",
        description=(
            "Run a JSONL file of events (the format `modbot record` writes) through the rules, "
            "with the events' own timestamps as the clock. Prints each decision that would be "
            "carried out or observed, and a per-rule summary on stderr. Bad lines are "
            "reported with their line number and skipped."
        ),
    )
    replay.add_argument("events", type=Path, metavar="EVENTS.jsonl", help="the recorded events")
    _rules_option(replay)
    replay.add_argument("--json", action="store_true", help="one JSON object per decision")
    replay.set_defaults(handler=_replay)

    _add_operations(commands, common)

    auth = commands.add_parser(
        "auth",
        parents=[common],
        help="log in to Euler for the streamer (OAuth), show or forget the grant",
        description="Manage the streamer's OAuth grant that lets modbot act in their room.",
    )
    auth_commands = auth.add_subparsers(dest="auth_command", metavar="ACTION", required=True)
    login_parser = auth_commands.add_parser(
        "login",
        parents=[common],
        help="authorize modbot for the streamer's account",
        description=(
            "Print Euler's authorize URL, wait for the redirect on a loopback port, exchange "
            "the code and store the tokens (mode 0600) in the state directory. Needs the "
            "client_id and client_secret settings. On a server without a browser, --paste: "
            "the streamer approves on any device and you paste the address their browser "
            "was sent to (or forward the port: ssh -L PORT:127.0.0.1:PORT server)."
        ),
    )
    login_parser.add_argument(
        "--scopes",
        action="append",
        metavar="SCOPES",
        help="scopes to request, comma or space separated (repeatable); default: what the "
        "actions of the rules need, plus webcast:bulk_live_check",
    )
    _rules_option(
        login_parser,
        help="the rules whose actions decide the scopes (default: the rules_dir setting)",
    )
    login_parser.add_argument(
        "--port",
        type=port_number,
        default=0,
        help="loopback port for the redirect (default: any free port; "
        "use a fixed one if your OAuth client only allows one redirect URI)",
    )
    login_parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=600.0,
        metavar="SECONDS",
        help="how long to wait for the streamer to authorize (default: 600)",
    )
    login_parser.add_argument(
        "--paste",
        action="store_true",
        help="nothing listens: approve on any device, then paste the address the browser "
        "was sent to (it need not load); the redirect URI's port is --port, default 8765",
    )
    login_parser.set_defaults(handler=_auth_login)

    status = auth_commands.add_parser(
        "status",
        parents=[common],
        help="show token expiry, granted scopes and the rule actions they allow",
        description="Show the stored grant. Never prints a token.",
    )
    status.add_argument("--json", action="store_true", help="one JSON object instead of text")
    status.set_defaults(handler=_auth_status)

    logout = auth_commands.add_parser(
        "logout",
        parents=[common],
        help="revoke the stored tokens at Euler and delete them",
        description="Revoke the refresh and access tokens at Euler, then delete the token file.",
    )
    logout.set_defaults(handler=_auth_logout)
    return parser


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free one) to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port: use 1 to 65535, or 0 for any")
    return value


def positive_seconds(text: str) -> float:
    """An argparse type: a finite number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds above 0")
    return value


def positive_count(text: str) -> int:
    """An argparse type: a whole number above 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: give a whole number above 0")
    return value


def _rules_option(
    parser: argparse.ArgumentParser,
    *,
    positional: bool = False,
    help: str = "rule files or directories (default: the rules_dir setting, ./rules)",  # noqa: A002
) -> None:
    """The rule paths a command reads: ``PATH...`` or ``--rules PATH...``."""
    if positional:
        parser.add_argument("paths", nargs="*", type=Path, metavar="PATH", help=help)
    else:
        parser.add_argument(
            "--rules", nargs="+", type=Path, metavar="PATH", dest="rule_paths", help=help
        )


def _add_operations(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """The commands of the running service: run, audit, undo, record."""
    run = commands.add_parser(
        "run",
        parents=[common],
        help="the moderation daemon: watch the streamers, apply the rules, act and audit",
        description=(
            "Watch the configured streamers (the streamers setting), connect when one goes "
            "live, evaluate the rules on every event, act through the Euler API and record "
            "every decision in the audit log. SIGHUP or a changed rule file reloads the "
            "rules (a broken file keeps the old ones); SIGTERM stops cleanly. Needs the "
            "api_key, client_id and client_secret settings and a grant from `modbot auth login`."
        ),
    )
    _rules_option(run)
    run.add_argument(
        "--dry-run",
        action="store_true",
        default=None,
        help="decide and audit everything, call nothing (also the dry_run setting)",
    )
    run.add_argument(
        "--streamers",
        metavar="HANDLES",
        help="comma-separated handles to watch (default: the streamers setting)",
    )
    run.set_defaults(handler=_run)

    audit = commands.add_parser(
        "audit",
        parents=[common],
        help="query the audit log (also installed as modbot-audit)",
        description=(
            "Show audit entries, newest first. Filters narrow the result; --since and "
            "--until take a duration ago (10m, 2h, 1d) or an ISO 8601 time."
        ),
    )
    _audit_filters(audit)
    audit.add_argument(
        "--limit",
        type=positive_count,
        default=50,
        metavar="N",
        help="at most N entries (default: 50)",
    )
    audit.add_argument(
        "--format",
        choices=["table", "json", "csv"],
        default="table",
        help="table for people (default), json (one object per line) or csv for scripts",
    )
    audit.add_argument(
        "--json",
        dest="format",
        action="store_const",
        const="json",
        help="the same as --format json",
    )
    audit.set_defaults(handler=_audit)

    undo = commands.add_parser(
        "undo",
        parents=[common],
        help="reverse actions: unmute, unban, comments back on",
        description=(
            "Reverse done actions by audit id, or every done action of a rule since a time "
            "(--rule R --since 10m). Each reversal is a new audit entry linked to the "
            "original; an action is undone at most once; a chat message cannot be undone. "
            "Works while the daemon runs."
        ),
    )
    undo.add_argument("ids", nargs="*", type=int, metavar="ID", help="audit entry ids")
    undo.add_argument("--rule", help="undo the done actions of this rule (needs --since)")
    undo.add_argument("--since", help="with --rule: since this long ago (10m) or ISO time")
    undo.add_argument("--user", help="with --rule: only this viewer (@handle or user id)")
    undo.add_argument("--reason", metavar="TEXT", help="why, kept in the audit log")
    undo.add_argument("--db", type=Path, metavar="FILE", help="the audit database")
    undo.add_argument(
        "--json", action="store_true", help="one JSON object per audit id instead of text"
    )
    undo.set_defaults(handler=_undo)

    record = commands.add_parser(
        "record",
        parents=[common],
        help="record a live stream's events to a JSONL file for `modbot replay`",
        description=(
            "Wait until UNIQUE_ID is live, then write each event, in the replay format, to "
            "FILE until the stream ends (or --duration passes). Nothing is moderated."
        ),
    )
    record.add_argument("unique_id", metavar="UNIQUE_ID", help="the streamer's handle")
    record.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        metavar="FILE.jsonl",
        help="the file to write the events to (replaced if it exists)",
    )
    record.add_argument(
        "--duration",
        type=positive_seconds,
        metavar="SECONDS",
        help="stop after this long (default: at the end of the stream)",
    )
    record.add_argument(
        "--json", action="store_true", help="the result as one JSON object instead of text"
    )
    record.set_defaults(handler=_record)


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None) -> int:
    """Run one command; returns the exit code."""
    out = stdout or sys.stdout
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    level = "info"
    if getattr(args, "verbose", 0):
        level = "debug"
    elif getattr(args, "quiet", 0):
        level = "warning"
    try:
        settings = load_settings(
            getattr(args, "config", None),
            env_file=getattr(args, "env_file", None),
            state_dir=getattr(args, "state_dir", None),
            log_format=getattr(args, "log_format", None),
        )
    except ConfigError as exc:
        _fail(f"modbot: configuration error: {exc}")
        return EXIT_USAGE
    configure(settings.log_format, level=level if level != "info" else settings.log_level)
    handler: Handler = args.handler
    try:
        return _reported(handler, args, settings, out)
    except KeyboardInterrupt:
        _fail("modbot: interrupted")
        return 130


def _reported(handler: Handler, args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """Run a command; an expected failure (a modbot error, or the system refusing a file
    or a port), alone or as the one error that ended a task group, is one sentence."""
    try:
        try:
            return handler(args, settings, out)
        except BaseExceptionGroup as group:
            error = lone_error(group)
            if error is None:
                raise
            raise error from None
    except ConfigError as exc:
        _fail(f"modbot: configuration error: {exc}")
        return EXIT_USAGE
    except ModbotError as exc:
        _fail(f"modbot: error: {exc}")
        return EXIT_FAILED
    except OSError as exc:
        _fail(f"modbot: error: {os_error(exc)}")
        return EXIT_FAILED


def os_error(exc: OSError) -> str:
    """An OSError as a sentence: what the system said, about which file or port."""
    import errno  # noqa: PLC0415

    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno == errno.EADDRINUSE:
        return f"{reason}: another program listens on that port; choose another with --port"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{reason}: that address is not on this machine"
    if exc.filename is not None:
        return f"{exc.filename}: {reason}"
    return reason


def audit_main(argv: Sequence[str] | None = None) -> int:
    """``modbot-audit``: the same as ``modbot audit``."""
    args = list(sys.argv[1:] if argv is None else argv)
    return main(["audit", *args])


def _fail(message: str) -> None:
    """One line on stderr: no secret, and nothing a terminal would act on (an error
    message can carry an API's or a viewer's text)."""
    sys.stderr.write(escaped(scrub(message)) + "\n")


def _open_state_dir(directory: Path) -> None:
    """Refuse a state directory another user owns or can write (ConfigError, exit 2);
    say so on stderr when others can list it."""
    warning = check_state_dir(directory)
    if warning:
        _fail(f"modbot: warning: {warning}")


def _api_host(settings: Settings) -> tuple[str, bool]:
    """The API host the secrets go to, and whether it is Euler's own."""
    host = url_host(settings.api_base_url)
    return shown(host, 100), host == url_host(DEFAULT_API_BASE_URL)


def _host_note(settings: Settings) -> str:
    host, default = _api_host(settings)
    if default:
        return f"{host} (Euler's API)"
    return (
        f"{host}, which is NOT Euler's API host {url_host(DEFAULT_API_BASE_URL)}: the "
        "api_base_url setting points there (MODBOT_API_BASE_URL, --env-file or --config)"
    )


def _say_destination(settings: Settings, out: TextIO) -> None:
    """Before anything is sent: where the API key, client secret and tokens are going."""
    print(f"Sending credentials to {_host_note(settings)}.", file=out, flush=True)


# --- rules -------------------------------------------------------------------------------


def _granted(settings: Settings) -> frozenset[str] | None:
    """The stored grant's scopes, if there is a readable grant (for scope warnings)."""
    try:
        check_state_dir(settings.state_dir)
        tokens = TokenStore(settings.state_dir).load()
    except ConfigError:
        return None
    return tokens.scopes if tokens else None


def _load_rules(
    paths: Sequence[Path], *, out: TextIO | None, granted: frozenset[str] | None = None
) -> CompiledRuleset | None:
    """Compile the rules; print every diagnostic to stderr (and ``out`` when given)."""
    ruleset, diagnostics = load_ruleset(list(paths), granted_scopes=granted)
    for diagnostic in diagnostics:
        print(scrub(str(diagnostic)), file=out or sys.stderr)
    return ruleset


def _rules_check(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    paths = args.paths or [settings.rules_dir]
    ruleset, diagnostics = load_ruleset(list(paths), granted_scopes=_granted(settings))
    where = ", ".join(str(p) for p in paths)
    if ruleset is not None and not ruleset.files:
        # A folder with no rule file checks nothing: not "OK" (a wrong path, a .yml typo?).
        diagnostics = [
            *diagnostics,
            Diagnostic(
                where,
                1,
                1,
                "warning",
                "no rule files (*.yaml or *.yml) here: nothing was checked",
            ),
        ]
    for diagnostic in diagnostics:
        if args.json:
            print(json.dumps(dataclasses.asdict(diagnostic), ensure_ascii=True), file=out)
        else:
            print(scrub(str(diagnostic)), file=out)
    if ruleset is None:
        sys.stderr.write("modbot: the rules have errors; nothing would be loaded\n")
        return EXIT_FAILED
    if not ruleset.files:
        return EXIT_FAILED
    if not args.json:
        rules, files = len(ruleset.rules), len(ruleset.files)
        print(
            f"{where}: {rules} rule{'s' * (rules != 1)} in {files} file{'s' * (files != 1)}, OK",
            file=out,
        )
    return EXIT_OK


def _rules_test(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    if args.kind in ("comment", "question") and args.text is None:
        _fail(f"modbot: a {args.kind} needs its text: give --text")
        return EXIT_USAGE
    user_data: dict[str, Any] = {"user_id": "6800000000000000001", "unique_id": "test_viewer"}
    record: dict[str, Any] = {}
    try:
        user_data.update(_json_object(args.user_json, "--user-json"))
        record = _json_object(args.event_json, "--event-json")
        user_data.update(_json_object(json.dumps(record.pop("user", {})), "--event-json user"))
    except ValueError as exc:
        _fail(f"modbot: {exc}")
        return EXIT_USAGE
    now = SystemClock().now()
    defaults: dict[str, dict[str, Any]] = {
        "gift": {"gift": {"name": "Rose", "diamonds": 1}},
        "like": {"count": 1},
    }
    data: dict[str, Any] = {
        "kind": args.kind,
        "ts": now.isoformat(),
        "streamer": "test",
        "room_id": "1",
        **(defaults.get(args.kind) or {}),
        **record,
        "user": user_data,
    }
    if args.text is not None:
        data["text"] = args.text
    unknown = unknown_keys(data)
    if unknown:
        _fail(f"modbot: {unknown[0]}")
        return EXIT_USAGE
    try:
        event = parse_event(data)
    except EventError as exc:
        _fail(f"modbot: the event: {exc}")
        return EXIT_USAGE
    ruleset = _load_rules(args.paths or [settings.rules_dir], out=None)
    if ruleset is None:
        return EXIT_FAILED
    decisions = Engine(ruleset).evaluate(event, now)
    if args.json:
        for d in decisions:
            print(json.dumps(_decision_json(d, event)), file=out)
        return EXIT_OK
    if not decisions:
        what = repr(args.text) if args.text is not None else f"this {args.kind} event"
        print(f"No rule fires on {what}.", file=out)
        return EXIT_OK
    for rule_id in dict.fromkeys(d.rule_id for d in decisions):
        mine = [d for d in decisions if d.rule_id == rule_id]
        print(f"{rule_id} fires ({mine[0].mode}): {mine[0].detail}", file=out)
        for d in mine:
            verdict = (
                f"not done: {d.suppressed}"
                if d.suppressed
                else ("would be done" if d.mode == "enforce" else "observed only")
            )
            print(f"  -> {d.describe()}  [{verdict}]", file=out)
    done = [d.describe() for d in decisions if d.enforced]
    print(f"Would do: {', '.join(done) if done else 'nothing (observe only)'}", file=out)
    return EXIT_OK


# The keys of the event record (docs/replay.md): anything else is reported, not ignored.
EVENT_KEYS = (
    "kind",
    "ts",
    "streamer",
    "room_id",
    "msg_id",
    "user",
    "text",
    "language",
    "gift",
    "count",
    "viewers",
)
USER_KEYS = tuple(f.name for f in dataclasses.fields(User))
GIFT_KEYS = ("name", "diamonds", "count")


def unknown_keys(data: object) -> list[str]:
    """A sentence for each key of an event record that modbot does not know (a typo such
    as ``isfollower`` would otherwise be read as false, in silence), with a suggestion."""
    if not isinstance(data, dict):
        return []
    found: list[str] = []
    for prefix, mapping, known in (
        ("", data, EVENT_KEYS),
        ("user.", data.get("user"), USER_KEYS),
        ("gift.", data.get("gift"), GIFT_KEYS),
    ):
        if not isinstance(mapping, dict):
            continue
        for key in mapping:
            if key not in known:
                hint = did_you_mean(str(key), known) or f"; the keys are {', '.join(known)}"
                found.append(f"unknown key {prefix}{shown(str(key), 40)}{hint}")
    return found


def _json_object(text: str | None, option: str) -> dict[str, Any]:
    """``text`` as a JSON object ({} when not given); ValueError with a sentence if not."""
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{option} is not valid JSON: {exc}") from None
    except RecursionError:
        raise ValueError(f"{option} is nested too deeply") from None
    if not isinstance(value, dict):
        raise ValueError(f'{option} must be a JSON object, like \'{{"key": "value"}}\'')
    return value


def _decision_json(d: Decision, event: Event) -> dict[str, Any]:
    record: dict[str, Any] = {
        "msg_id": event.msg_id,
        "ts": format_ts(event.ts),
        "user_id": d.user_id,
        "unique_id": d.unique_id,
        "rule": d.rule_id,
        "action": d.action,
        "mode": d.mode,
        "detail": d.detail,
    }
    takes = kind.takes if (kind := kind_of(d.action)) is not None else "nothing"
    if takes == "duration":
        record["duration_s"] = d.duration_s
    if d.text is not None:
        record["text"] = d.text
    if takes == "toggle":
        record["enabled"] = d.comments_enabled
        record["for_s"] = d.comments_for_s
    if d.strike is not None:
        record["strike"] = d.strike
    if d.suppressed:
        record["suppressed"] = d.suppressed
    return record


class Progress:
    """A progress line on a terminal: ``what: N events read, R/s, T elapsed``, redrawn in
    place (carriage return, erase line) and cut to the terminal's width, at most once per
    ``interval`` seconds; the clock is read once per ``every`` steps, so a fast loop pays
    a counter increment per event. Off a terminal (``stream`` not a tty, or ``TERM=dumb``)
    it writes nothing at all, so scripts and ``--json`` output stay as they were."""

    def __init__(
        self,
        stream: TextIO,
        what: str,
        *,
        every: int = 1,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        columns: Callable[[], int] | None = None,
        enabled: bool | None = None,
    ) -> None:
        self.stream = stream
        self.what = what
        self.every = max(1, every)
        self.interval = interval
        self.clock = clock
        self.columns = columns or self._terminal_columns
        if enabled is None:
            enabled = os.environ.get("TERM") != "dumb" and _isatty(stream)
        self.enabled = enabled
        self.count = 0
        self.started = clock()
        self.drawn_at = -math.inf
        self.drawn = False  # the line is on the screen now
        self.draws = 0
        self._unchecked = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.clear()  # an error's sentence starts on a line of its own

    def step(self, n: int = 1) -> None:
        """``n`` more events; redraws when the clock says it is time."""
        self.count += n
        if not self.enabled:
            return
        self._unchecked += n
        if self._unchecked >= self.every:
            self._unchecked = 0
            self.tick()

    def tick(self) -> None:
        """Redraw if ``interval`` has passed since the last time (also while nothing
        arrives, so the elapsed time moves on)."""
        if self.enabled:
            now = self.clock()
            if now - self.drawn_at >= self.interval:
                self._draw(now)

    def line(self, now: float) -> str:
        elapsed = max(0.0, now - self.started)
        rate = f"{self.count / elapsed:,.0f}/s" if elapsed >= 0.05 else "-/s"
        return f"{self.what}: {self.count:,} events read, {rate}, {_elapsed(elapsed)} elapsed"

    def clear(self) -> None:
        """Take the line off the screen (before other output on the same terminal)."""
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.drawn = False

    def finish(self) -> None:
        """The last figures, left on a line of their own if a line was ever shown."""
        if self.enabled and self.draws:
            self._draw(self.clock())
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False

    def _draw(self, now: float) -> None:
        self.drawn_at = now
        width = max(10, self.columns()) - 1  # the last column would wrap on some terminals
        self.stream.write("\r\x1b[K" + _fitted(self.line(now), width))
        self.stream.flush()
        self.drawn = True
        self.draws += 1

    def _terminal_columns(self) -> int:
        try:
            return os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError):
            return 80


class _AboveProgress:
    """Where log lines go while a progress line is shown: the line is taken off before
    each (the next tick draws it again), so no log line starts on its row."""

    def __init__(self, progress: Progress, target: TextIO) -> None:
        self.progress = progress
        self.target = target

    def write(self, text: str) -> int:
        self.progress.clear()
        return self.target.write(text)

    def flush(self) -> None:
        self.target.flush()

    def isatty(self) -> bool:
        return _isatty(self.target)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError):  # a closed or odd stream
        return False


def _fitted(line: str, width: int) -> str:
    """``line`` in ``width`` columns (it is ASCII): whole ``, ``-separated parts while
    they fit, a cut first part when even that does not."""
    if len(line) <= width:
        return line
    parts = line.split(", ")
    while len(parts) > 1 and len(", ".join(parts)) > width:
        parts.pop()
    return ", ".join(parts)[:width]


def _elapsed(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _replay(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    ruleset = _load_rules(args.rule_paths or [settings.rules_dir], out=None)
    if ruleset is None:
        return EXIT_FAILED
    try:
        handle = args.events.open(encoding="utf-8", errors="replace")
    except OSError as exc:
        _fail(f"modbot: cannot read {args.events}: {exc.strerror}")
        return EXIT_FAILED
    engine = Engine(ruleset)
    summary: dict[str, dict[str, int]] = {
        r.id: {"fired": 0, "enforced": 0, "observed": 0} for r in ruleset.rules
    }
    events = bad = unknown = 0
    reported: set[str] = set()
    # On a terminal, a progress line on stderr; cleared before any other line lands on it.
    progress = Progress(sys.stderr, "replay", every=256)
    shared = progress.enabled and _isatty(out)
    with handle, progress:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                data = _record_data(line)
                problems = unknown_keys(data)
                unknown += len(problems)
                for problem in set(problems) - reported:  # each unknown key once, not per line
                    reported.add(problem)
                    progress.clear()
                    sys.stderr.write(
                        scrub(f"{args.events}:{number}: warning: {problem} (ignored)") + "\n"
                    )
                event = parse_event(data)
            except EventError as exc:
                bad += 1
                progress.clear()
                sys.stderr.write(scrub(f"{args.events}:{number}: skipped: {exc}") + "\n")
                continue
            events += 1
            progress.step()
            decisions = engine.evaluate(event, event.ts)
            _tally(summary, decisions)
            _show_decisions(decisions, event, args.json, out, progress if shared else None)
    progress.finish()
    width = max([len(r) for r in summary] + [4])
    lines = [f"{'rule':<{width}}  fired  enforced  observed"]
    lines += [
        f"{rule_id:<{width}}  {c['fired']:>5}  {c['enforced']:>8}  {c['observed']:>8}"
        for rule_id, c in summary.items()
    ]
    tally = f"{events} events replayed, {bad} bad lines skipped"
    if unknown:
        tally += f", {unknown} unknown key{'s' * (unknown != 1)} ignored"
    lines.append(tally)
    if bad and not events:
        lines.append(
            f"modbot: no line of {args.events} is an event; docs/replay.md shows the format"
        )
    sys.stderr.write("\n".join(lines) + "\n")
    return EXIT_FAILED if bad and not events else EXIT_OK


def _show_decisions(
    decisions: list[Decision], event: Event, as_json: bool, out: TextIO, progress: Progress | None
) -> None:
    """Print one event's decisions that were not suppressed (``replay``); a progress
    line on the same terminal is taken off first."""
    for d in decisions:
        if d.suppressed:
            continue
        if progress is not None:
            progress.clear()
        if as_json:
            print(json.dumps(_decision_json(d, event)), file=out)
        else:
            # Viewer text (handle, matched words, reply texts) shown inert.
            print(
                f"{format_ts(event.ts)} @{shown(d.unique_id, 40)} {shown(d.rule_id)}: "
                f"{shown(d.describe(), 120)}"
                f"{'' if d.mode == 'enforce' else ' (observe)'} - {shown(d.detail, 200)}",
                file=out,
            )


def _tally(summary: dict[str, dict[str, int]], decisions: list[Decision]) -> None:
    """Count one event's decisions in the per-rule summary of ``replay``."""
    for rule_id in dict.fromkeys(d.rule_id for d in decisions):
        mine = [d for d in decisions if d.rule_id == rule_id]
        counts = summary.setdefault(rule_id, {"fired": 0, "enforced": 0, "observed": 0})
        counts["fired"] += 1
        if any(d.enforced for d in mine):
            counts["enforced"] += 1
        if any(d.mode == "observe" for d in mine):
            counts["observed"] += 1


def _record_data(line: str) -> object:
    """One JSONL line, decoded (EventError when it is not JSON)."""
    try:
        return json.loads(line)
    except ValueError as exc:
        raise EventError(f"not valid JSON ({exc.args[0] if exc.args else exc})") from None
    except RecursionError:
        raise EventError("JSON nested too deeply") from None


# --- demo -------------------------------------------------------------------------------


def _demo(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    import tempfile  # noqa: PLC0415

    from modbot.demo import example_rules, run_demo  # noqa: PLC0415

    if args.speed <= 0 or args.duration <= 0:
        _fail("modbot: --speed and --duration must be positive")
        return EXIT_USAGE
    rules: Path | None = args.rule_dir or example_rules()
    if rules is None or not rules.exists():
        _fail(f"modbot: the rules directory {rules} does not exist (use --rules DIR)")
        return EXIT_USAGE
    # Never the real state directory by default: the demo writes its own fake grant.
    if args.state_dir:
        _open_state_dir(args.state_dir)
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


# --- auth -------------------------------------------------------------------------------


def requested_scopes(values: Sequence[str] | None, actions: Iterable[str] = ()) -> list[str]:
    """Scopes from ``--scopes`` (comma/space separated), else what ``actions`` need."""
    if not values:
        return scope_names.scopes_for_actions(actions)
    found: list[str] = []
    for value in values:
        for part in value.replace(",", " ").split():
            name = scope_names.canonical(part)
            if name not in found:
                found.append(name)
    return found


def _auth_login(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    oauth = oauth_config(settings)
    _open_state_dir(settings.state_dir)
    actions: set[str] = set()
    if not args.scopes:
        ruleset = _load_rules(args.rule_paths or [settings.rules_dir], out=None)
        if ruleset is None:
            raise ConfigError(
                "the rules do not check, so the scopes they need are unknown; fix them "
                "(`modbot rules check`) or give --scopes"
            )
        actions = ruleset.actions()
        print(
            f"Scopes for the actions your rules use: {', '.join(sorted(actions)) or 'none'}",
            file=out,
        )
    wanted = requested_scopes(args.scopes, actions)
    bad = scope_names.unknown_scopes(wanted)
    if bad:
        known = ", ".join(sorted(scope_names.KNOWN_SCOPES))
        raise OAuthError(f"unknown scope(s) {', '.join(bad)}; known scopes: {known}")
    store = TokenStore(settings.state_dir)
    _say_destination(settings, out)
    page = url_host(settings.authorize_url)
    if page != url_host(DEFAULT_AUTHORIZE_URL):
        print(
            f"The authorize page is on {shown(page, 100)}, which is NOT Euler's "
            f"{url_host(DEFAULT_AUTHORIZE_URL)}: the authorize_url setting points there.",
            file=out,
        )

    def show(url: str) -> None:
        if args.paste:
            print(
                "Open this URL on any device (a phone will do) and approve modbot for the "
                "streamer's account:",
                file=out,
            )
            print(f"\n  {url}\n", file=out)
            print(
                "The browser is then sent to an http://127.0.0.1 address, which need not "
                "load: copy that whole address from its address bar, paste it here and "
                "press Enter.",
                file=out,
                flush=True,
            )
            return
        print("Open this URL in a browser and approve modbot for the streamer's account:", file=out)
        print(f"\n  {url}\n", file=out)
        print("Waiting for Euler to redirect back to this machine...", file=out, flush=True)

    async def read_pasted() -> str | None:
        """The operator's line on stdin (None at the end of input)."""
        from modbot.euler.oauth import PASTE_LIMIT  # noqa: PLC0415

        def read() -> str | None:
            if sys.stdin is None:
                return None
            return sys.stdin.readline(PASTE_LIMIT) or None

        return await anyio.to_thread.run_sync(read, abandon_on_cancel=True)

    async def run() -> None:
        async with client_for(settings) as client:
            tokens = await login(
                client,
                store,
                authorize_base=settings.authorize_url,
                oauth=oauth,
                scopes=wanted,
                show_url=show,
                port=args.port,
                timeout=args.timeout,
                paste=read_pasted if args.paste else None,
            )
        missing = sorted(set(wanted) - tokens.scopes)
        print(f"Logged in. Tokens stored in {store.path} (mode 0600).", file=out)
        print(f"Granted scopes: {', '.join(sorted(tokens.scopes)) or '(none)'}", file=out)
        if missing:
            print(
                f"Not granted: {', '.join(missing)}; rules needing them will only observe.",
                file=out,
            )

    anyio.run(run)
    return EXIT_OK


def _auth_status(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    _open_state_dir(settings.state_dir)
    store = TokenStore(settings.state_dir)
    tokens = store.load()
    host, default_host = _api_host(settings)
    if tokens is None:
        if args.json:
            none = {
                "logged_in": False,
                "token_file": str(store.path),
                "api_host": host,
                "api_host_is_euler": default_host,
            }
            print(json.dumps(none), file=out)
        else:
            print(f"Not logged in (no {store.path}); run `modbot auth login`.", file=out)
            print(f"API host:        {_host_note(settings)}", file=out)
        return EXIT_FAILED
    now = SystemClock().timestamp()
    allowed = scope_names.allowed_actions(tokens.scopes)
    refresh_dead = tokens.refresh_expired(now)
    info: dict[str, Any] = {
        "logged_in": not refresh_dead,
        "token_file": str(store.path),
        "access_expires_at": _iso(tokens.expires_at),
        "access_expired": tokens.expires_at <= now,
        "refresh_expires_at": _iso(tokens.refresh_expires_at),
        "refresh_expired": refresh_dead,
        "scopes": sorted(tokens.scopes),
        "actions": allowed,
        "api_host": host,
        "api_host_is_euler": default_host,
    }
    if args.json:
        print(json.dumps(info), file=out)
        return EXIT_FAILED if refresh_dead else EXIT_OK
    print(f"Token file:      {store.path}", file=out)
    print(f"API host:        {_host_note(settings)}", file=out)
    print(
        f"Access token:    expires {info['access_expires_at']} "
        f"({_relative(tokens.expires_at - now)})"
        + (" - will be refreshed on next use" if info["access_expired"] else ""),
        file=out,
    )
    if tokens.refresh_expires_at is not None:
        print(
            f"Refresh token:   expires {info['refresh_expires_at']} "
            f"({_relative(tokens.refresh_expires_at - now)})",
            file=out,
        )
    print(f"Granted scopes:  {', '.join(sorted(tokens.scopes)) or '(none)'}", file=out)
    print("Rule actions:", file=out)
    for action, ok in allowed.items():
        scope = scope_names.ACTION_SCOPES[action]
        need = f" (needs {scope})" if scope else ""
        print(
            f"  {action:<9} {'allowed' if ok else 'NOT allowed, rules will observe'}{need}",
            file=out,
        )
    if refresh_dead:
        print("The refresh token has expired: the streamer must run `modbot auth login`.", file=out)
        return EXIT_FAILED
    return EXIT_OK


def _auth_logout(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    del args
    _open_state_dir(settings.state_dir)
    store = TokenStore(settings.state_dir)
    tokens = store.load()
    if tokens is None:
        print(f"Not logged in (no {store.path}); nothing to do.", file=out)
        return EXIT_OK
    oauth = oauth_config(settings)
    _say_destination(settings, out)

    async def revoke() -> None:
        async with client_for(settings) as client:
            for token, hint in (
                (tokens.refresh_token, "refresh_token"),
                (tokens.access_token, "access_token"),
            ):
                await client.revoke(
                    client_id=oauth.client_id,
                    client_secret=oauth.client_secret,
                    token=token.get_secret_value(),
                    hint=hint,
                )

    try:
        anyio.run(revoke)
    except ModbotError as exc:
        store.delete()
        _fail(f"modbot: the tokens were deleted here, but Euler could not revoke them: {exc}")
        return EXIT_FAILED
    store.delete()
    print(f"Logged out: the tokens were revoked at Euler and {store.path} was deleted.", file=out)
    return EXIT_OK


def _iso(epoch_s: float | None) -> str | None:
    if epoch_s is None:
        return None
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _relative(seconds: float) -> str:
    past = seconds < 0
    left = abs(int(seconds))
    days, rest = divmod(left, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        text = f"{days}d {hours}h"
    elif hours:
        text = f"{hours}h {minutes}m"
    else:
        text = f"{minutes}m {left % 60}s"
    return f"{text} ago" if past else f"in {text}"


# --- run, audit, undo, record ----------------------------------------------------------


def _run(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    from modbot.daemon import Daemon  # noqa: PLC0415 (the daemon's imports are not needed for other commands)

    update: dict[str, Any] = {}
    if args.dry_run:
        update["dry_run"] = True
    if args.streamers:
        update["streamers"] = [
            h.strip().removeprefix("@") for h in args.streamers.split(",") if h.strip()
        ]
    settings = settings.model_copy(update=update)
    _require_session(settings, "modbot run", streamers=True)
    daemon = Daemon(settings, rule_paths=args.rule_paths)
    del out
    return anyio.run(daemon.run, backend="asyncio")


def _require_session(settings: Settings, command: str, *, streamers: bool = False) -> None:
    """Every setting a command acting through Euler needs and lacks, named at once in
    one ConfigError (rather than one per try), before anything is created on disk."""
    from modbot.config import ENV_PREFIX  # noqa: PLC0415

    missing: list[str] = []
    if streamers and not settings.streamers:
        missing.append(f"streamers ({ENV_PREFIX}STREAMERS=handle1,handle2)")
    missing += [
        f"{name} ({ENV_PREFIX}{name.upper()})"
        for name in ("api_key", "client_id", "client_secret")
        if getattr(settings, name) is None
    ]
    check_state_dir(settings.state_dir)
    if TokenStore(settings.state_dir).load() is None:
        missing.append(f"an OAuth grant in {settings.state_dir} (run `modbot auth login`)")
    if missing:
        msg = (
            f"{command} needs {len(missing)} thing{'s' * (len(missing) != 1)} not set yet: "
            f"{'; '.join(missing)}. Settings come from MODBOT_* variables, --env-file or "
            "--config"
        )
        raise ConfigError(msg, setting=None)


def lone_error(group: BaseExceptionGroup[BaseException]) -> ModbotError | OSError | None:
    """The modbot error (or the system's refusal of a file or port) that ended a task
    group, when nothing else did: it is reported as one sentence, like any other;
    anything else keeps its traceback."""
    found, rest = group.split((ModbotError, OSError))
    if found is None or rest is not None:
        return None
    leaf: BaseException = found
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    return leaf if isinstance(leaf, ModbotError | OSError) else None


def _audit_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", type=Path, metavar="FILE", help="the audit database")
    parser.add_argument("--user", help="a viewer: @handle or numeric user id")
    parser.add_argument("--rule", help="a rule id")
    parser.add_argument("--action", help="mute, ban, reply, comments, log, warn, unmute, unban")
    parser.add_argument("--streamer", help="a streamer's handle (with or without @)")
    parser.add_argument("--since", help="10m, 2h, 1d ago, or an ISO 8601 time")
    parser.add_argument("--until", help="10m, 2h, 1d ago, or an ISO 8601 time")
    parser.add_argument("--status", help="pending, done, failed, skipped or observed")


def _db_path(args: argparse.Namespace, settings: Settings) -> Path:
    """The audit database a command reads or writes (``--db``, else the state
    directory's), after the checks of the directory it is in and of the file itself."""
    from modbot.audit.store import default_db  # noqa: PLC0415

    path: Path = args.db or default_db(settings.state_dir)
    _open_state_dir(path.parent)
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
        _fail(
            f"modbot: warning: the audit database {path} has mode {mode:04o}: others can "
            f"read the audit log; `chmod 600 {path}` closes it"
        )


def _audit(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
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
            limit=args.limit,
        )
    except FilterError as exc:
        _fail(f"modbot: {exc}")
        return EXIT_USAGE
    path = _db_path(args, settings)

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


def _undo(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    from modbot.actions.executor import Executor  # noqa: PLC0415
    from modbot.actions.undo import undo  # noqa: PLC0415
    from modbot.audit.query import AuditFilter, FilterError, parse_when  # noqa: PLC0415
    from modbot.audit.store import AuditStore  # noqa: PLC0415
    from modbot.demo import is_demo_state, revived  # noqa: PLC0415

    usage = _undo_usage(args)
    if usage:
        _fail(f"modbot: {usage}")
        return EXIT_USAGE
    clock = SystemClock()
    where = None
    if args.rule:
        if not args.since:
            _fail("modbot: --rule needs --since (for example --since 10m)")
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
            _fail(f"modbot: {exc}")
            return EXIT_USAGE
    path = _db_path(args, settings)
    if not is_demo_state(path.parent):
        _open_state_dir(settings.state_dir)  # the grant is read, and written when refreshed

    async def reverse() -> int:
        failures = 0
        async with AsyncExitStack() as stack:
            active = settings
            if is_demo_state(path.parent):
                print(
                    "A `modbot demo` state directory: undoing against the demo's fake Euler "
                    "server (nothing reaches TikTok).",
                    file=sys.stderr if args.json else out,
                )
                active = await stack.enter_async_context(revived(path.parent))
            store = await stack.enter_async_context(AuditStore.open(path))
            client, _, grant = await stack.enter_async_context(api_session(active, clock))
            executor = Executor(client, store, clock, granted_scopes=grant.scopes)
            ids = list(args.ids)
            if where is not None:
                candidates = await store.query(where)
                ids = [e.id for e in candidates if undoable(e.action) and e.undone_by is None]
                if not ids:
                    if not args.json:
                        print(
                            f"Nothing to undo for rule {shown(args.rule)} since "
                            f"{shown(args.since, 40)}.",
                            file=out,
                        )
                    return EXIT_OK
            for entry_id in ids:
                result = await undo(executor, store, entry_id, reason=args.reason)
                ok, record, text = _undo_outcome(entry_id, result)
                failures += not ok
                print(json.dumps(record, ensure_ascii=True) if args.json else text, file=out)
        return EXIT_FAILED if failures else EXIT_OK

    return anyio.run(reverse, backend="asyncio")


def _undo_usage(args: argparse.Namespace) -> str | None:
    """What is wrong with the way ``undo`` was asked, if anything."""
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


def _record(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    from modbot.audit.store import AuditStore, default_db  # noqa: PLC0415
    from modbot.euler.watcher import Arrival, Watcher  # noqa: PLC0415

    clock = SystemClock()
    handle = args.unique_id.lstrip("@")
    _open_state_dir(settings.state_dir)
    _require_session(settings, "modbot record")

    # On a terminal, a progress line on stderr, which log lines are written above.
    progress = Progress(sys.stderr, "recording")
    if progress.enabled:
        level = logging.getLevelName(logging.getLogger().level).lower()  # as main set it
        configure(
            settings.log_format,
            level=level,
            stream=cast("TextIO", _AboveProgress(progress, sys.stderr)),
        )

    async def redraw() -> None:
        while True:  # the elapsed time moves on while the stream is quiet
            progress.tick()
            await anyio.sleep(0.5)

    async def capture(sink: TextIO) -> int:
        written = 0
        send, receive = anyio.create_memory_object_stream[Arrival](1_000)
        async with (
            api_session(settings, clock) as (client, _, _grant),
            AuditStore.open(default_db(settings.state_dir)) as store,
            anyio.create_task_group() as tg,
        ):
            watcher = Watcher(
                client,
                [handle],
                websocket_factory(settings),
                store=store,
                clock_now=clock.now,
                interval=settings.live_check_interval,
            )
            tg.start_soon(watcher.run, send)
            if not args.json:
                print(f"Recording @{handle} to {args.output} (waiting until live)...", file=out)
                out.flush()
            if progress.enabled:
                tg.start_soon(redraw)
            with anyio.move_on_after(args.duration or math.inf):
                async with receive:
                    async for events, _ in receive:
                        for event in events:
                            sink.write(json.dumps(event.to_json(), ensure_ascii=False) + "\n")
                            written += 1
                        progress.step(len(events))
                        if any(event.kind == "stream_end" for event in events):
                            break
            tg.cancel_scope.cancel()
        progress.finish()
        if args.json:
            result = {"streamer": handle, "output": str(args.output), "events": written}
            print(json.dumps(result), file=out)
        else:
            print(f"Recorded {written} events.", file=out)
        return EXIT_OK

    # The output first: a file that cannot be written is said before anything is created.
    with args.output.open("w", encoding="utf-8", buffering=1) as sink, progress:
        return anyio.run(capture, sink, backend="asyncio")
