"""What every command shares: the exit codes, the handler type, one-line messages on
stderr, a command asked wrongly, the state directory's check, a demo state directory's
fake server, and where the credentials are going."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TextIO

from modbot.config import DEFAULT_API_BASE_URL, Settings, url_host
from modbot.errors import ModbotError
from modbot.files import check_state_dir
from modbot.inert import escaped, shown
from modbot.log import scrub

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


Handler = Callable[[argparse.Namespace, Settings, TextIO], int]


class Usage(ModbotError):
    """A command asked wrongly (exit 2, one sentence: ``modbot: ...``)."""


def fail(message: str) -> None:
    """One line on stderr: no secret, and nothing a terminal would act on (an error
    message can carry an API's or a viewer's text)."""
    sys.stderr.write(escaped(scrub(message)) + "\n")


def open_state_dir(directory: Path) -> None:
    """Refuse a state directory another user owns or can write (ConfigError, exit 2);
    say so on stderr when others can list it."""
    warning = check_state_dir(directory)
    if warning:
        fail(f"modbot: warning: {warning}")


async def demo_or(
    settings: Settings, state: Path, stack: AsyncExitStack, note: TextIO, *, doing: str
) -> Settings:
    """The settings to act with: ``settings``, or on a ``modbot demo`` state directory the
    demo's fake server revived in ``stack``, said on ``note`` ("... state directory:
    DOING the demo's fake Euler server")."""
    from modbot.demo import is_demo_state, revived  # noqa: PLC0415

    if not is_demo_state(state):
        return settings
    print(
        f"A `modbot demo` state directory: {doing} the demo's fake Euler server "
        "(nothing reaches TikTok).",
        file=note,
    )
    return await stack.enter_async_context(revived(state))


def api_host(settings: Settings) -> tuple[str, bool]:
    """The API host the secrets go to, and whether it is Euler's own."""
    host = url_host(settings.api_base_url)
    return shown(host, 100), host == url_host(DEFAULT_API_BASE_URL)


def host_note(settings: Settings) -> str:
    host, default = api_host(settings)
    if default:
        return f"{host} (Euler's API)"
    return (
        f"{host}, which is NOT Euler's API host {url_host(DEFAULT_API_BASE_URL)}: the "
        "api_base_url setting points there (MODBOT_API_BASE_URL, --env-file or --config)"
    )


def say_destination(settings: Settings, out: TextIO) -> None:
    """Before anything is sent: where the API key, client secret and tokens are going."""
    print(f"Sending credentials to {host_note(settings)}.", file=out, flush=True)
