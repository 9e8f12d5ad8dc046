"""The entry points: ``main(argv) -> int`` and ``modbot-audit``; an expected failure
is one sentence on stderr and an exit code, never a traceback."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Sequence
from typing import TextIO

from modbot.cli.output import EXIT_FAILED, EXIT_USAGE, Handler, Usage, fail
from modbot.cli.parser import build_parser
from modbot.config import Settings, load_settings
from modbot.errors import ConfigError, ModbotError
from modbot.log import configure

# The command tree, built once per process (about 9 ms): parsing leaves it as it was,
# and a process that calls main() often (the tests walk every command) builds it once.
_parser = functools.cache(build_parser)


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None) -> int:
    """Run one command; returns the exit code."""
    out = stdout or sys.stdout
    parser = _parser()
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
        return _said(exc)
    configure(settings.log_format, level=level if level != "info" else settings.log_level)
    handler: Handler = args.handler
    try:
        return _reported(handler, args, settings, out)
    except KeyboardInterrupt:
        fail("modbot: interrupted")
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
    except ModbotError as exc:
        return _said(exc)
    except OSError as exc:
        fail(f"modbot: error: {os_error(exc)}")
        return EXIT_FAILED


# How an expected failure is said, by the first of these classes it is: the words after
# "modbot: ", and the exit code.
_SAID: tuple[tuple[type[ModbotError], str, int], ...] = (
    (ConfigError, "configuration error: ", EXIT_USAGE),
    (Usage, "", EXIT_USAGE),
    (ModbotError, "error: ", EXIT_FAILED),
)


def _said(exc: ModbotError) -> int:
    """Say a modbot error in one sentence on stderr; its exit code."""
    prefix, code = next((p, c) for kind, p, c in _SAID if isinstance(exc, kind))
    fail(f"modbot: {prefix}{exc}")
    return code


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
