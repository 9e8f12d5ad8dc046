"""Known secret values never reach a log line, an exception message or a traceback."""

from __future__ import annotations

import io
import json
import stat
import traceback
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from modbot.cli import main
from modbot.errors import ModbotError
from modbot.euler.client import EulerClient
from modbot.euler.oauth import OAuthClientConfig, TokenManager, TokenStore
from modbot.euler.policy import RetryPolicy
from modbot.euler.tokens import token_set_from_answer
from modbot.euler.ws import EulerWebSocket
from modbot.fake.clock import FakeClock
from modbot.fake.server import FakeEuler, Fault
from modbot.log import configure
from modbot.loopback import bind_loopback, serve

API_KEY = "KNOWN-API-KEY-7f3a9c"
CLIENT_SECRET = "KNOWN-CLIENT-SECRET-41b2"


def _texts(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)


async def test_no_secret_in_logs_or_exceptions(tmp_path):
    """Drive 401s, refreshes, 429, 5xx, plan denials, dead tokens and a refused socket; grep all output."""
    clock = FakeClock()
    fake = FakeEuler(api_key=API_KEY, client_secret=CLIENT_SECRET, clock=clock)
    room = fake.add_streamer("host_handle", live=True).room_id
    store = TokenStore(tmp_path)
    answer = fake.issue_tokens(["webcast:mute", "webcast:chat"])
    store.save(token_set_from_answer(answer, clock.now().timestamp()))
    secrets = [API_KEY, CLIENT_SECRET, answer["access_token"], answer["refresh_token"]]

    out = io.StringIO()
    configure("json", level="debug", stream=out)
    errors: list[BaseException] = []

    async def no_sleep(_s: float) -> None:
        await anyio.lowlevel.checkpoint()

    async with serve(fake.app) as server:
        manager = TokenManager(store, OAuthClientConfig(fake.client_id, CLIENT_SECRET), clock=clock)
        async with EulerClient(
            server.url,
            API_KEY,
            tokens=manager,
            clock=clock,
            sleep=no_sleep,
            retry=RetryPolicy(max_attempts=3),
        ) as api:
            manager.bind(api)
            fake.expire_access_tokens()
            await api.mute(room, "6812345678901234568", 60)  # 401 -> refresh -> replay
            rotated = store.load()
            assert rotated is not None
            secrets += [
                rotated.access_token.get_secret_value(),
                rotated.refresh_token.get_secret_value(),
            ]
            fake.inject("mute", Fault(status=429, retry_after=1, times=5))
            fake.inject("chat", Fault(status=500, body={"code": 500, "error": f"boom {API_KEY}"}))
            fake.plan_denied.add("ban")
            for call in (
                api.mute(room, "6812345678901234568", 60),
                api.send_chat(room, "hi"),
                api.ban(room, "6812345678901234568"),
            ):
                with pytest.raises(ModbotError) as info:
                    await call
                errors.append(info.value)
            fake.expire_access_tokens()
            fake.expire_refresh_tokens()
            with pytest.raises(ModbotError) as info:
                await api.unmute(room, "6812345678901234568")
            errors.append(info.value)

        bad = EulerWebSocket(server.ws_url, unique_id="host_handle", api_key=API_KEY + "-wrong")
        with pytest.raises(ModbotError) as info:
            async for _ in bad.bundles():
                pass
        errors.append(info.value)

    sock = bind_loopback()
    port = sock.getsockname()[1]
    sock.close()
    ws = EulerWebSocket(f"ws://127.0.0.1:{port}", unique_id="x", api_key=API_KEY, open_timeout=2)
    with pytest.raises(ModbotError) as info:
        async for _ in ws.bundles():
            pass
    errors.append(info.value)

    logged = out.getvalue()
    assert "euler.retry" in logged
    assert "oauth.refreshed" in logged
    for secret in secrets:
        assert secret not in logged
        for error in errors:
            assert secret not in _texts(error), type(error).__name__


def _stored_bytes(state: Path) -> bytes:
    """Every byte of the audit database (with its WAL, if any)."""
    return b"".join(p.read_bytes() for p in sorted(state.glob("audit.db*")))


@pytest.mark.usefixtures("isolated")
def test_the_demo_leaks_no_secret(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """The demo's generated credentials and tokens reach no output and no audit row."""
    state = tmp_path / "demo"
    out = io.StringIO()
    args = ["demo", "--state-dir", str(state), "--speed", "20", "--duration", "40"]
    assert main([*args, "--log-format", "json"], stdout=out) == 0
    captured = capfd.readouterr()
    marker = json.loads((state / "demo.json").read_text())
    tokens = json.loads((state / "tokens.json").read_text())
    secrets = [
        marker["api_key"],
        marker["client_secret"],
        tokens["access_token"],
        tokens["refresh_token"],
    ]
    stored = _stored_bytes(state)
    assert b"slurword" in stored or b"s.l.u.r" in stored  # the audit log has the chat
    for secret in secrets:
        assert len(secret) > 12
        assert secret not in out.getvalue()
        assert secret not in captured.out + captured.err
        assert secret.encode() not in stored
    for name in ("tokens.json", "demo.json", "audit.db"):
        assert stat.S_IMODE((state / name).stat().st_mode) == 0o600, name


@pytest.mark.usefixtures("isolated")
@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o770, 0o730])
def test_a_state_dir_others_can_write_is_refused(
    euler_env: FakeEuler,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    mode: int,
) -> None:
    """Sticky (like /tmp) or not: others could create the token file before modbot."""
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(mode)
    monkeypatch.setenv("MODBOT_STREAMERS", "host_handle")
    assert main(["run", "--state-dir", str(state)]) == 2
    err = capsys.readouterr().err
    assert f"the state directory {state} has mode {mode:04o}" in err
    assert f"chmod 700 {state}" in err
    assert "Traceback" not in err


@pytest.mark.usefixtures("isolated")
def test_a_world_readable_token_file_is_refused(
    euler_env: FakeEuler,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state = tmp_path / "state"
    TokenStore(state).save(token_set_from_answer(euler_env.issue_tokens(["webcast:ban"]), 0))
    (state / "tokens.json").chmod(0o644)
    monkeypatch.setenv("MODBOT_STREAMERS", "host_handle")
    assert main(["run", "--state-dir", str(state)]) == 2
    err = capsys.readouterr().err
    assert "has mode 0644, readable by others" in err
    assert "chmod 600" in err
