"""TokenManager: one refresh at a time, and a refreshed grant is never lost.

Against the fake Euler server over loopback HTTP: its refresh tokens are single-use, so
a second use of a spent one is an ``invalid_grant`` (the grant would be lost).
"""

from __future__ import annotations

import errno
import json
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from modbot import files
from modbot.errors import BadResponse, ReauthRequired
from modbot.euler.client import EulerClient
from modbot.euler.oauth import (
    OAuthClientConfig,
    SavePatience,
    TokenManager,
    TokenStore,
    grant_unsaved,
)
from modbot.euler.tokens import TokenSet, token_set_from_answer
from modbot.fake.clock import FakeClock
from modbot.fake.server import FakeEuler
from modbot.log import REDACTED, SECRETS, scrub
from modbot.loopback import serve

VIEWER = "7000000000000000001"
WRITE_PRIVATE = files.write_private


class SlowSecondRead(TokenStore):
    """The second read of the token file reads it at once but hands it back only later.

    This is first-run.md's reproduction (a 0.5 s delay of the second read) without the
    sleep: the read waits for ``release``, which the test sets after the refresh.
    Only reads made while ``armed`` count.
    """

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir)
        self.armed = False
        self.reads = 0
        self.release = threading.Event()
        self._count = threading.Lock()

    def load(self) -> TokenSet | None:
        with self._count:
            self.reads += self.armed
            number = self.reads if self.armed else 0
        tokens = super().load()
        if number == 2 and not self.release.wait(5):
            msg = "the refresh never finished"
            raise AssertionError(msg)
        return tokens


def _grant(fake: FakeEuler, clock: FakeClock) -> TokenSet:
    answer = fake.issue_tokens(["webcast:mute", "webcast:bulk_live_check"])
    return token_set_from_answer(answer, clock.now().timestamp())


async def _client(url: str, fake: FakeEuler, manager: TokenManager, clock: FakeClock):
    client = EulerClient(url, fake.api_key, tokens=manager, clock=clock)
    manager.bind(client)
    return client


@pytest.fixture
def store(tmp_path: Path) -> SlowSecondRead:
    return SlowSecondRead(tmp_path / "state")


@pytest.fixture
def manager(fake: FakeEuler, store: SlowSecondRead, clock: FakeClock) -> TokenManager:
    store.save(_grant(fake, clock))
    return TokenManager(
        store,
        OAuthClientConfig(fake.client_id, fake.client_secret),
        clock=clock,
        patience=SavePatience(first=1.0, longest=8.0, log_every=60.0),
    )


@pytest.fixture
async def api(fake, fake_server, manager, clock) -> AsyncIterator[EulerClient]:
    async with await _client(fake_server.url, fake, manager, clock) as client:
        yield client


class TestOneRefreshAtATime:
    async def test_a_late_read_of_the_token_file_never_undoes_a_refresh(
        self, api, fake, manager, store, clock
    ):
        """Two first calls at once, one read delayed past the refresh: one refresh, no relogin.

        Before the fix the late reader stored the old grant over the refreshed one, and
        the next refresh spent the used refresh token: ReauthRequired.
        """
        manager.on_refresh.append(lambda _new: store.release.set())
        store.armed = True
        clock.advance(3600)  # the stored access token has expired
        got: list[str] = []

        async def first_call() -> None:
            got.append(await manager.access_token())

        async with anyio.create_task_group() as tg:
            tg.start_soon(first_call)
            tg.start_soon(first_call)
        store.armed = False
        assert store.reads == 1  # the second caller waited for the first, and read nothing
        assert len(fake.calls_to("token")) == 1
        assert got[0] == got[1]
        assert fake.token_valid(got[0])
        assert await manager.access_token() == got[0]
        stored = store.load()
        assert stored is not None
        assert stored.access_token.get_secret_value() == got[0]

    async def test_many_callers_after_a_401_share_one_refresh(self, api, fake, manager, clock):
        """Calls whose token Euler refused wait for one refresh and all use its token."""
        before = await manager.access_token()
        fake.expire_access_tokens()
        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(manager.refresh_after_rejection, before)
        assert len(fake.calls_to("token")) == 1
        assert fake.token_valid(await manager.access_token())

    async def test_an_older_grant_on_disk_is_never_taken_back(
        self, api, fake, manager, store, clock, monkeypatch
    ):
        """When the refresh token in use is refused, an older file is not 'a new login'."""
        monkeypatch.setattr("modbot.euler.oauth.write_private", _failing(1, errno.ENOSPC))
        clock.advance(3600)
        refreshed = await manager.access_token()  # in memory only: the disk keeps the old
        fake.expire_refresh_tokens()
        fake.expire_access_tokens()
        with pytest.raises(ReauthRequired):
            await manager.refresh_after_rejection(refreshed)
        assert (await manager.current()).access_token.get_secret_value() == refreshed

    async def test_a_login_made_while_running_is_picked_up(self, api, fake, manager, store, clock):
        """A dead refresh token sends the manager to the file: a newer login there is used."""
        old = await manager.access_token()
        fake.expire_refresh_tokens()
        fake.expire_access_tokens()
        clock.advance(10)
        login = _grant(fake, clock)  # `modbot auth login` in another process
        store.save(login)
        new = await manager.refresh_after_rejection(old)
        assert new == login.access_token.get_secret_value()
        assert fake.token_valid(new)


