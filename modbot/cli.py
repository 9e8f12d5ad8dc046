"""The ``modbot`` command line: ``main(argv) -> int``, callable in-process by tests.

Exit codes: 0 success, 1 the thing checked is bad or the action failed, 2 usage or
configuration error. Expected failures are one sentence on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import anyio

from modbot.__about__ import __version__
from modbot.clock import SystemClock
from modbot.config import Settings, load_settings
from modbot.errors import ConfigError, ModbotError, OAuthError
from modbot.euler import scopes as scope_names
from modbot.euler.client import EulerClient
from modbot.euler.oauth import OAuthClientConfig, TokenStore, login
from modbot.euler.policy import RetryPolicy
from modbot.log import configure, scrub

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
        help="where the audit DB (modbot.db), tokens and timers live "
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
    parser.add_argument("--version", action="version", version=f"modbot {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="see modbot moderate a scripted live chat (no credentials needed)",
        description="Run modbot against the bundled fake Euler server with a scripted stream.",
    )
    demo.set_defaults(handler=_demo)

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
            "client_id and client_secret settings."
        ),
    )
    login_parser.add_argument(
        "--scopes",
        action="append",
        metavar="SCOPES",
        help="scopes to request, comma or space separated (repeatable); default: what the "
        "rule actions need (webcast:bulk_live_check, webcast:mute, webcast:ban, "
        "webcast:chat, webcast:comments)",
    )
    login_parser.add_argument(
        "--port",
        type=int,
        default=0,
        help="loopback port for the redirect (default: any free port; "
        "use a fixed one if your OAuth client only allows one redirect URI)",
    )
    login_parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="how long to wait for the streamer to authorize (default: 600)",
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
            state_dir=getattr(args, "state_dir", None),
            log_format=getattr(args, "log_format", None),
        )
    except ConfigError as exc:
        _fail(f"modbot: configuration error: {exc}")
        return EXIT_USAGE
    configure(settings.log_format, level=level if level != "info" else settings.log_level)
    handler: Handler = args.handler
    try:
        return handler(args, settings, out)
    except ConfigError as exc:
        _fail(f"modbot: configuration error: {exc}")
        return EXIT_USAGE
    except ModbotError as exc:
        _fail(f"modbot: error: {exc}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        _fail("modbot: interrupted")
        return 130


def audit_main(argv: Sequence[str] | None = None) -> int:
    """``modbot-audit``: the same as ``modbot audit``."""
    args = list(sys.argv[1:] if argv is None else argv)
    return main(["audit", *args])


def _fail(message: str) -> None:
    sys.stderr.write(scrub(message) + "\n")


# --- demo -------------------------------------------------------------------------------


def _demo(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    del args, settings
    print(
        "modbot demo is not available yet: the rule engine and the daemon it runs are "
        "still being built. Nothing was started.",
        file=out,
    )
    return EXIT_FAILED


# --- auth -------------------------------------------------------------------------------


def _oauth_config(settings: Settings) -> OAuthClientConfig:
    settings.require("client_id", "client_secret")
    assert settings.client_id is not None
    assert settings.client_secret is not None
    return OAuthClientConfig(settings.client_id, settings.client_secret.get_secret_value())


def _client(settings: Settings) -> EulerClient:
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    return EulerClient(
        settings.api_base_url,
        api_key,
        routes=settings.routes,
        timeout=settings.http_timeout,
        retry=RetryPolicy(max_attempts=settings.max_attempts, max_wait=settings.max_retry_wait),
    )


def requested_scopes(values: Sequence[str] | None) -> list[str]:
    """Scopes from ``--scopes`` (comma/space separated), else what rule actions need."""
    if not values:
        return scope_names.scopes_for_actions(scope_names.ACTION_SCOPES)
    found: list[str] = []
    for value in values:
        for part in value.replace(",", " ").split():
            name = scope_names.canonical(part)
            if name not in found:
                found.append(name)
    return found


def _auth_login(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    oauth = _oauth_config(settings)
    wanted = requested_scopes(args.scopes)
    bad = scope_names.unknown_scopes(wanted)
    if bad:
        known = ", ".join(sorted(scope_names.KNOWN_SCOPES))
        raise OAuthError(f"unknown scope(s) {', '.join(bad)}; known scopes: {known}")
    store = TokenStore(settings.state_dir)

    def show(url: str) -> None:
        print("Open this URL in a browser and approve modbot for the streamer's account:", file=out)
        print(f"\n  {url}\n", file=out)
        print("Waiting for Euler to redirect back to this machine...", file=out, flush=True)

    async def run() -> None:
        async with _client(settings) as client:
            tokens = await login(
                client,
                store,
                authorize_base=settings.authorize_url,
                oauth=oauth,
                scopes=wanted,
                show_url=show,
                port=args.port,
                timeout=args.timeout,
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
    store = TokenStore(settings.state_dir)
    tokens = store.load()
    if tokens is None:
        if args.json:
            print(json.dumps({"logged_in": False, "token_file": str(store.path)}), file=out)
        else:
            print(f"Not logged in (no {store.path}); run `modbot auth login`.", file=out)
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
    }
    if args.json:
        print(json.dumps(info), file=out)
        return EXIT_FAILED if refresh_dead else EXIT_OK
    print(f"Token file:      {store.path}", file=out)
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
    store = TokenStore(settings.state_dir)
    tokens = store.load()
    if tokens is None:
        print(f"Not logged in (no {store.path}); nothing to do.", file=out)
        return EXIT_OK
    oauth = _oauth_config(settings)

    async def revoke() -> None:
        async with _client(settings) as client:
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
