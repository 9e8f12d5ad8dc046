"""The command line in-process: help, exit codes, auth login/status/logout, no tracebacks."""

from __future__ import annotations

import argparse
import io
import json
import re
import threading
from collections.abc import Iterator

import httpx
import pytest

import modbot.rules.engine
from modbot.cli import build_parser, lone_error, main, requested_scopes
from modbot.errors import AuditError
from modbot.euler.oauth import TokenStore


def _subcommands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _subcommands(sub, (*prefix, name))


# No MODBOT_ settings from the machine; the working directory is empty.
pytestmark = pytest.mark.usefixtures("isolated")


class BrowserOutput(io.StringIO):
    """Stdout that 'clicks' the authorize URL as soon as the CLI prints it."""

    def __init__(self) -> None:
        super().__init__()
        self.thread: threading.Thread | None = None

    def write(self, text: str) -> int:
        match = re.search(r"(http://\S+/tiktok/oauth/authorize\S+)", text)
        if match and self.thread is None:
            self.thread = threading.Thread(
                target=httpx.get, args=(match.group(1),), kwargs={"follow_redirects": True}
            )
            self.thread.start()
        return super().write(text)


class TestHelp:
    def test_every_command_has_help(self, capsys):
        """`--help` of every command and subcommand exits 0 and explains itself."""
        commands = [(), *_subcommands(build_parser())]
        assert ("auth", "login") in commands
        for command in commands:
            assert main([*command, "--help"]) == 0
            out = capsys.readouterr().out
            assert "usage: modbot" in out
            assert "--state-dir" in out

    def test_version_says_how_the_hot_path_runs(self, capsys):
        """`--version` names the build: pure Python here (the sources), compiled with
        mypyc in CI's wheel (MODBOT_COMPILE=1, checked by .ci/run)."""
        assert main(["--version"]) == 0
        out = capsys.readouterr().out
        assert out.startswith("modbot ")
        expected = (
            "compiled with mypyc" if modbot.rules.engine.__file__.endswith(".so") else "pure Python"
        )
        assert f"({expected})" in out

    def test_unknown_command_is_a_usage_error(self, capsys):
        """A wrong command exits 2 with argparse's one-line usage error."""
        assert main(["frobnicate"]) == 2
        assert "invalid choice" in capsys.readouterr().err


class TestErrors:
    def test_bad_setting_is_one_sentence_and_exit_2(self, capsys, monkeypatch):
        """A broken setting exits 2 with one line naming it, no traceback."""
        monkeypatch.setenv("MODBOT_LIVE_CHECK_INTERVAL", "0")
        assert main(["auth", "status"]) == 2
        err = capsys.readouterr().err
        assert "live_check_interval" in err
        assert "Traceback" not in err
        assert len(err.strip().splitlines()) == 1

    def test_login_without_client_id_names_the_setting(self, capsys, tmp_path):
        """`auth login` with no client_id exits 2 and says how to set it."""
        assert main(["auth", "login", "--state-dir", str(tmp_path)]) == 2
        assert "MODBOT_CLIENT_ID" in capsys.readouterr().err