def _failing(times: int, code: int) -> Callable[[Path, bytes], None]:
    """A write_private that fails ``times`` times with ``code``, then writes."""
    left = [times]

    def write(path: Path, data: bytes) -> None:
        if left[0]:
            left[0] -= 1
            raise OSError(code, errno.errorcode[code] + " " + "(injected)")
        WRITE_PRIVATE(path, data)

    return write


class TestTheGrantIsNeverLost:
    async def test_a_full_disk_at_refresh_is_waited_out(
        self, api, fake, manager, store, clock, monkeypatch
    ):
        """ENOSPC at the write of a refreshed grant: used from memory, written later, spent once."""
        monkeypatch.setattr("modbot.euler.oauth.write_private", _failing(3, errno.ENOSPC))
        before = store.load()
        assert before is not None
        room = fake.streamer("host_handle").room_id
        clock.advance(3600)
        with capture_logs() as logs:
            await api.unmute(room, VIEWER)  # refreshes; the write fails
            token = await manager.access_token()
            assert token != before.access_token.get_secret_value()
            assert fake.token_valid(token)
            assert manager.persist_failing == "ENOSPC (injected)"
            assert grant_unsaved(store.path.parent) == "ENOSPC (injected)"
            assert store.load() == before  # the disk still holds the spent grant
            await api.unmute(room, VIEWER)  # the in-memory grant, no new refresh
            for wait in (1, 2, 4):  # each failed try doubles the delay
                clock.advance(wait - 0.01)
                await manager.access_token()
                assert store.load() == before
                clock.advance(0.01)
                await manager.access_token()
        assert manager.persist_failing is None
        assert grant_unsaved(store.path.parent) is None
        stored = store.load()
        assert stored is not None
        assert stored.access_token.get_secret_value() == token
        assert len(fake.calls_to("token")) == 1
        assert [c.status for c in fake.calls_to("unmute")] == [200, 200]
        assert not fake.refresh_valid(before.refresh_token.get_secret_value())
        events = [e["event"] for e in logs if e["event"].startswith("oauth.grant")]
        assert events == ["oauth.grant_unsaved", "oauth.grant_saved"]  # error once, not per try
        assert all(token not in repr(e) for e in logs)

    async def test_a_grant_not_on_disk_is_written_at_the_stop(
        self, api, manager, store, clock, monkeypatch
    ):
        """The disk frees up before the next try is due: the stop's flush writes the grant."""
        failing = _failing(1, errno.ENOSPC)
        monkeypatch.setattr("modbot.euler.oauth.write_private", failing)
        clock.advance(3600)
        token = await manager.access_token()
        assert manager.persist_failing is not None
        assert await manager.flush()  # no retry was due yet; the stop tries anyway
        stored = store.load()
        assert stored is not None
        assert stored.access_token.get_secret_value() == token
        assert await manager.flush()  # nothing left to write

    async def test_a_grant_that_cannot_be_written_at_the_stop_says_so(
        self, api, manager, store, clock, monkeypatch
    ):
        monkeypatch.setattr("modbot.euler.oauth.write_private", _failing(100, errno.ENOSPC))
        clock.advance(3600)
        await manager.access_token()
        with capture_logs() as logs:
            assert not await manager.flush()
        (lost,) = [e for e in logs if e["event"] == "oauth.grant_lost_at_stop"]
        assert "log in again" in lost["message"]

    @pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES, errno.EIO, errno.EDQUOT])
    async def test_any_os_error_on_the_token_file_is_an_outage(
        self, api, manager, store, clock, monkeypatch, code
    ):
        """Read-only, permissions, I/O errors, quota: nothing is raised, the grant is kept."""
        monkeypatch.setattr("modbot.euler.oauth.write_private", _failing(1, code))
        clock.advance(3600)
        token = await manager.access_token()
        assert manager.persist_failing is not None
        clock.advance(1)
        assert await manager.access_token() == token
        assert manager.persist_failing is None
        stored = store.load()
        assert stored is not None
        assert stored.access_token.get_secret_value() == token

    async def test_a_second_refresh_during_the_outage_uses_the_grant_in_memory(
        self, api, fake, manager, store, clock, monkeypatch
    ):
        """The next refresh spends the in-memory refresh token; the newest grant is written."""
        monkeypatch.setattr("modbot.euler.oauth.write_private", _failing(100, errno.ENOSPC))
        clock.advance(3600)
        await manager.access_token()
        clock.advance(3600)
        newest = await manager.access_token()
        assert [c.status for c in fake.calls_to("token")] == [200, 200]
        monkeypatch.setattr("modbot.euler.oauth.write_private", _failing(0, errno.ENOSPC))
        clock.advance(8)
        await manager.access_token()
        stored = store.load()
        assert stored is not None
        assert stored.access_token.get_secret_value() == newest
        assert manager.persist_failing is None

    async def test_the_systemd_status_says_the_grant_is_not_on_disk(
        self, api, manager, store, clock, monkeypatch, isolated
    ):
        """The daemon's STATUS line names the outage while it lasts, and only then."""
        from modbot.config import Settings
        from modbot.daemon import Daemon

        daemon = Daemon(Settings(state_dir=store.path.parent, streamers=["host_handle"]))
        assert "OAuth" not in daemon._status()
        monkeypatch.setattr("modbot.euler.oauth.write_private", _failing(1, errno.ENOSPC))
        clock.advance(3600)
        await manager.access_token()
        assert daemon._status().startswith(
            "OAuth grant not on disk (ENOSPC (injected)), retrying; 0/0 streams live"
        )
        clock.advance(1)
        await manager.access_token()
        assert "OAuth" not in daemon._status()

    async def test_a_long_outage_logs_periodically(self, api, manager, clock, monkeypatch):
        """An error at the first failure, then one per log_every, not one per try."""
        monkeypatch.setattr("modbot.euler.oauth.write_private", _failing(1000, errno.ENOSPC))
        clock.advance(3600)
        with capture_logs() as logs:
            await manager.access_token()
            for _ in range(30):  # 30 tries, 8 s apart at most: about 200 s
                clock.advance(8)
                await manager.access_token()
        errors = [e for e in logs if e["event"] == "oauth.grant_unsaved"]
        assert 3 <= len(errors) <= 5
        assert errors[-1]["waited"] > 120


