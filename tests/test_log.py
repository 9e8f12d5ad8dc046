"""Logging: JSON off a terminal, and secrets masked on every path into a log line."""

from __future__ import annotations

import io
import json
import logging
import time

import structlog

from modbot.log import (
    REDACTED,
    SECRETS,
    configure,
    redact_secrets,
    register_secret,
    scrub,
    wants_json,
)


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


class TestSecretSlots:
    """The registry stays small however often tokens rotate (review: 17,520 registered
    tokens, a year of hourly refreshes, made scrub() of a 200-character line take 11 ms)."""

    def test_six_weeks_of_hourly_refreshes_keep_two_grants_and_scrub_fast(self):
        register_secret("KNOWN-API-KEY-7f3a9c", "KNOWN-CLIENT-SECRET-41b2")
        for hour in range(1_000):
            register_secret(f"access-{hour:06d}", f"refresh-{hour:06d}", slot="grant")
        assert len(SECRETS) == 2 + 4  # the static two, this grant and the one before
        line = "x" * 150 + " access-000999 refresh-000998 KNOWN-API-KEY-7f3a9c"
        started = time.perf_counter()
        for _ in range(100):
            scrubbed = scrub(line)
        took = (time.perf_counter() - started) / 100
        assert scrubbed == "x" * 150 + f" {REDACTED} {REDACTED} {REDACTED}"
        assert took < 0.001, f"{took * 1000:.2f} ms a line"

    def test_the_previous_generation_is_still_scrubbed_and_the_one_before_is_dropped(self):
        register_secret("access-one", "refresh-one", slot="grant")
        register_secret("access-two", "refresh-two", slot="grant")
        assert scrub("old access-one, new access-two") == f"old {REDACTED}, new {REDACTED}"
        register_secret("access-three", "refresh-three", slot="grant")
        assert scrub("access-one access-two access-three") == f"access-one {REDACTED} {REDACTED}"

    def test_registering_the_same_values_again_keeps_the_previous_generation(self):
        """The token file is read again (a newer grant on disk?): not a new generation."""
        register_secret("access-one", "refresh-one", slot="grant")
        register_secret("access-two", "refresh-two", slot="grant")
        register_secret("access-two", "refresh-two", slot="grant")
        register_secret("refresh-two", slot="grant")  # a part of the current grant
        assert scrub("access-one") == REDACTED

    def test_static_values_and_other_slots_are_kept_whatever_a_slot_does(self):
        register_secret("KNOWN-API-KEY-7f3a9c")
        register_secret("KNOWN-CLIENT-SECRET-41b2", "spent-refresh-0", slot="refresh")
        for n in range(10):
            register_secret(f"access-{n}", f"refresh-{n}", slot="grant")
        line = "KNOWN-API-KEY-7f3a9c KNOWN-CLIENT-SECRET-41b2 spent-refresh-0"
        assert scrub(line) == f"{REDACTED} {REDACTED} {REDACTED}"

    def test_the_longest_secret_is_cut_whole_where_one_contains_another(self):
        register_secret("abcd-1234")
        register_secret("abcd-1234-efgh-5678", slot="grant")
        assert scrub("<abcd-1234-efgh-5678>") == f"<{REDACTED}>"
        assert scrub("<abcd-1234>") == f"<{REDACTED}>"

    def test_values_with_pattern_characters_are_matched_as_text(self):
        register_secret("a.b*c+d(e", slot="grant")
        assert scrub("x a.b*c+d(e y aXbbbcdde") == f"x {REDACTED} y aXbbbcdde"
