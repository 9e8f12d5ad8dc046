"""Shared fixtures: the asyncio backend, a fake clock, and the fake Euler server on loopback."""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog

from modbot.cli import main
from modbot.euler.client import EulerClient
from modbot.euler.oauth import OAuthClientConfig, TokenManager, TokenStore
from modbot.euler.policy import RetryPolicy
from modbot.fake.clock import FakeClock
from modbot.fake.server import FakeEuler
from modbot.log import SECRETS
from modbot.loopback import LoopbackServer, serve
from tests.helpers import REPO, fake_and_portal


@pytest.fixture
def anyio_backend() -> str:
    """aiosqlite is asyncio-only, so the whole program (and every test) runs on asyncio."""
    return "asyncio"


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """Each test starts with structlog's defaults, no bound context and no registered secrets."""
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    SECRETS.clear()
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    SECRETS.clear()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> FakeEuler:
    """A fake Euler service with one streamer, live."""
    service = FakeEuler(clock=clock)
    service.add_streamer("host_handle", live=True, nickname="The Host")
    return service


@pytest.fixture
async def fake_server(fake: FakeEuler) -> AsyncIterator[LoopbackServer]:
    """The fake service served over real HTTP and WebSocket on a loopback port."""
    async with serve(fake.app) as server:
        yield server


class SleepRecorder:
    """Records the waits the client asks for instead of sleeping (the clock is injected)."""

    def __init__(self, clock: FakeClock) -> None:
        self.waits: list[float] = []
        self._clock = clock

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self._clock.advance(seconds)


@pytest.fixture
def sleeps(clock: FakeClock) -> SleepRecorder:
    return SleepRecorder(clock)


@pytest.fixture
def token_store(tmp_path: Path) -> TokenStore:
    return TokenStore(tmp_path / "state")


@pytest.fixture
def tokens(fake: FakeEuler, token_store: TokenStore, clock: FakeClock) -> TokenManager:
    """A stored grant with every moderation scope, managed like the daemon does."""
    from modbot.euler.tokens import token_set_from_answer

    answer = fake.issue_tokens(
        [
            "webcast:bulk_live_check",
            "webcast:chat",
            "webcast:mute",
            "webcast:ban",
            "webcast:comments",
            "webcast:moderators",
            "user:info",
        ]
    )
    token_store.save(token_set_from_answer(answer, clock.now().timestamp()))
    return TokenManager(
        token_store,
        OAuthClientConfig(fake.client_id, fake.client_secret),
        clock=clock,
    )


@pytest.fixture
async def client(
    fake: FakeEuler,
    fake_server: LoopbackServer,
    tokens: TokenManager,
    clock: FakeClock,
    sleeps: SleepRecorder,
) -> AsyncIterator[EulerClient]:
    """An EulerClient on the fake server, with the grant above and recorded sleeps."""
    async with EulerClient(
        fake_server.url,
        fake.api_key,
        tokens=tokens,
        clock=clock,
        sleep=sleeps,
        jitter=lambda: 0.5,
        retry=RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=8.0, max_wait=30.0),
    ) as api:
        tokens.bind(api)
        yield api


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No MODBOT_ settings from the machine; the working directory is empty."""
    for name in list(os.environ):
        if name.startswith("MODBOT_") or name in ("CREDENTIALS_DIRECTORY", "STATE_DIRECTORY"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def euler_env(monkeypatch: pytest.MonkeyPatch):
    """A fake Euler in a thread, and the settings that point modbot at it."""
    fake = FakeEuler(api_key="cli-api-key-0001", client_secret="cli-client-secret-0002")
    fake.add_streamer("host_handle", live=True)
    with fake_and_portal(fake) as (server, portal):
        fake.portal = portal  # type: ignore[attr-defined]  # for tests that drive the fake
        monkeypatch.setenv("MODBOT_API_BASE_URL", server.url)
        monkeypatch.setenv("MODBOT_WS_URL", server.ws_url)
        monkeypatch.setenv("MODBOT_AUTHORIZE_URL", f"{server.url}/tiktok/oauth/authorize")
        monkeypatch.setenv("MODBOT_API_KEY", fake.api_key)
        monkeypatch.setenv("MODBOT_CLIENT_ID", fake.client_id)
        monkeypatch.setenv("MODBOT_CLIENT_SECRET", fake.client_secret)
        yield fake


@dataclass(frozen=True)
class DemoRun:
    """One `modbot demo -q` of the whole scripted stream, and the state directory it left."""

    code: int
    state: Path
    text: str

    def copy_to(self, where: Path) -> Path:
        """A copy of the state directory (modes kept) for a test to act on."""
        return Path(shutil.copytree(self.state, where))


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """`modbot demo --speed 6 -q`, played once for the tests that read or act on what it
    leaves (about 9 s a run); run like `isolated`: no MODBOT_ settings, an empty cwd."""
    home = tmp_path_factory.mktemp("demo-run")
    state = home / "demo"
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("MODBOT_") or name in ("CREDENTIALS_DIRECTORY", "STATE_DIRECTORY"):
                patch.delenv(name)
        patch.chdir(home)
        argv = ["demo", "--state-dir", str(state), "--rules", str(REPO / "rules")]
        code = main([*argv, "--speed", "6", "--duration", "40", "-q"], stdout=out)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    SECRETS.clear()
    return DemoRun(code, state, out.getvalue())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The suite runs on every core (pytest-xdist, ``--dist loadgroup``): the tests that
    read the one session demo run go to one worker, so the demo is played once, not
    once per worker."""
    for item in items:
        if "demo_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("demo_run"))
