"""The log pipeline against hostile text and deep or long secrets (review L3 a, L4)."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest

from modbot.log import TOO_DEEP, configure, get_logger, register_secret, scrub
from tests.hostile import PAYLOADS, raw_invisible

SECRET = "tok_9f8e7d6c5b4a39281706f5e4d3c2b1a0FEDCBA98"  # 40+ characters, like an access token


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_console_log_lines_show_no_raw_control(name: str) -> None:
    """A viewer's nickname in a console log line (structlog, the standard library and a
    traceback) reaches the terminal escaped: ESC, CSI, OSC, C1, RLO, NUL, U+2028 ..."""
    payload = PAYLOADS[name]
    out = io.StringIO()
    configure("console", stream=out)
    log = get_logger("modbot.test")
    log.info("decision", user=payload, nickname=f"a b {payload}", extra={"k": [payload]})
    event = "event text " + payload  # the message itself may hold a viewer's text
    log.info(event)
    logging.getLogger("httpx").warning("stdlib %s", payload)
    try:
        raise ValueError(f"bad answer {payload}")
    except ValueError:
        log.exception("call.failed", user=payload)
    text = out.getvalue()
    # Line breaks are the renderer's own: one per line, and a traceback's (whose last
    # line, the exception's message, is the only place a viewer's newline is kept).
    assert raw_invisible(text, allowed="\n") == []
    lines, _, traceback = text.partition("Traceback (most recent call last):\n")
    assert len(lines.splitlines()) == 4
    assert "FAKE" not in "".join(line.split("]", 1)[0] for line in lines.splitlines())
    assert traceback.startswith("  File ")
    if "\x1b" in payload:
        assert "\\x1b" in text  # shown, not dropped: the operator sees what was sent


def test_console_keeps_plain_text_and_traceback_lines() -> None:
    out = io.StringIO()
    configure("console", stream=out)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        get_logger().exception("failed", user="Zoë 🎉 ناصر")
    text = out.getvalue()
    assert "user=Zoë 🎉 ناصر" in text or "user='Zoë 🎉 ناصر'" in text
    assert "Traceback (most recent call last):\n" in text
    assert "RuntimeError: boom" in text


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_json_log_lines_escape_every_control(name: str) -> None:
    """JSON lines are ASCII (json.dumps ensure_ascii), and the value comes back whole."""
    payload = PAYLOADS[name]
    out = io.StringIO()
    configure("json", stream=out)
    get_logger().info("decision", user=payload)
    logging.getLogger("httpx").warning("stdlib %s", payload)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    for line in lines:
        assert line.isascii()
        assert raw_invisible(line) == []
    assert json.loads(lines[0])["user"] == payload


def _nest(value: Any, levels: int) -> Any:
    for level in range(levels):
        value = {"k": value} if level % 2 else [value]
    return value


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_a_secret_25_levels_deep_is_redacted(log_format: str) -> None:
    """Past the depth _redact follows, a value is replaced, not passed on raw."""
    register_secret(SECRET)
    out = io.StringIO()
    configure(log_format, stream=out)  # type: ignore[arg-type]
    get_logger().info(
        "deep",
        registered=_nest(f"the token is {SECRET}", 25),
        named=_nest({"access_token": "unregistered-value-1234"}, 25),
        shallow=_nest(f"near {SECRET}", 3),
    )
    text = out.getvalue()
    assert SECRET not in text
    assert SECRET[:10] not in text
    assert "unregistered-value-1234" not in text
    assert TOO_DEEP in text
    assert "near [redacted]" in text


def test_a_secret_at_character_286_of_a_long_message_is_cut_whole() -> None:
    """Scrubbed before it is cut: a 40-character token starting at 286 of a message cut
    to 300 left its first 14 characters when the cut came first."""
    register_secret(SECRET)
    message = "e" * 286 + SECRET + " and more text" * 20
    assert message.index(SECRET) == 286
    cut = scrub(message, limit=300)
    assert len(cut) <= 300
    assert cut.endswith("…")
    assert SECRET[:14] not in cut
    assert SECRET[:4] not in cut
    assert "[redacted]" in cut or cut == "e" * 286 + "[redacted]"[:13] + "…"
    assert scrub("short", limit=300) == "short"
    assert scrub(message) == "e" * 286 + "[redacted]" + " and more text" * 20


def test_a_long_log_value_with_a_secret_near_its_end() -> None:
    register_secret(SECRET)
    out = io.StringIO()
    configure("json", stream=out)
    get_logger().info("long", body="x" * 100_000 + SECRET)
    assert SECRET[:8] not in out.getvalue()
