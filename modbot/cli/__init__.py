"""The ``modbot`` command line: ``main(argv) -> int``, callable in-process by tests.

Exit codes: 0 success, 1 the thing checked is bad or the action failed, 2 usage or
configuration error. Expected failures are one sentence on stderr, never a traceback.

The parser is in :mod:`modbot.cli.parser`, the entry points in :mod:`modbot.cli.entry`,
one module per command group (``rules``, ``auth``, ``run``, ``audit``, ``demo``) and the
shared pieces in :mod:`modbot.cli.output` and :mod:`modbot.cli.progress`.
"""

from __future__ import annotations

from modbot.cli.audit import reversal_words
from modbot.cli.auth import requested_scopes
from modbot.cli.entry import audit_main, lone_error, main, os_error
from modbot.cli.output import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from modbot.cli.parser import build_parser, port_number, positive_count, positive_seconds
from modbot.cli.progress import Progress
from modbot.cli.rules import unknown_keys

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Progress",
    "audit_main",
    "build_parser",
    "lone_error",
    "main",
    "os_error",
    "port_number",
    "positive_count",
    "positive_seconds",
    "requested_scopes",
    "reversal_words",
    "unknown_keys",
]
