"""The command line in-process: help, exit codes, auth login/status/logout, no tracebacks."""

from __future__ import annotations

import argparse
import io
import json
import os
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
        """Without --scopes, login asks for what the rules' actions need and what every
        console command needs (moderators, keywords' sensitive words included)."""
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
        assert tokens.scopes == {
            "webcast:bulk_live_check",
            "webcast:chat",
            "webcast:mute",
            # the console's, asked whatever the rules say
            "webcast:ban",
            "webcast:comments",
            "webcast:moderators",
            "webcast:sensitive_words",
            "user:info",
        }

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
        console = info["console"]
        assert console["mute/unmute, mutes"] == {
            "allowed": True,
            "needs": ["webcast:mute"],
            "missing": [],
        }
        assert console["say"]["allowed"] is True
        assert console["moderators"] == {
            "allowed": False,
            "needs": ["webcast:moderators"],
            "missing": ["webcast:moderators"],
        }
        assert console["keywords"]["missing"] == ["webcast:sensitive_words", "user:info"]
        shown = human.getvalue()
        assert "mute/unmute, mutes: yes (webcast:mute)" in shown
        assert "moderators: no (webcast:moderators missing: run `modbot auth login`)" in shown
        assert "ban/unban, bans: no (webcast:ban missing" in shown

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


# --- secrets go only where the operator sent them (review M4) ----------------------------


class Capture:
    """A loopback listener that keeps every byte anyone sends it (the redirected host)."""

    def __init__(self) -> None:
        from modbot.loopback import bind_loopback

        self.sock = bind_loopback()
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.received = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    while chunk := conn.recv(65536):
                        self.received += chunk
                        if b"\r\n\r\n" in self.received:
                            break
                except TimeoutError:
                    pass

    def close(self) -> bytes:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
        return self.received


@pytest.fixture
def capture() -> Iterator[Capture]:
    listener = Capture()
    yield listener
    listener.close()


def _grant(fake, state) -> TokenStore:
    import time

    from modbot.euler.tokens import token_set_from_answer

    store = TokenStore(state)
    answer = fake.issue_tokens(["webcast:mute", "webcast:bulk_live_check"])
    store.save(token_set_from_answer(answer, time.time()))
    return store


def _api_in_a_config_file(monkeypatch, tmp_path) -> str:
    """The fake's URL moved from the environment to a TOML file, which a .env used to
    outrank: where the old code would have taken the .env's host instead."""
    import os

    url = os.environ["MODBOT_API_BASE_URL"]
    monkeypatch.delenv("MODBOT_API_BASE_URL")
    config = tmp_path / "modbot.toml"
    config.write_text(f'api_base_url = "{url}"\n')
    return str(config)