def _edit_token_answers(app: Any, edit: Callable[[bytes], bytes]) -> Any:
    """The fake's app, with the body of every token answer changed by ``edit``."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/tiktok/oauth/token":
            await app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: Any) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = edit(b"".join(chunks))
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", b"%d" % len(body))]})
            await send({"type": "http.response.body", "body": body})

        await app(scope, receive, capture)

    return wrapped


def _expires_in(text: str) -> Callable[[bytes], bytes]:
    def edit(body: bytes) -> bytes:
        data = json.loads(body)
        placeholder = "__EXPIRES__"
        data["data"]["expires_in"] = placeholder
        return json.dumps(data).replace(f'"{placeholder}"', text).encode()

    return edit


class TestAbsurdRefreshAnswers:
    @pytest.mark.parametrize("value", ["NaN", "Infinity", "1e400", "-5", "true", "1e12"])
    async def test_the_grant_in_use_is_kept_while_it_works(
        self, fake, manager, store, clock, value
    ):
        """An unusable refresh answer: the still-valid grant stays, loudly; not replaced."""
        async with (
            serve(_edit_token_answers(fake.app, _expires_in(value))) as server,
            await _client(server.url, fake, manager, clock),
        ):
            before = await manager.access_token()
            clock.advance(3600 - 60)  # 60 s left: a refresh is due
            with capture_logs() as logs:
                assert await manager.access_token() == before
                assert await manager.access_token() == before  # not retried at once
            assert [e["event"] for e in logs] == ["oauth.refresh_answer_refused"]
            assert logs[0]["log_level"] == "error"
            assert "log in again" in logs[0]["message"]
            assert len(fake.calls_to("token")) == 1
            stored = store.load()
            assert stored is not None
            assert stored.access_token.get_secret_value() == before
            assert (await manager.current()).expires_at == stored.expires_at

    async def test_an_expired_grant_is_not_pretended_valid(self, fake, manager, store, clock):
        """With the old access token expired, the refused answer is the caller's BadResponse."""
        async with (
            serve(_edit_token_answers(fake.app, _expires_in("NaN"))) as server,
            await _client(server.url, fake, manager, clock),
        ):
            clock.advance(3600)
            with pytest.raises(BadResponse, match="expires_in"):
                await manager.access_token()
            stored = store.load()
            assert stored is not None
            assert stored.expires_at == (await manager.current()).expires_at

    async def test_a_header_breaking_token_in_an_answer_is_refused(
        self, fake, manager, store, clock
    ):
        """An access token with CR LF never becomes the grant (it would forge a header)."""

        def edit(body: bytes) -> bytes:
            data = json.loads(body)
            data["data"]["access_token"] = "tok\r\nX-Evil: 1"
            return json.dumps(data).encode()

        async with (
            serve(_edit_token_answers(fake.app, edit)) as server,
            await _client(server.url, fake, manager, clock),
        ):
            clock.advance(3600)
            with pytest.raises(BadResponse, match="access_token"):
                await manager.access_token()
            assert "X-Evil" not in (await manager.current()).access_token.get_secret_value()


