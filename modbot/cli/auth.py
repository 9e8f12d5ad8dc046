"""``modbot auth login``, ``status`` and ``logout``: the streamer's OAuth grant."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

import anyio

from modbot.cli.output import (
    EXIT_FAILED,
    EXIT_OK,
    api_host,
    fail,
    host_note,
    open_state_dir,
    say_destination,
)
from modbot.cli.rules import load_rules
from modbot.clock import SystemClock
from modbot.config import DEFAULT_AUTHORIZE_URL, Settings, url_host
from modbot.errors import ConfigError, ModbotError, OAuthError
from modbot.euler import scopes as scope_names
from modbot.euler.oauth import TokenStore, login
from modbot.euler.session import client_for, oauth_config
from modbot.inert import shown


def requested_scopes(
    values: Sequence[str] | None, actions: Iterable[str] = (), *, console: bool = False
) -> list[str]:
    """Scopes from ``--scopes`` (comma/space separated), else what ``actions`` need
    (and, with ``console``, what every console command needs too)."""
    if not values:
        wanted = set(scope_names.scopes_for_actions(actions))
        if console:
            wanted.update(scope_names.console_scopes())
        return sorted(wanted)
    found: list[str] = []
    for value in values:
        for part in value.replace(",", " ").split():
            name = scope_names.canonical(part)
            if name not in found:
                found.append(name)
    return found


def login_command(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    oauth = oauth_config(settings)
    open_state_dir(settings.state_dir)
    actions: set[str] = set()
    if not args.scopes:
        ruleset = load_rules(args.rule_paths or [settings.rules_dir], out=None)
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
        print(
            "and for the console commands (mute, ban, comments, say, moderators, keywords): "
            f"{', '.join(scope_names.console_scopes())}",
            file=out,
        )
    wanted = requested_scopes(args.scopes, actions, console=True)
    bad = scope_names.unknown_scopes(wanted)
    if bad:
        known = ", ".join(sorted(scope_names.KNOWN_SCOPES))
        raise OAuthError(f"unknown scope(s) {', '.join(bad)}; known scopes: {known}")
    store = TokenStore(settings.state_dir)
    say_destination(settings, out)
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


def status_command(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    open_state_dir(settings.state_dir)
    store = TokenStore(settings.state_dir)
    tokens = store.load()
    host, default_host = api_host(settings)
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
            print(f"API host:        {host_note(settings)}", file=out)
        return EXIT_FAILED
    now = SystemClock().timestamp()
    allowed = scope_names.allowed_actions(tokens.scopes)
    console = scope_names.allowed_console(tokens.scopes)
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
        "console": console,
        "api_host": host,
        "api_host_is_euler": default_host,
    }
    if args.json:
        print(json.dumps(info), file=out)
        return EXIT_FAILED if refresh_dead else EXIT_OK
    print(f"Token file:      {store.path}", file=out)
    print(f"API host:        {host_note(settings)}", file=out)
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
    print("Console commands:", file=out)
    for command, row in console.items():
        needs = ", ".join(row["needs"])
        if row["allowed"]:
            print(f"  {command}: yes ({needs})", file=out)
        else:
            missing = ", ".join(row["missing"])
            print(f"  {command}: no ({missing} missing: run `modbot auth login`)", file=out)
    print("  nuke: as its --then action (mute or ban above)", file=out)
    if refresh_dead:
        print("The refresh token has expired: the streamer must run `modbot auth login`.", file=out)
        return EXIT_FAILED
    return EXIT_OK


def logout_command(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    del args
    open_state_dir(settings.state_dir)
    store = TokenStore(settings.state_dir)
    tokens = store.load()
    if tokens is None:
        print(f"Not logged in (no {store.path}); nothing to do.", file=out)
        return EXIT_OK
    oauth = oauth_config(settings)
    say_destination(settings, out)

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
        fail(f"modbot: the tokens were deleted here, but Euler could not revoke them: {exc}")
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