class TestWhereSecretsGo:
    def test_a_dotenv_in_the_working_directory_does_not_redirect_logout(
        self, euler_env, tmp_path, monkeypatch, capture
    ):
        """The review's reproduction: `auth logout` run in a directory whose .env points
        the API at a listener. Nothing reaches the listener; Euler (here the fake) revokes."""
        config = _api_in_a_config_file(monkeypatch, tmp_path)
        (tmp_path / ".env").write_text(
            f"MODBOT_API_BASE_URL={capture.url}\nMODBOT_AUTHORIZE_URL={capture.url}/authorize\n"
        )
        state = tmp_path / "state"
        tokens = _grant(euler_env, state).load()
        assert tokens is not None
        out = io.StringIO()
        assert (
            main(["auth", "logout", "--config", config, "--state-dir", str(state)], stdout=out) == 0
        )
        received = capture.close()
        assert received == b""
        assert not euler_env.refresh_valid(tokens.refresh_token.get_secret_value())
        assert capture.url.removeprefix("http://") not in out.getvalue()

    def test_an_env_file_when_named_is_used_and_its_host_printed(
        self, euler_env, tmp_path, monkeypatch
    ):
        import os

        url = os.environ["MODBOT_API_BASE_URL"]
        monkeypatch.delenv("MODBOT_API_BASE_URL")
        env = tmp_path / "modbot.env"
        env.write_text(f"MODBOT_API_BASE_URL={url}\n")
        state = tmp_path / "state"
        tokens = _grant(euler_env, state).load()
        assert tokens is not None

        class Watching(io.StringIO):
            """Notes how many revoke calls the fake had seen when the host was printed."""

            seen: int | None = None

            def write(self, text: str) -> int:
                if "Sending credentials to" in text and self.seen is None:
                    self.seen = len(euler_env.calls_to("revoke"))
                return super().write(text)

        out = Watching()
        args = ["auth", "logout", "--env-file", str(env), "--state-dir", str(state)]
        assert main(args, stdout=out) == 0
        host = url.removeprefix("http://")
        line = next(x for x in out.getvalue().splitlines() if x.startswith("Sending"))
        assert line.startswith(f"Sending credentials to {host}, which is NOT Euler's API host ")
        assert "api.eulerstream.com" in line
        assert out.seen == 0  # said before anything was sent
        assert len(euler_env.calls_to("revoke", ok_only=True)) == 2
        assert not euler_env.token_valid(tokens.access_token.get_secret_value())

    def test_a_world_readable_env_file_with_a_secret_is_refused(self, tmp_path, capsys):
        env = tmp_path / "modbot.env"
        env.write_text("MODBOT_CLIENT_SECRET=cs-very-secret-0001\n")
        env.chmod(0o644)
        assert main(["auth", "status", "--env-file", str(env), "--state-dir", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert "readable by others" in err
        assert "cs-very-secret-0001" not in err

    def test_status_and_login_name_the_host(self, euler_env, tmp_path):
        state = tmp_path / "state"
        out = BrowserOutput()
        args = ["auth", "login", "--state-dir", str(state), "--scopes", "webcast:mute"]
        code = main(args, stdout=out)
        assert out.thread is not None
        out.thread.join(5)
        assert code == 0, out.getvalue()
        text = out.getvalue()
        assert text.index("Sending credentials to 127.0.0.1:") < text.index("Open this URL")
        assert "The authorize page is on 127.0.0.1:" in text
        status = io.StringIO()
        assert main(["auth", "status", "--state-dir", str(state), "--json"], stdout=status) == 0
        info = json.loads(status.getvalue())
        assert info["api_host"].startswith("127.0.0.1:")
        assert info["api_host_is_euler"] is False
        human = io.StringIO()
        assert main(["auth", "status", "--state-dir", str(state)], stdout=human) == 0
        assert "API host:        127.0.0.1:" in human.getvalue()
        assert "NOT Euler's API host api.eulerstream.com" in human.getvalue()

    def test_the_default_host_is_named_plainly(self, tmp_path):
        from pydantic import SecretStr

        from modbot.euler.tokens import TokenSet

        TokenStore(tmp_path).save(TokenSet(SecretStr("at-xyz1"), SecretStr("rt-xyz2"), 2e9, None))
        out = io.StringIO()
        assert main(["auth", "status", "--state-dir", str(tmp_path)], stdout=out) == 0
        assert "API host:        api.eulerstream.com (Euler's API)" in out.getvalue()

    def test_plain_http_to_another_host_is_refused(self, tmp_path, monkeypatch, capsys):
        monkeypatch.setenv("MODBOT_API_BASE_URL", "http://api.example.com")
        assert main(["auth", "logout", "--state-dir", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert "accepted only for a loopback host" in err
        assert "api.example.com" not in err


# --- terminal output of viewer and API text (review L3 b, c) -----------------------------


def test_replay_text_output_shows_viewer_text_inert(tmp_path):
    """Each hostile payload as a handle, nickname and comment: one plain line per decision."""
    from modbot.rules.text import find_links
    from tests.hostile import PAYLOADS, raw_invisible

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(
        "version: 1\nrules:\n  - id: spam\n    on: comment\n    when: {text.words: spam}\n"
        '    then: [mute 5m, {reply: "stop it @{user.unique_id}"}]\n'
    )
    lines = [
        json.dumps(
            {
                "kind": "comment",
                "ts": f"2026-11-24T20:00:{i:02d}.000Z",
                "streamer": "host",
                "room_id": "7300000000000000001",
                "msg_id": f"73{i:012d}",
                "user": {
                    "user_id": f"680000000000000{i:04d}",
                    "unique_id": "v" + payload,
                    "nickname": "n" + payload,
                },
                "text": "spam " + payload,
            }
        )
        for i, payload in enumerate(PAYLOADS.values())
    ]
    events = tmp_path / "e.jsonl"
    events.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = io.StringIO()
    assert main(["replay", str(events), "--rules", str(rules)], stdout=out) == 0
    text = out.getvalue()
    assert raw_invisible(text, allowed="\n") == []
    # A mute and a reply each, no forged line; a reply whose handle holds a link is not
    # said (the speech check: the bot never posts a viewer's link).
    linked = [p for p in PAYLOADS.values() if find_links("stop it @v" + p)]
    assert linked == [PAYLOADS["osc8_link"]]
    assert len(text.splitlines()) == 2 * len(PAYLOADS) - len(linked)
    assert all(line.startswith("2026-11-24T20:00:") for line in text.splitlines())


def _seed(state, entries) -> list[int]:
    from datetime import UTC, datetime

    import anyio

    from modbot.audit.store import AuditStore, default_db

    async def write() -> list[int]:
        async with AuditStore.open(default_db(state)) as store:
            ids = await store.add(entries, datetime.now(UTC))
        return [i for i in ids if i is not None]

    return anyio.run(write)


def _entry(action: str, **fields: object):
    from datetime import UTC, datetime

    from modbot.audit.store import NewEntry

    base: dict[str, object] = {
        "ts": datetime.now(UTC),
        "streamer": "host_handle",
        "rule": "slurs",
        "action": action,
        "mode": "enforce",
        "status": "done",
        "room_id": "7300000000000000001",
        "user_id": "6811111111111111111",
        "unique_id": "troll",
        "msg_text": "some text",
    }
    base.update(fields)
    return NewEntry(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name", ["osc_title", "csi_clear", "rlo", "arabic_letter_mark", "tags", "nul", "line_separator"]
)
def test_undo_prints_the_apis_error_inert(euler_env, tmp_path, name):
    from modbot.fake.server import Fault
    from tests.hostile import PAYLOADS, raw_invisible

    state = tmp_path / "state"
    _grant(euler_env, state)
    room = euler_env.streamer("host_handle")
    (ban_id,) = _seed(state, [_entry("ban", room_id=room.room_id)])
    message = "refused " + PAYLOADS[name] + " by policy"
    euler_env.inject("unban", Fault(status=400, body={"code": 400, "message": message}))
    out = io.StringIO()
    assert main(["undo", str(ban_id), "--state-dir", str(state)], stdout=out) == 1
    text = out.getvalue()
    assert "the reversal failed" in text
    assert "by policy" in text
    assert raw_invisible(text, allowed="\n") == []
    assert len(text.splitlines()) == 1


# --- CLI input and the state directory (review L6, L7) -----------------------------------


@pytest.mark.parametrize("since", ["99999999999999999999w", "9999999d", "9" * 400 + "s"])
def test_a_since_out_of_range_is_one_sentence_and_exit_2(tmp_path, capsys, since):
    _seed(tmp_path, [_entry("mute")])
    for argv in (
        ["audit", "--since", since],
        ["audit", "--until", since],
        ["undo", "--rule", "slurs", "--since", since],
    ):
        assert main([*argv, "--state-dir", str(tmp_path)]) == 2, argv
        err = capsys.readouterr().err
        assert "out of range" in err
        assert "Traceback" not in err
        assert len(err.strip().splitlines()) == 1


class TestAuditReadsOnly:
    def test_an_empty_file_is_not_turned_into_a_database(self, tmp_path, capsys):
        empty = tmp_path / "notes.txt"
        empty.write_bytes(b"")
        empty.chmod(0o600)
        assert main(["audit", "--db", str(empty)]) == 1
        err = capsys.readouterr().err
        assert "is not a modbot audit database" in err
        assert empty.read_bytes() == b""
        assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]

    def test_some_other_file_is_left_alone(self, tmp_path, capsys):
        other = tmp_path / "photo.jpg"
        other.write_bytes(b"\xff\xd8\xff\xe0" + b"x" * 5000)
        other.chmod(0o600)
        assert main(["audit", "--db", str(other)]) == 1
        assert "cannot be read" in capsys.readouterr().err
        assert other.read_bytes() == b"\xff\xd8\xff\xe0" + b"x" * 5000

    def test_a_missing_file_is_a_clear_error(self, tmp_path, capsys):
        assert main(["audit", "--db", str(tmp_path / "nope.db")]) == 1
        err = capsys.readouterr().err
        assert "there is no audit database at" in err
        assert not (tmp_path / "nope.db").exists()

    def test_an_audit_database_is_read_not_written(self, tmp_path):
        import sqlite3

        (entry_id,) = _seed(tmp_path, [_entry("mute", params={"duration_s": 60})])
        db = tmp_path / "audit.db"
        before = db.read_bytes()
        out = io.StringIO()
        assert main(["audit", "--state-dir", str(tmp_path), "--format", "json"], stdout=out) == 0
        assert json.loads(out.getvalue())["id"] == entry_id
        assert db.read_bytes() == before
        with sqlite3.connect(db) as con:
            assert con.execute("SELECT count(*) FROM actions").fetchone() == (1,)

    def test_a_database_others_can_read_is_a_warning_and_one_they_can_write_refused(
        self, tmp_path, capsys
    ):
        _seed(tmp_path, [_entry("mute")])
        db = tmp_path / "audit.db"
        db.chmod(0o644)
        assert main(["audit", "--state-dir", str(tmp_path)], stdout=io.StringIO()) == 0
        err = capsys.readouterr().err
        assert f"warning: the audit database {db} has mode 0644: others can read" in err
        db.chmod(0o666)
        assert main(["audit", "--db", str(db)], stdout=io.StringIO()) == 2
        assert f"chmod 600 {db}" in capsys.readouterr().err


STATE_COMMANDS = [
    ["auth", "login", "--scopes", "webcast:mute"],
    ["auth", "status"],
    ["auth", "logout"],
    ["audit"],
    ["undo", "1"],
    ["record", "host_handle", "-o", "out.jsonl", "--duration", "1"],
    ["demo", "--duration", "1"],
]


@pytest.mark.parametrize("mode", [0o1777, 0o777, 0o770, 0o720])
@pytest.mark.parametrize("command", STATE_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_a_state_dir_others_can_write_is_refused_by_every_command(
    euler_env, tmp_path, capsys, command, mode
):
    """Sticky (/tmp-like) or not: others could plant the token file or the audit log."""
    state = tmp_path / "state"
    _grant(euler_env, state)
    _seed(state, [_entry("ban")])
    state.chmod(mode)
    assert main([*command, "--state-dir", str(state)], stdout=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert f"the state directory {state} has mode {mode:04o}" in err
    assert "Traceback" not in err
    assert euler_env.calls == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown needs root")
@pytest.mark.parametrize("command", STATE_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_a_state_dir_another_user_owns_is_refused_by_every_command(
    euler_env, tmp_path, capsys, command
):
    state = tmp_path / "state"
    _grant(euler_env, state)
    _seed(state, [_entry("ban")])
    os.chown(state, 4242, -1)
    assert main([*command, "--state-dir", str(state)], stdout=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert f"the state directory {state} belongs to uid 4242" in err
    assert euler_env.calls == []


def test_a_state_dir_others_can_list_is_a_warning(tmp_path, capsys):
    _seed(tmp_path / "state", [_entry("mute")])
    (tmp_path / "state").chmod(0o755)
    assert main(["audit", "--state-dir", str(tmp_path / "state")], stdout=io.StringIO()) == 0
    assert "warning: the state directory" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["osc_title", "rlo", "tags", "nul", "line_separator", "newline"])
def test_undo_prints_a_refusal_from_stored_text_inert(euler_env, tmp_path, name):
    """A refusal quotes the audit row (a database from an older modbot, or another tool):
    it reaches the terminal inert too."""
    from tests.hostile import PAYLOADS, raw_invisible

    state = tmp_path / "state"
    _grant(euler_env, state)
    stamp = "2026-11-24T20:10:00Z" + PAYLOADS[name]
    (mute_id,) = _seed(
        state, [_entry("mute", params={"duration_s": 60, "reversed_at_expiry": stamp})]
    )
    out = io.StringIO()
    assert main(["undo", str(mute_id), "--state-dir", str(state)], stdout=out) == 1
    text = out.getvalue()
    assert "already ended at its expiry (2026-11-24T20:10:00Z" in text
    assert raw_invisible(text, allowed="\n") == []
    assert len(text.splitlines()) == 1