class TestAuth:
    def test_scopes_default_to_what_rule_actions_need(self):
        """Without --scopes, login asks for live checks plus what the rules' actions need."""
        assert requested_scopes(None, {"mute", "reply", "log"}) == [
            "webcast:bulk_live_check",
            "webcast:chat",
            "webcast:mute",
        ]
        assert requested_scopes(None, {"ban", "comments", "warn"}) == [
            "webcast:ban",
            "webcast:bulk_live_check",
            "webcast:chat",
            "webcast:comments",
        ]
        assert requested_scopes(["webcast:live_check,webcast:mute", "webcast:mute"]) == [
            "webcast:bulk_live_check",
            "webcast:mute",
        ]

    def test_login_derives_scopes_from_the_rules(self, euler_env, tmp_path):
        """Without --scopes, the authorize URL asks for exactly what the rules' actions need."""
        rules = tmp_path / "rules"
        rules.mkdir()
        (rules / "r.yaml").write_text(
            "version: 1\nrules:\n  - id: r\n    on: comment\n    when: {text.words: spam}\n"
            "    then: [mute 5m, {reply: no spam}]\n"
        )
        state = tmp_path / "state"
        out = BrowserOutput()
        code = main(["auth", "login", "--state-dir", str(state), "--rules", str(rules)], stdout=out)
        assert out.thread is not None
        out.thread.join(5)
        assert code == 0, out.getvalue()
        tokens = TokenStore(state).load()
        assert tokens is not None
        assert tokens.scopes == {"webcast:bulk_live_check", "webcast:chat", "webcast:mute"}

    def test_login_refuses_when_rules_do_not_check(self, euler_env, tmp_path, capsys):
        """Broken rules give no scopes to derive: a clear error, not a guess."""
        rules = tmp_path / "rules"
        rules.mkdir()
        (rules / "r.yaml").write_text("version: 1\nrules:\n  - id: r\n    on: nothing\n")
        assert main(["auth", "login", "--state-dir", str(tmp_path), "--rules", str(rules)]) == 2
        assert "give --scopes" in capsys.readouterr().err

    def test_status_when_logged_out(self, tmp_path):
        """`auth status` with no grant exits 1 and says how to log in."""
        out = io.StringIO()
        assert main(["auth", "status", "--state-dir", str(tmp_path)], stdout=out) == 1
        assert "modbot auth login" in out.getvalue()

    def test_login_status_logout(self, euler_env, tmp_path):
        """Login stores a 0600 grant, status shows scopes and actions without a token, logout revokes."""
        state = tmp_path / "state"
        out = BrowserOutput()
        code = main(
            [
                "auth",
                "login",
                "--state-dir",
                str(state),
                "--scopes",
                "webcast:mute webcast:chat",
                "--timeout",
                "20",
            ],
            stdout=out,
        )
        assert out.thread is not None
        out.thread.join(5)
        assert code == 0, out.getvalue()
        assert "Logged in" in out.getvalue()
        tokens = TokenStore(state).load()
        assert tokens is not None
        assert tokens.scopes == {"webcast:mute", "webcast:chat"}

        status = io.StringIO()
        assert main(["auth", "status", "--state-dir", str(state), "--json"], stdout=status) == 0
        info = json.loads(status.getvalue())
        assert info["scopes"] == ["webcast:chat", "webcast:mute"]
        assert info["actions"] == {
            "mute": True,
            "ban": False,
            "reply": True,
            "warn": True,
            "comments": False,
            "log": True,
        }
        human = io.StringIO()
        assert main(["auth", "status", "--state-dir", str(state)], stdout=human) == 0
        for secret in (tokens.access_token, tokens.refresh_token):
            assert secret.get_secret_value() not in status.getvalue() + human.getvalue()
        assert "NOT allowed" in human.getvalue()

        bye = io.StringIO()
        assert main(["auth", "logout", "--state-dir", str(state)], stdout=bye) == 0
        assert not (state / "tokens.json").exists()
        assert not euler_env.refresh_valid(tokens.refresh_token.get_secret_value())
        assert not euler_env.token_valid(tokens.access_token.get_secret_value())

    def test_logout_when_euler_is_down_still_forgets(self, tmp_path, monkeypatch, capsys):
        """If revocation fails, the local tokens are deleted anyway and the exit code is 1."""
        from pydantic import SecretStr

        from modbot.euler.tokens import TokenSet
        from modbot.loopback import bind_loopback

        sock = bind_loopback()
        port = sock.getsockname()[1]
        sock.close()
        monkeypatch.setenv("MODBOT_API_BASE_URL", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("MODBOT_CLIENT_ID", "cid")
        monkeypatch.setenv("MODBOT_CLIENT_SECRET", "csecret-123")
        monkeypatch.setenv("MODBOT_MAX_ATTEMPTS", "1")
        store = TokenStore(tmp_path)
        store.save(TokenSet(SecretStr("at-xyz1"), SecretStr("rt-xyz2"), 2e9, None))
        assert main(["auth", "logout", "--state-dir", str(tmp_path)]) == 1
        assert not store.path.exists()
        assert "could not revoke" in capsys.readouterr().err


def test_a_modbot_error_that_ends_the_daemons_task_groups_is_reported_alone() -> None:
    """`modbot run` reports it as one sentence; a group with anything else is left whole."""
    error = AuditError("cannot write to the audit database x: database is corrupt")
    nested = BaseExceptionGroup("outer", [ExceptionGroup("inner", [error])])
    assert lone_error(nested) is error
    assert lone_error(ExceptionGroup("both", [error, ValueError("bug")])) is None
    assert lone_error(ExceptionGroup("bug", [ValueError("bug")])) is None