class TestShortLivedTokens:
    async def test_a_1_second_token_is_not_refreshed_at_every_use(self, fake, manager, clock):
        """expires_in below the 120 s margin made every token use start a refresh: the
        margin is at most half the token's lifetime, so it refreshes when half is gone."""
        async with (
            serve(_edit_token_answers(fake.app, _expires_in("1"))) as server,
            await _client(server.url, fake, manager, clock),
        ):
            clock.advance(3600)  # the stored token has expired: one refresh, to a 1 s token
            first = await manager.access_token()
            for _ in range(20):
                assert await manager.access_token() == first
            assert len(fake.calls_to("token")) == 1
            clock.advance(0.4)
            assert await manager.access_token() == first
            clock.advance(0.1)  # half of its second is gone: due
            second = await manager.access_token()
            assert second != first
            assert await manager.access_token() == second
            assert len(fake.calls_to("token")) == 2

    async def test_an_hour_long_token_keeps_the_full_margin(self, api, fake, manager, clock):
        first = await manager.access_token()
        clock.advance(3600 - 121)
        assert await manager.access_token() == first
        assert fake.calls_to("token") == []
        clock.advance(2)  # 119 s left: within the 120 s margin
        assert await manager.access_token() != first
        assert len(fake.calls_to("token")) == 1


class TestSecretsOfRotatedGrants:
    async def test_many_refreshes_keep_the_secret_registry_small(self, api, fake, manager, clock):
        """Each refresh registered two tokens for good; the registry only grew, and every
        log line was scrubbed against all of them. Now: this grant and the one before."""
        seen: list[str] = [await manager.access_token()]
        for _ in range(30):
            clock.advance(3600)
            seen.append(await manager.access_token())
        assert len(set(seen)) == 31
        assert len(fake.calls_to("token")) == 30
        # For good: the API key and the client secret. This grant and the one before
        # (4), and the refresh token spent for each (one of them is the grant before's).
        assert len(SECRETS) <= 7
        assert scrub(f"{seen[-1]} {seen[-2]}") == f"{REDACTED} {REDACTED}"
