"""Logging: JSON off a terminal, and secrets masked on every path into a log line."""

from __future__ import annotations

import io
import json
import logging

import structlog

from modbot.log import REDACTED, configure, redact_secrets, register_secret, wants_json


class TestFormat:
    def test_json_when_not_a_terminal(self):
        """On a pipe (the journal), each line is one JSON object with level and time."""
        out = io.StringIO()
        configure("auto", stream=out)
        structlog.get_logger().info("hello", streamer="host")
        line = json.loads(out.getvalue().strip())
        assert line["event"] == "hello"
        assert line["level"] == "info"
        assert line["streamer"] == "host"
        assert "timestamp" in line

    def test_console_when_asked(self):
        """--log-format console renders for people, not as JSON."""
        out = io.StringIO()
        configure("console", stream=out)
        structlog.get_logger().info("hello", streamer="host")
        text = out.getvalue()
        assert "hello" in text
        assert not text.lstrip().startswith("{")

    def test_systemd_means_json(self, monkeypatch):
        """Under systemd (JOURNAL_STREAM set) auto means JSON even on a terminal."""

        class Tty(io.StringIO):
            def isatty(self) -> bool:
                return True

        assert not wants_json("auto", Tty())
        monkeypatch.setenv("JOURNAL_STREAM", "8:1234")
        assert wants_json("auto", Tty())

    def test_stdlib_loggers_go_through_the_pipeline(self):
        """httpx's and other libraries' log lines are rendered and redacted the same way."""
        out = io.StringIO()
        configure("json", stream=out)
        register_secret("lib-secret-9876")
        logging.getLogger("somelib").warning("calling with lib-secret-9876")
        line = json.loads(out.getvalue().strip())
        assert "lib-secret-9876" not in out.getvalue()
        assert REDACTED in line["event"]


class TestRedaction:
    def test_secret_keys_are_masked_at_any_depth(self):
        """Keys naming secrets are masked in nested dicts and lists."""
        event = {
            "event": "x",
            "access_token": "a",
            "nested": {"Refresh-Token": "b", "list": [{"client_secret": "c"}]},
            "headers": {"x-api-key": "d", "x-oauth-token": "e", "accept": "json"},
        }
        out = redact_secrets(None, "info", event)
        assert out["access_token"] == REDACTED
        assert out["nested"]["Refresh-Token"] == REDACTED
        assert out["nested"]["list"][0]["client_secret"] == REDACTED
        assert out["headers"]["x-api-key"] == REDACTED
        assert out["headers"]["x-oauth-token"] == REDACTED
        assert out["headers"]["accept"] == "json"

    def test_registered_values_are_cut_from_any_string(self):
        """A registered secret is replaced wherever it appears in text."""
        register_secret("s3cr3t-value")
        out = redact_secrets(None, "info", {"event": "got s3cr3t-value back", "n": 3})
        assert out["event"] == f"got {REDACTED} back"
        assert out["n"] == 3

    def test_url_credentials_are_cut(self):
        """?apiKey=... in a URL is masked even if the value was never registered."""
        out = redact_secrets(None, "info", {"url": "wss://ws.x/?uniqueId=a&apiKey=zzz&b=1"})
        assert out["url"] == f"wss://ws.x/?uniqueId=a&apiKey={REDACTED}&b=1"

    def test_exception_text_is_redacted(self):
        """A traceback that contains a secret is logged without it."""
        out = io.StringIO()
        configure("json", stream=out)
        register_secret("tb-secret-5555")
        try:
            raise RuntimeError("boom tb-secret-5555")
        except RuntimeError:
            structlog.get_logger().exception("failed")
        assert "tb-secret-5555" not in out.getvalue()
        assert "boom" in out.getvalue()
