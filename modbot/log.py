"""Structured logging: one ``configure()`` call with a visible processor list.

JSON lines when stdout is not a terminal or when running under systemd (the journal),
a readable console format otherwise. ``redact_secrets`` runs after exceptions are
rendered and before any renderer, so a secret cannot reach a log line by any path:
keys that name secrets are masked wherever they nest, and every registered secret
value (the API key, client secret, access and refresh tokens) is cut out of every
string, tracebacks included; at a depth it does not follow, a value is replaced, not
passed on (it fails closed). The standard library's loggers (httpx, uvicorn,
websockets) are routed through the same pipeline.

The console renderer prints strings as they are, so for it ``make_inert`` writes every
invisible character of every value (ESC and CSI, OSC, C1, bidirectional overrides, NUL,
line separators) as its escape: a viewer's nickname cannot retitle, clear or reorder an
operator's terminal. The JSON renderer escapes all of them already (``ensure_ascii``).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Iterable, MutableMapping
from typing import Any, Literal, TextIO

import structlog
from pydantic import SecretStr
from structlog.typing import EventDict, Processor, WrappedLogger

from modbot.inert import escaped

REDACTED = "[redacted]"
TOO_DEEP = "[redacted: too deep]"
MAX_DEPTH = 20  # nesting _redact follows; anything deeper is replaced whole

_SECRET_KEY = re.compile(
    r"((access|refresh)[_-]?token|api[_-]?key|client[_-]?secret|secret|password|"
    r"authorization|cookie|x-oauth-token|jwt[_-]?key|^token$)",
    re.IGNORECASE,
)
# Secrets that travel in URLs (the Euler WebSocket takes ?apiKey=).
_URL_SECRET = re.compile(
    r"(?i)\b(apiKey|jwtKey|api_key|access_token|refresh_token|client_secret|code)=([^&\s'\"]+)"
)
_MIN_SECRET_LEN = 4


STATIC = "static"  # the slot of values kept for good (the API key, the client secret)


class _SecretRegistry:
    """Values that must never be printed. Thread-safe; values are held as given.

    Values are kept in named slots, so the set stays small however long the daemon
    runs (a grant refreshed hourly registered 17,520 tokens a year, and scrubbing a
    200-character line took 11 ms). The ``static`` slot keeps every value it is given
    (the API key, the client secret: a handful). Any other slot holds the values of
    its last registration and of the one before (a line about the token just replaced
    is still scrubbed); registering the values it holds again changes nothing. All of
    them are matched with one compiled pattern, longest first, built when they change.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._static: frozenset[str] = frozenset()
        self._slots: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
        self._values: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None

    def add(self, *values: str | SecretStr | None, slot: str = STATIC) -> None:
        given = set()
        for value in values:
            raw = value.get_secret_value() if isinstance(value, SecretStr) else value
            if raw and len(raw) >= _MIN_SECRET_LEN:
                given.add(raw)
        with self._lock:
            if slot == STATIC:
                self._static |= given
            else:
                current, _previous = self._slots.get(slot, (frozenset(), frozenset()))
                if not given <= current:
                    self._slots[slot] = (frozenset(given), current)
            self._rebuild()

    def clear(self) -> None:
        with self._lock:
            self._static = frozenset()
            self._slots = {}
            self._rebuild()

    def _rebuild(self) -> None:
        values = set(self._static)
        for current, previous in self._slots.values():
            values |= current | previous
        if values == self._values:
            return
        ordered = sorted(values, key=lambda v: (-len(v), v))
        self._values = frozenset(values)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __len__(self) -> int:
        return len(self._values)

    def scrub(self, text: str, limit: int | None = None) -> str:
        pattern = self._pattern  # one read: a concurrent add() replaces it whole
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
        text = _URL_SECRET.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
        # Cut only now: a secret cut in two by an earlier cut would no longer match.
        return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


SECRETS = _SecretRegistry()


def register_secret(*values: str | SecretStr | None, slot: str = STATIC) -> None:
    """Make sure these values never appear in any log line from now on.

    ``slot`` names what they are (``"grant"``: the access and refresh token in use);
    the values of a slot replace its previous ones, which are kept one generation more.
    Without a slot they are kept for good: only for values that do not change while
    the process runs (the API key, the client secret).
    """
    SECRETS.add(*values, slot=slot)


def scrub(text: str, limit: int | None = None) -> str:
    """``text`` with every registered secret and URL credential replaced, then cut to
    ``limit`` characters (the last an ellipsis) when given. Scrub the whole text this way
    rather than cut it first: a secret cut short is no longer found, and its first
    characters would be kept."""
    return SECRETS.scrub(text, limit)


def _redact(value: Any, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        return TOO_DEEP
    if isinstance(value, str):
        return SECRETS.scrub(value)
    if isinstance(value, SecretStr):
        return REDACTED
    if isinstance(value, MutableMapping):
        return {
            k: (REDACTED if isinstance(k, str) and _SECRET_KEY.search(k) else _redact(v, depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(v, depth + 1) for v in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return SECRETS.scrub(str(value))


def redact_secrets(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """Mask secret-named keys at any depth and cut registered secret values from strings."""
    redacted: EventDict = _redact(event_dict)
    return redacted


def _inert(value: Any, keep: str = "") -> Any:
    if isinstance(value, str):
        return escaped(value, keep)
    if isinstance(value, dict):
        return {_inert(k): _inert(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_inert(v) for v in value]
    return value


def make_inert(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """For the console renderer: every invisible character of every key and value as its
    escape (a traceback keeps its line breaks). Runs after ``redact_secrets``, so every
    value is already a string, number, list or dict."""
    return {
        _inert(k): _inert(v, "\n" if k in ("exception", "stack") else "")
        for k, v in event_dict.items()
    }


def _under_systemd() -> bool:
    return bool(os.environ.get("JOURNAL_STREAM") or os.environ.get("INVOCATION_ID"))


def wants_json(log_format: Literal["auto", "json", "console"], stream: TextIO) -> bool:
    """JSON when asked, or on ``auto`` when not on a terminal or under systemd."""
    if log_format != "auto":
        return log_format == "json"
    return _under_systemd() or not stream.isatty()


def processors(*, json_output: bool) -> list[Processor]:
    """The processor list, shared by structlog and the standard library's loggers."""
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if json_output:
        shared.append(
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        )
    else:
        shared.append(structlog.processors.format_exc_info)
    shared.append(redact_secrets)
    if not json_output:
        shared.append(make_inert)
    return shared


def configure(
    log_format: Literal["auto", "json", "console"] = "auto",
    level: str = "info",
    stream: TextIO | None = None,
) -> None:
    """Set up structlog and route the standard library's logging through it."""
    out = stream or sys.stderr
    json_output = wants_json(log_format, out)
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(colors=out.isatty(), exception_formatter=_plain_exc)
    )
    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[*processors(json_output=json_output), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=processors(json_output=json_output),
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric)
    for noisy in ("httpx", "httpcore", "websockets", "uvicorn", "uvicorn.access", "aiosqlite"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))


def _plain_exc(sio: TextIO, exc_info: Any) -> None:
    structlog.dev.plain_traceback(sio, exc_info)


def get_logger(name: str | None = None, **initial: Any) -> Any:
    """A structlog logger; ``initial`` values are bound to every line it writes."""
    return structlog.get_logger(name, **initial)


def secret_values(values: Iterable[str | SecretStr | None]) -> list[str]:
    """The plain values of secrets, for tests and registries."""
    out = []
    for value in values:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw:
            out.append(raw)
    return out
