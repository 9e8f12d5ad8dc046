"""The command tree of ``modbot``: the options, the commands and their handlers."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from modbot.__about__ import __version__, build
from modbot.cli.audit import audit_command, undo_command
from modbot.cli.audit_stats import add_audit_stats
from modbot.cli.auth import login_command, logout_command, status_command
from modbot.cli.console_actions import add_console_actions
from modbot.cli.console_lists import add_console_lists
from modbot.cli.console_nuke import add_nuke
from modbot.cli.demo import demo_command
from modbot.cli.rules import check_command, replay_command, test_command
from modbot.cli.run import record_command, run_command
from modbot.rules.schema import RULE_EVENTS

N = TypeVar("N", int, float)


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
    for short, long, what in (
        ("-v", "--verbose", "more log output (debug)"),
        ("-q", "--quiet", "less log output (warnings and errors only)"),
    ):
        count = argparse.SUPPRESS if suppress else 0
        group.add_argument(short, long, action="count", default=count, help=what)
    return parent


# What each command says of itself in --help: (its line in the list of its group, the
# text of its own --help). A command of another module passes its own.
_TEXTS: dict[str, tuple[str, str]] = {
    "demo": (
        "see modbot moderate a scripted live chat (no credentials needed)",
        (
            "Run the real daemon with the example rules against the bundled fake Euler "
            "server (generated credentials, a free loopback port) and a scripted stream, "
            "showing each decision as it happens and a summary at the end. The audit log "
            "stays in the state directory (default: a new temporary directory), so "
            "`modbot audit --state-dir DIR` and `modbot undo --state-dir DIR ID` work "
            "afterwards (undo brings the demo's fake server back; nothing reaches TikTok)."
        ),
    ),
    "rules": (
        "check rule files, or try them on one comment",
        "Work with rule files (see docs/rules.md for the language).",
    ),
    "check": (
        "validate rule files; exit 0 when valid, 1 otherwise",
        (
            "Validate rule files and print each problem as FILE:LINE:COL: error: MESSAGE "
            "(or warning:). With a stored OAuth grant, actions it does not allow are warnings."
        ),
    ),
    "test": (
        "evaluate one comment and show which rules fire and what would be done",
        "Evaluate one comment against the rules, with the reasons, and call nothing.",
    ),
    "replay": (
        "run recorded events through the rules offline (no API call)",
        (
            "Run a JSONL file of events (the format `modbot record` writes) through the rules, "
            "with the events' own timestamps as the clock. Prints each decision that would be "
            "carried out or observed, and a per-rule summary on stderr. Bad lines are "
            "reported with their line number and skipped."
        ),
    ),
    "auth": (
        "log in to Euler for the streamer (OAuth), show or forget the grant",
        "Manage the streamer's OAuth grant that lets modbot act in their room.",
    ),
    "login": (
        "authorize modbot for the streamer's account",
        (
            "Print Euler's authorize URL, wait for the redirect on a loopback port, exchange "
            "the code and store the tokens (mode 0600) in the state directory. Needs the "
            "client_id and client_secret settings. On a server without a browser, --paste: "
            "the streamer approves on any device and you paste the address their browser "
            "was sent to (or forward the port: ssh -L PORT:127.0.0.1:PORT server)."
        ),
    ),
    "status": (
        "show token expiry, granted scopes, and the rule actions and console commands allowed",
        (
            "Show the stored grant: which rule actions and console commands it allows, and "
            "the scope each one lacks. Never prints a token."
        ),
    ),
    "logout": (
        "revoke the stored tokens at Euler and delete them",
        "Revoke the refresh and access tokens at Euler, then delete the token file.",
    ),
    "run": (
        "the moderation daemon: watch the streamers, apply the rules, act and audit",
        (
            "Watch the configured streamers (the streamers setting), connect when one goes "
            "live, evaluate the rules on every event, act through the Euler API and record "
            "every decision in the audit log. SIGHUP or a changed rule file reloads the "
            "rules (a broken file keeps the old ones); SIGTERM stops cleanly. Needs the "
            "api_key, client_id and client_secret settings and a grant from `modbot auth login`."
        ),
    ),
    "audit": (
        "query the audit log (also installed as modbot-audit)",
        (
            "Show audit entries, newest first. Filters narrow the result; --since and "
            "--until take a duration ago (10m, 2h, 1d) or an ISO 8601 time."
        ),
    ),
    "undo": (
        "reverse actions: unmute, unban, comments back on",
        (
            "Reverse done actions by audit id, or every done action of a rule since a time "
            "(--rule R --since 10m). Each reversal is a new audit entry linked to the "
            "original; an action is undone at most once; a chat message cannot be undone. "
            "Works while the daemon runs."
        ),
    ),
    "record": (
        "record a live stream's events to a JSONL file for `modbot replay`",
        (
            "Wait until UNIQUE_ID is live, then write each event, in the replay format, to "
            "FILE until the stream ends (or --duration passes). Nothing is moderated."
        ),
    ),
}


def _command(
    group: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    name: str,
    handler: Callable[..., int] | None = None,
) -> argparse.ArgumentParser:
    """A command of ``group`` that takes the global options, with its ``_TEXTS``, run by
    ``handler`` (None: a group of commands)."""
    help_line, description = _TEXTS[name]
    command = group.add_parser(name, parents=[common], help=help_line, description=description)
    if handler is not None:
        command.set_defaults(handler=handler)
    return command


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

    demo = _command(commands, common, "demo", demo_command)
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

    rules = _command(commands, common, "rules")
    rules_commands = rules.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    check = _command(rules_commands, common, "check", check_command)
    _rules_option(check, positional=True)
    check.add_argument(
        "--json",
        action="store_true",
        help='one JSON object per problem: {"file", "line", "col", "severity", "message"}',
    )
    test = _command(rules_commands, common, "test", test_command)
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

    replay = _command(commands, common, "replay", replay_command)
    replay.add_argument("events", type=Path, metavar="EVENTS.jsonl", help="the recorded events")
    _rules_option(replay)
    replay.add_argument("--json", action="store_true", help="one JSON object per decision")

    _add_operations(commands, common)
    add_nuke(commands, common)
    add_console_lists(commands, common)
    add_console_actions(commands, common)

    auth = _command(commands, common, "auth")
    auth_commands = auth.add_subparsers(dest="auth_command", metavar="ACTION", required=True)
    login_parser = _command(auth_commands, common, "login", login_command)
    login_parser.add_argument(
        "--scopes",
        action="append",
        metavar="SCOPES",
        help="scopes to request, comma or space separated (repeatable); default: what the "
        "actions of the rules need, plus webcast:bulk_live_check, plus what every console "
        "command needs (mute, ban, comments, chat, moderators, sensitive_words, user:info); "
        "give --scopes to ask for fewer",
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

    status = _command(auth_commands, common, "status", status_command)
    status.add_argument("--json", action="store_true", help="one JSON object instead of text")

    _command(auth_commands, common, "logout", logout_command)
    return parser


def _number_type(
    parse: Callable[[str], N], noun: str, ok: Callable[[N], bool], refusal: str
) -> Callable[[str], N]:
    """An argparse type: the text ``parse``d (else it "is not ``noun``"), kept when ``ok``
    (else ``refusal``, formatted with the ``text`` and its ``value``)."""

    def checked(text: str) -> N:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(refusal.format(text=text, value=value))
        return value

    return checked


# A TCP port, 0 (any free one) to 65535.
port_number = _number_type(
    int,
    "a port number",
    lambda v: 0 <= v <= 65535,
    "{value} is not a port: use 1 to 65535, or 0 for any",
)
# A finite number of seconds above 0.
positive_seconds = _number_type(
    float,
    "a number of seconds",
    lambda v: math.isfinite(v) and v > 0,
    "{text!r}: give a number of seconds above 0",
)
# A whole number above 0.
positive_count = _number_type(
    int, "a whole number", lambda v: v >= 1, "{value}: give a whole number above 0"
)


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
    run = _command(commands, common, "run", run_command)
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

    audit = _command(commands, common, "audit", audit_command)
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
    add_audit_stats(audit, common)

    undo = _command(commands, common, "undo", undo_command)
    undo.add_argument("ids", nargs="*", type=int, metavar="ID", help="audit entry ids")
    undo.add_argument("--rule", help="undo the done actions of this rule (needs --since)")
    undo.add_argument("--since", help="with --rule: since this long ago (10m) or ISO time")
    undo.add_argument("--user", help="with --rule: only this viewer (@handle or user id)")
    undo.add_argument(
        "--incident", type=int, metavar="N", help="every undoable action of incident N"
    )
    undo.add_argument("--reason", metavar="TEXT", help="why, kept in the audit log")
    undo.add_argument("--db", type=Path, metavar="FILE", help="the audit database")
    undo.add_argument(
        "--json", action="store_true", help="one JSON object per audit id instead of text"
    )

    record = _command(commands, common, "record", record_command)
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


def _audit_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", type=Path, metavar="FILE", help="the audit database")
    parser.add_argument("--user", help="a viewer: @handle or numeric user id")
    parser.add_argument("--rule", help="a rule id")
    parser.add_argument("--action", help="mute, ban, reply, comments, log, warn, unmute, unban")
    parser.add_argument("--streamer", help="a streamer's handle (with or without @)")
    parser.add_argument("--since", help="10m, 2h, 1d ago, or an ISO 8601 time")
    parser.add_argument("--until", help="10m, 2h, 1d ago, or an ISO 8601 time")
    parser.add_argument("--status", help="pending, done, failed, skipped or observed")
    parser.add_argument("--incident", type=int, metavar="N", help="the rows of incident N")
