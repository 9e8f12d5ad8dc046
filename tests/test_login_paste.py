"""`modbot auth login --paste` end to end: the pasted address comes on stdin (issue 20, item 4)."""

from __future__ import annotations

import io
import re
import sys
import threading
from collections.abc import Callable

import httpx
import pytest

from modbot.cli import main
from modbot.euler.oauth import TokenStore

pytestmark = pytest.mark.usefixtures("isolated")


class Streamer(io.StringIO):
    """Stdout: when the CLI prints the authorize URL, the streamer approves on 'another
    device' (the redirect is not followed: nothing listens) and the address the
    browser was sent to, changed by ``edit``, becomes the operator's line on stdin."""

    def __init__(self, edit: Callable[[str], str] = lambda address: address + "\n") -> None:
        super().__init__()
        self.edit = edit
        self.pasted = threading.Event()
        self.line = ""
        self.stdin = _Stdin(self)

    def write(self, text: str) -> int:
        match = re.search(r"(http://\S+/tiktok/oauth/authorize\S+)", text)
        if match and not self.pasted.is_set():
            answer = httpx.get(match.group(1), follow_redirects=False)
            self.line = self.edit(answer.headers["location"])
            self.pasted.set()
        return super().write(text)


class _Stdin:
    """The operator's side: the line they paste, once the URL was shown."""

    def __init__(self, streamer: Streamer) -> None:
        self.streamer = streamer

    def readline(self, limit: int = -1) -> str:
        assert self.streamer.pasted.wait(10)
        line = self.streamer.line
        return line[:limit] if limit >= 0 else line


def _login(monkeypatch, state, streamer: Streamer, *extra: str) -> int:
    monkeypatch.setattr(sys, "stdin", streamer.stdin)
    args = ["auth", "login", "--paste", "--state-dir", str(state), "--scopes", "webcast:mute"]
    return main([*args, *extra], stdout=streamer)


def test_paste_logs_in(euler_env, tmp_path, monkeypatch):
    state = tmp_path / "state"
    out = Streamer()
    assert _login(monkeypatch, state, out, "--port", "8799") == 0, out.getvalue()
    text = out.getvalue()
    assert "Open this URL on any device" in text
    assert "redirect_uri=http%3A%2F%2F127.0.0.1%3A8799%2Fcallback" in text
    assert "paste it here" in text
    assert "Logged in" in text
    tokens = TokenStore(state).load()
    assert tokens is not None
    assert tokens.scopes == {"webcast:mute"}


def test_pasted_wrong_state_is_one_sentence(euler_env, tmp_path, monkeypatch, capsys):
    out = Streamer(edit=lambda a: re.sub(r"state=[^&]+", "state=forged", a) + "\n")
    assert _login(monkeypatch, tmp_path / "state", out) == 1
    err = capsys.readouterr().err
    assert err == (
        "modbot: error: the pasted address is not Euler's answer to this login (its state "
        "does not match the URL printed above); nothing was stored\n"
    )
    assert TokenStore(tmp_path / "state").load() is None


def test_pasted_error_is_one_sentence(euler_env, tmp_path, monkeypatch, capsys):
    euler_env.deny_authorization = True
    assert _login(monkeypatch, tmp_path / "state", Streamer()) == 1
    err = capsys.readouterr().err
    assert err == (
        "modbot: error: the streamer did not grant access on Euler's page; nothing was stored\n"
    )


def test_end_of_input_is_one_sentence(euler_env, tmp_path, monkeypatch, capsys):
    assert _login(monkeypatch, tmp_path / "state", Streamer(edit=lambda _a: "")) == 1
    err = capsys.readouterr().err
    assert err == (
        "modbot: error: the input ended before an address was pasted; nothing was stored\n"
    )
    assert "Traceback" not in err
