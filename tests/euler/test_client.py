"""The Euler client over real loopback HTTP against the fake server."""

from __future__ import annotations

import json

import httpx
import pytest
from structlog.testing import capture_logs

from modbot.errors import (
    ApiError,
    ApiUnavailable,
    AuthExpired,
    BadResponse,
    NotFound,
    PlanOrScopeDenied,
    RateLimited,
    ReauthRequired,
    RequestRejected,
    ServerError,
)
from modbot.euler.client import EulerClient
from modbot.euler.oauth import TokenStore
from modbot.euler.policy import RetryPolicy
from modbot.euler.ws import EulerWebSocket
from modbot.fake.clock import FakeClock
from modbot.fake.server import Fault
from modbot.log import register_secret
from tests.conftest import SleepRecorder
from tests.euler import test_transport as raw

VIEWER = "6812345678901234999"  # above 2^53: must stay exact


class TestRoutes:
    async def test_user_id_resolves_a_handle_to_its_numeric_id(self, client, fake):
        """A handle is resolved to the exact numeric user id, sent with the API key only."""
        assert await client.user_id("host_handle") == fake.streamer("host_handle").user_id
        call = fake.calls[-1]
        assert call.route == "user_id"
        assert call.api_key_ok
        assert not call.sent_token

    async def test_a_base_url_with_a_slash_or_a_path_prefix_joins_as_httpx_would(self, fake):
        """The client sends to its transport directly: BASE + route path, one slash
        between (a trailing slash on the setting is not doubled), query and headers."""
        seen: list[httpx.Request] = []

        async def record(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(200, json={"code": 200, "numeric_user_id": "42"})

        for base in ("http://euler.test/", "http://euler.test/prefix"):
            transport = httpx.MockTransport(record)
            async with EulerClient(base, fake.api_key, transport=transport) as api:
                assert await api.user_id("host_handle") == "42"
        assert [str(r.url) for r in seen] == [
            "http://euler.test/webcast/anchors/host_handle/user_id",
            "http://euler.test/prefix/webcast/anchors/host_handle/user_id",
        ]
        assert all(r.headers["x-api-key"] == fake.api_key for r in seen)
        assert all(r.headers["user-agent"].startswith("modbot/") for r in seen)
        assert all(r.extensions["timeout"]["read"] == 10.0 for r in seen)

    async def test_room_id_gives_live_flag_and_room(self, client, fake):
        """The room-id route tells whether the handle is live and in which room."""
        status = await client.room_id("host_handle")
        assert status.is_live
        assert status.room_id == fake.streamer("host_handle").room_id

    async def test_unknown_handle_is_not_found(self, client):
        """An unknown handle raises NotFound and is not retried."""
        with pytest.raises(NotFound):
            await client.user_id("nobody_here")

    async def test_bulk_live_check_splits_into_batches_of_50(self, client, fake):
        """120 ids make three calls of at most 50, and every id gets an answer."""
        host = fake.streamer("host_handle")
        offline = fake.add_streamer("sleepy")
        ids = [host.user_id, offline.user_id] + [str(10**18 + i) for i in range(118)]
        result = await client.bulk_live_check(ids)
        calls = fake.calls_to("bulk_live_check")
        assert [len(c.body["user_numeric_ids"]) for c in calls] == [50, 50, 20]
        assert all(c.sent_token for c in calls)
        assert result[host.user_id].is_live
        assert result[host.user_id].room_id == host.room_id
        assert not result[offline.user_id].is_live
        assert result[offline.user_id].room_id is None
        assert len(result) == 120

    async def test_chat_sends_content_as_the_streamer(self, client, fake):
        """A chat message lands in the room with the OAuth token attached."""
        room = fake.streamer("host_handle")
        await client.send_chat(room.room_id, "hello chat")
        assert room.chat == ["hello chat"]
        assert fake.calls[-1].sent_token

    async def test_mute_list_unmute(self, client, fake):
        """Mute takes the API duration and message id; the list shows the exact id; unmute lifts it."""
        room = fake.streamer("host_handle")
        result = await client.mute(room.room_id, VIEWER, 300, comment_msg_id="7301234567890999999")
        assert result.status_code == 0
        call = fake.calls_to("mute")[-1]
        assert call.params == {
            "user_id": VIEWER,
            "duration": "300",
            "comment_msg_id": "7301234567890999999",
        }
        page = await client.list_mutes(room.room_id)
        assert [u.user_id for u in page.users] == [VIEWER]
        await client.unmute(room.room_id, VIEWER)
        assert not room.muted(VIEWER, fake.now())

    async def test_permanent_mute_is_minus_one(self, client, fake):
        """A permanent mute is sent as duration -1 and never expires."""
        room = fake.streamer("host_handle")
        await client.mute(room.room_id, VIEWER, -1)
        assert room.mutes[VIEWER] is None

    async def test_mute_refuses_durations_the_api_does_not_take(self, client, fake):
        """Only 5, 30, 60, 300 and -1 reach the API; anything else is refused before sending."""
        with pytest.raises(ValueError, match="5, 30, 60, 300"):
            await client.mute(fake.streamer("host_handle").room_id, VIEWER, 600)
        assert not fake.calls_to("mute")

    async def test_ban_list_unban(self, client, fake):
        """Ban sends tiktok_user_id, the list reads big ids exactly, unban lifts it."""
        room = fake.streamer("host_handle")
        await client.ban(room.room_id, VIEWER, comment_msg_id="7301234567890999998")
        assert fake.calls_to("ban")[-1].params["tiktok_user_id"] == VIEWER
        page = await client.list_bans(room.room_id)
        assert [u.user_id for u in page.users] == [VIEWER]
        await client.unban(room.room_id, VIEWER)
        assert VIEWER not in room.bans

    async def test_toggle_comments(self, client, fake):
        """Comments go off and back on with enabled=false/true."""
        room = fake.streamer("host_handle")
        await client.toggle_comments(room.room_id, enabled=False)
        assert not room.comments_enabled
        assert fake.calls_to("toggle_comments")[-1].params == {"enabled": "false"}
        await client.toggle_comments(room.room_id, enabled=True)
        assert room.comments_enabled

    async def test_moderators_add_list_remove(self, client, fake):
        """Moderators are managed on the anchor's numeric id with to_user_id."""
        host = fake.streamer("host_handle")
        await client.add_moderator(host.user_id, VIEWER)
        page = await client.list_moderators(host.user_id)
        assert [u.user_id for u in page.users] == [VIEWER]
        await client.remove_moderator(host.user_id, VIEWER)
        assert not host.moderators

    async def test_rate_limits(self, client):
        """The rate-limit route reports minute, hour and day windows."""
        limits = await client.rate_limits()
        assert limits.minute is not None
        assert limits.minute.max is not None
        assert limits.minute.remaining is not None

    async def test_userinfo_names_the_granting_account(self, client, fake):
        """userinfo tells whose grant the token is."""
        info = await client.userinfo()
        assert info.unique_id == "host_handle"
        assert info.user_id == fake.streamer("host_handle").user_id

    async def test_room_id_in_path_must_be_numeric(self, client):
        """A room id that is not a number is refused before any request."""
        with pytest.raises(BadResponse):
            await client.toggle_comments("../accounts", enabled=True)


class TestRetries:
    async def test_429_waits_as_told_then_succeeds(self, client, fake, sleeps: SleepRecorder):
        """A 429 with Retry-After: 2 makes the client wait about 2 s, then the call succeeds."""
        room = fake.streamer("host_handle")
        fake.inject("mute", Fault(status=429, retry_after=2))
        await client.mute(room.room_id, VIEWER, 60)
        assert [c.status for c in fake.calls_to("mute")] == [429, 200]
        assert len(sleeps.waits) == 1
        assert 2.0 <= sleeps.waits[0] < 3.0

    async def test_429_reset_epoch_is_read_as_a_time(self, client, fake, clock, sleeps):
        """A RateLimit-Reset that is an epoch is turned into the seconds until then."""
        fake.inject("rate_limits", Fault(status=429, reset=clock.now().timestamp() + 5))
        await client.rate_limits()
        assert 5.0 <= sleeps.waits[0] < 6.0

    async def test_429_with_a_long_wait_goes_to_the_caller(self, client, fake, sleeps):
        """A Retry-After longer than the client's cap raises RateLimited(retry_after) at once."""
        fake.inject("ban", Fault(status=429, retry_after=120))
        with pytest.raises(RateLimited) as info:
            await client.ban(fake.streamer("host_handle").room_id, VIEWER)
        assert info.value.retry_after == 120
        assert info.value.limit_label == "rate_limit_account_minute"
        assert sleeps.waits == []
        assert len(fake.calls_to("ban")) == 1

    async def test_503_burst_is_retried_within_bounds(self, client, fake, sleeps):
        """Three 503s in a row are retried with growing backoff, and the fourth try succeeds."""
        fake.inject("unmute", Fault(status=503, times=3))
        await client.unmute(fake.streamer("host_handle").room_id, VIEWER)
        assert [c.status for c in fake.calls_to("unmute")] == [503, 503, 503, 200]
        assert sleeps.waits == sorted(sleeps.waits)
        assert all(0 < w <= 8.0 for w in sleeps.waits)

    async def test_endless_5xx_gives_up_after_max_attempts(self, client, fake):
        """A 500 that never ends raises ServerError after the configured number of tries."""
        fake.inject("unban", Fault(status=500, times=-1))
        with pytest.raises(ServerError) as info:
            await client.unban(fake.streamer("host_handle").room_id, VIEWER)
        assert "Internal Server Error" in str(info.value)
        assert len(fake.calls_to("unban")) == 4

    async def test_chat_is_not_replayed_after_a_500(self, client, fake):
        """A 500 on chat may have sent the message, so it is not retried."""
        fake.inject("chat", Fault(status=500))
        with pytest.raises(ServerError):
            await client.send_chat(fake.streamer("host_handle").room_id, "hi")
        assert len(fake.calls_to("chat")) == 1

    async def test_chat_is_replayed_after_a_503(self, client, fake):
        """A 503 means the message was not taken, so chat is retried."""
        room = fake.streamer("host_handle")
        fake.inject("chat", Fault(status=503))
        await client.send_chat(room.room_id, "hi")
        assert room.chat == ["hi"]

    async def test_missing_scope_is_a_typed_error_without_retry(self, client, fake, tokens, clock):
        """A 403 for a missing scope raises PlanOrScopeDenied naming the scope, after one call."""
        from modbot.euler.tokens import token_set_from_answer

        answer = fake.issue_tokens(["webcast:chat"])
        tokens._store.save(token_set_from_answer(answer, clock.now().timestamp()))
        tokens._tokens = None
        with pytest.raises(PlanOrScopeDenied) as info:
            await client.ban(fake.streamer("host_handle").room_id, VIEWER)
        assert info.value.scope == "webcast:ban"
        assert info.value.status == 403
        assert len(fake.calls_to("ban")) == 1

    async def test_plan_denial_is_a_typed_error_without_retry(self, client, fake):
        """Euler's 'premium endpoint' 401 is a plan problem: no refresh, no retry."""
        fake.plan_denied.add("chat")
        with pytest.raises(PlanOrScopeDenied, match="premium"):
            await client.send_chat(fake.streamer("host_handle").room_id, "hi")
        assert len(fake.calls_to("chat")) == 1
        assert not fake.calls_to("token")

    async def test_error_code_inside_http_200_is_an_error(self, client, fake):
        """An envelope code of 403 inside an HTTP 200 raises like a real 403."""
        fake.inject("toggle_comments", Fault(status=403, in_200=True))
        with pytest.raises(PlanOrScopeDenied):
            await client.toggle_comments(fake.streamer("host_handle").room_id, enabled=False)

    async def test_other_4xx_is_never_retried(self, client, fake):
        """A 400 is the request's fault: RequestRejected after exactly one call."""
        fake.inject("mute", Fault(status=400))
        with pytest.raises(RequestRejected):
            await client.mute(fake.streamer("host_handle").room_id, VIEWER, 5)
        assert len(fake.calls_to("mute")) == 1

    async def test_timeouts_are_retried_then_reported(self, fake, fake_server, tokens, clock):
        """A route slower than the timeout is retried, then raises ApiUnavailable."""
        fake.inject("list_bans", Fault(latency=0.5, times=-1))
        waits: list[float] = []

        async def no_sleep(seconds: float) -> None:
            waits.append(seconds)

        async with EulerClient(
            fake_server.url,
            fake.api_key,
            tokens=tokens,
            clock=clock,
            timeout=0.1,
            sleep=no_sleep,
            retry=RetryPolicy(max_attempts=2),
        ) as api:
            tokens.bind(api)
            with pytest.raises(ApiUnavailable, match="timed out"):
                await api.list_bans(fake.streamer("host_handle").room_id)
        assert len(waits) == 1

    async def test_connection_refused_is_api_unavailable(self, clock):
        """Nothing listening: ApiUnavailable after the bounded retries."""
        from modbot.loopback import bind_loopback

        sock = bind_loopback()
        port = sock.getsockname()[1]
        sock.close()
        waits: list[float] = []

        async def no_sleep(seconds: float) -> None:
            waits.append(seconds)

        async with EulerClient(
            f"http://127.0.0.1:{port}",
            "k" * 8,
            clock=clock,
            sleep=no_sleep,
            retry=RetryPolicy(max_attempts=3),
        ) as api:
            with pytest.raises(ApiUnavailable, match="could not reach"):
                await api.user_id("host_handle")
        assert len(waits) == 2


class TestTokenRefresh:
    async def test_401_refreshes_once_then_succeeds(self, client, fake, token_store: TokenStore):
        """An expired access token gets one refresh, the call is replayed, the grant rotates."""
        before = token_store.load()
        assert before is not None
        fake.expire_access_tokens()
        # The manager still thinks the token is fresh (clocks disagree), so Euler's 401 decides.
        await client.toggle_comments(fake.streamer("host_handle").room_id, enabled=False)
        statuses = [(c.route, c.status) for c in fake.calls]
        assert statuses == [("toggle_comments", 401), ("token", 200), ("toggle_comments", 200)]
        after = token_store.load()
        assert after is not None
        assert after.refresh_token != before.refresh_token
        assert not fake.refresh_valid(before.refresh_token.get_secret_value())

    async def test_second_401_after_refresh_raises(self, client, fake):
        """If the fresh token is refused too, AuthExpired is raised after one refresh only."""
        fake.request_hooks.append(
            lambda route, _token: fake.expire_access_tokens() if route == "unmute" else None
        )
        with pytest.raises(AuthExpired):
            await client.unmute(fake.streamer("host_handle").room_id, VIEWER)
        assert [c.route for c in fake.calls] == ["unmute", "token", "unmute"]

    async def test_dead_refresh_token_says_log_in_again(self, client, fake):
        """A refused refresh token raises ReauthRequired telling the streamer to log in."""
        fake.expire_access_tokens()
        fake.expire_refresh_tokens()
        with pytest.raises(ReauthRequired, match="log in again"):
            await client.unmute(fake.streamer("host_handle").room_id, VIEWER)

    async def test_token_is_refreshed_before_expiry(self, client, fake, clock, token_store):
        """Within the refresh margin the token is refreshed before the call, not after a 401."""
        clock.advance(3600 - 60)
        await client.unmute(fake.streamer("host_handle").room_id, VIEWER)
        assert [(c.route, c.status) for c in fake.calls] == [("token", 200), ("unmute", 200)]

    async def test_rotated_refresh_token_is_on_disk_before_use(
        self, client, fake, clock, token_store
    ):
        """When the new access token first reaches Euler, the file already holds its grant."""
        seen: list[bool] = []

        def check(route: str, token: str | None) -> None:
            if route == "unmute" and token is not None:
                stored = token_store.load()
                assert stored is not None
                seen.append(stored.access_token.get_secret_value() == token)

        fake.request_hooks.append(check)
        clock.advance(3600)
        await client.unmute(fake.streamer("host_handle").room_id, VIEWER)
        assert seen == [True]

    async def test_concurrent_calls_share_one_refresh(self, client, fake, clock):
        """Ten calls that all find the token expired cause one refresh, not ten."""
        import anyio

        clock.advance(3600)
        room = fake.streamer("host_handle").room_id
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(client.unmute, room, VIEWER)
        assert len(fake.calls_to("token")) == 1

    async def test_session_route_without_grant_says_log_in(self, fake, fake_server, clock):
        """A moderation call with no OAuth grant at all explains that login is needed."""
        async with EulerClient(fake_server.url, fake.api_key, clock=clock) as api:
            with pytest.raises(AuthExpired, match="modbot auth login"):
                await api.ban(fake.streamer("host_handle").room_id, VIEWER)


class TestMalformedAnswers:
    """Answers a real server rarely produces, through httpx.MockTransport."""

    @staticmethod
    def _client(handler, clock: FakeClock) -> EulerClient:
        return EulerClient(
            "http://euler.test", "key-1234", transport=httpx.MockTransport(handler), clock=clock
        )

    async def test_truncated_json_is_bad_response(self, clock):
        """A 200 whose body is cut off raises BadResponse."""
        async with self._client(
            lambda _r: httpx.Response(200, content=b'{"code": 200, "numeric'), clock
        ) as api:
            with pytest.raises(BadResponse, match="not a JSON object"):
                await api.user_id("x")

    async def test_float_id_is_refused(self, clock):
        """An id that arrives as a float (precision lost) is refused, never rounded."""
        async with self._client(
            lambda _r: httpx.Response(200, json={"code": 200, "numeric_user_id": 6.8e18}), clock
        ) as api:
            with pytest.raises(BadResponse):
                await api.user_id("x")

    async def test_ids_beyond_2_53_stay_exact(self, clock):
        """A JSON number id larger than 2^53 is read digit for digit."""
        big = 7301234567890123457
        async with self._client(
            lambda _r: httpx.Response(200, content=b'{"code":200,"numeric_user_id":%d}' % big),
            clock,
        ) as api:
            assert await api.user_id("x") == str(big)

    async def test_tiktok_refusal_inside_a_success_is_an_error(self, clock, tokens):
        """TikTok's own non-zero status_code inside Euler's 200 raises RequestRejected."""
        body = {"code": 200, "response": {"data": {"data": {}, "extra": {}, "status_code": 40001}}}
        async with self._client(lambda _r: httpx.Response(200, json=body), clock) as api:
            api._tokens = tokens
            with pytest.raises(RequestRejected, match="40001"):
                await api.unmute("1", "2")


def _http(status: int, body: bytes, *headers: bytes) -> bytes:
    head = b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n" % (status, len(body))
    return head + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body


class _Tokens:
    """A token provider that fails as told (a full disk, a bug) or gives ``token``."""

    def __init__(self, fail: BaseException | None = None, token: str = "tok-123") -> None:
        self.fail = fail
        self.token = token
        self.asked = 0

    async def access_token(self) -> str:
        self.asked += 1
        if self.fail is not None:
            raise self.fail
        return self.token

    async def refresh_after_rejection(self, rejected: str) -> str:
        raise OSError(28, "No space left on device")


class TestHostileAnswers:
    """Answers from a scripted loopback server (tests/euler/test_transport.py's) that
    once escaped the client as bare exceptions (review H1, L4, L12)."""

    @pytest.mark.parametrize(
        "body",
        [
            b"[" * 100_000,
            b'{"code":200,"numeric_user_id":' + b"9" * 5000 + b"}",
            b"\xff\xfe not utf-8",
            b"<html>502</html>",
            b'{"code":200,"numeric_user_id":"' + b"1" * 300_000 + b'"}',
        ],
        ids=["deep", "5000-digits", "not-utf8", "not-json", "huge-id"],
    )
    async def test_an_answer_that_is_not_the_json_promised_is_bad_response(self, body):
        async with raw.serve(raw.answering(_http(200, body))) as (url, _), raw.client(url) as api:
            with pytest.raises(BadResponse) as info:
                await api.user_id("host")
        assert type(info.value) is BadResponse

    @pytest.mark.parametrize(
        "value", ["²", "١٢٣", "--1", "+1", " 1", "1 ", "-1", "1" * 20, 1.5, True, -1, 10**19]
    )
    async def test_an_id_that_is_not_ascii_digits_is_bad_response(self, value):
        body = json.dumps({"code": 200, "numeric_user_id": value}).encode()
        async with raw.serve(raw.answering(_http(200, body))) as (url, _), raw.client(url) as api:
            with pytest.raises(BadResponse, match="numeric_user_id must be a numeric id"):
                await api.user_id("host")

    async def test_error_text_is_cleaned_of_surrogates_and_controls(self):
        body = b'{"message":"bad \\ud800 \\u001b[31mred\\u0007 \\u009b2J end"}'
        async with raw.serve(raw.answering(_http(400, body))) as (url, _), raw.client(url) as api:
            with pytest.raises(RequestRejected) as info:
                await api.user_id("host")
        text = str(info.value)
        assert text.endswith("bad \ufffd [31mred 2J end")
        text.encode()  # storable: no lone surrogate left

    async def test_a_secret_echoed_past_the_cut_is_scrubbed_before_it(self):
        """The API echoed the token at character 286: 14 of its 40 characters once
        reached the error (scrubbed after the cut). Now nothing of it does."""
        secret = "S3CRET-" + "x" * 26 + "-END-OF"  # 40 characters
        register_secret(secret)
        message = "y" * 286 + secret + " and more"
        body = json.dumps({"message": message}).encode()
        async with raw.serve(raw.answering(_http(400, body))) as (url, _), raw.client(url) as api:
            with pytest.raises(RequestRejected) as info:
                await api.user_id("host")
        text = str(info.value)
        assert "S3CRET" not in text
        assert "xxxxx" not in text
        assert len(text) < 400

    @pytest.mark.parametrize(
        ("status_code", "outcome"),
        [
            (4001, RequestRejected),
            ("4001", RequestRejected),
            ("0", None),
            (0, None),
            (None, None),
            ("--1", BadResponse),
            ("²", BadResponse),
            ("4001 ", BadResponse),
            ("ok", BadResponse),
            (1.5, BadResponse),
            (True, BadResponse),
            ([], BadResponse),
            ("9" * 5000, BadResponse),
        ],
    )
    async def test_a_tiktok_status_code_is_read_by_the_one_parser(self, status_code, outcome):
        inner = {"data": {}, "extra": {}, "status_code": status_code}
        body = json.dumps({"code": 200, "response": {"data": inner}}).encode()
        async with raw.serve(raw.answering(_http(200, body))) as (url, _), raw.client(url) as api:
            api._tokens = _Tokens()
            if outcome is None:
                result = await api.unmute("1", "2")
                assert result.status_code == (None if status_code is None else 0)
                return
            with pytest.raises(outcome) as info:
                await api.unmute("1", "2")
        assert type(info.value) is outcome
        if outcome is RequestRejected:
            assert info.value.status == 4001


class TestNothingEscapes:
    @pytest.mark.parametrize(
        "failure",
        [
            RecursionError("maximum recursion depth exceeded"),
            ValueError("Exceeds the limit (4300 digits)"),
            UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
            OverflowError("int too large"),
            TypeError("unexpected"),
            KeyError("x"),
        ],
        ids=type,
    )
    async def test_a_transport_that_raises_anything_is_bad_response(self, failure, clock):
        def handler(_request: httpx.Request) -> httpx.Response:
            raise failure

        transport = httpx.MockTransport(handler)
        async with EulerClient("http://euler.test", "k-1", transport=transport, clock=clock) as api:
            with pytest.raises(BadResponse) as info:
                await api.user_id("x")
        assert type(info.value) is BadResponse
        assert info.value.__cause__ is failure

    async def test_a_transport_that_raises_os_error_is_api_unavailable(self, clock, sleeps):
        calls = 0

        def handler(_request: httpx.Request) -> httpx.Response:
            nonlocal calls
            calls += 1
            raise ConnectionResetError(104, "Connection reset by peer")

        transport = httpx.MockTransport(handler)
        async with EulerClient(
            "http://euler.test",
            "k-1",
            transport=transport,
            clock=clock,
            sleep=sleeps,
            retry=RetryPolicy(max_attempts=3),
        ) as api:
            with pytest.raises(ApiUnavailable):
                await api.user_id("x")
        assert calls == 3  # retried like an outage (user_id is idempotent)

    @pytest.mark.parametrize(
        "failure", [OSError(28, "No space left on device"), RuntimeError("bug"), ValueError()]
    )
    async def test_a_token_manager_that_fails_is_an_outage_waited_out(
        self, failure, fake, fake_server, clock, sleeps
    ):
        """The token fetch before the request (a full disk while the refreshed grant is
        written): ApiUnavailable after the retries, the waits taken, no call sent."""
        tokens = _Tokens(failure)
        async with EulerClient(
            fake_server.url,
            fake.api_key,
            tokens=tokens,
            clock=clock,
            sleep=sleeps,
            retry=RetryPolicy(max_attempts=3),
        ) as api:
            with pytest.raises(ApiUnavailable, match="access token could not be had") as info:
                await api.send_chat(fake.streamer("host_handle").room_id, "hi")
        assert type(info.value) is ApiUnavailable
        assert info.value.__cause__ is failure
        assert tokens.asked == 3
        assert len(sleeps.waits) == 2
        assert not fake.calls_to("chat")

    async def test_a_refresh_that_fails_on_the_disk_is_an_outage_too(
        self, fake, fake_server, clock, sleeps
    ):
        fake.expire_access_tokens()
        tokens = _Tokens(token=fake.issue_tokens(["webcast:mute"])["access_token"])
        fake.expire_access_tokens()
        async with EulerClient(
            fake_server.url,
            fake.api_key,
            tokens=tokens,
            clock=clock,
            sleep=sleeps,
            retry=RetryPolicy(max_attempts=1),
        ) as api:
            with pytest.raises(ApiUnavailable, match="could not be refreshed") as info:
                await api.unmute(fake.streamer("host_handle").room_id, VIEWER)
        assert isinstance(info.value.__cause__, OSError)

    async def test_blank_chat_is_refused_as_an_api_error_before_sending(self, client, fake):
        for blank in ("", "   ", "\n\t"):
            with pytest.raises(RequestRejected, match="needs some text") as info:
                await client.send_chat(fake.streamer("host_handle").room_id, blank)
            assert isinstance(info.value, ApiError)
            assert not info.value.retryable
        assert not fake.calls_to("chat")

    async def test_a_handle_that_cannot_be_a_path_is_refused(self, client, fake):
        with pytest.raises(RequestRejected, match="route's path"):
            await client.user_id("../accounts")
        assert not fake.calls


def _answering(
    *headers: dict[str, str], status: int = 200
) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport whose answers carry ``headers`` (the last one again and again)."""
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        extra = headers[min(len(sent), len(headers)) - 1]
        body = b'{"code":%d,"numeric_user_id":"42"}' % status
        return httpx.Response(status, headers=extra, content=body)

    return httpx.MockTransport(handler), sent


class TestHostileRateHeaders:
    """Rate-limit headers that once parked a route for ever (about 1e300 s)."""

    async def test_a_policy_with_a_huge_window_is_ignored_and_logged_once(self, clock, sleeps):
        transport, sent = _answering({"RateLimit-Policy": "1;w=1e300"})
        async with EulerClient(
            "http://euler.test", "k-1", transport=transport, clock=clock, sleep=sleeps
        ) as api:
            with capture_logs() as logs:
                for _ in range(3):
                    assert await api.user_id("x") == "42"
        assert len(sent) == 3
        assert sleeps.waits == []
        ignored = [e for e in logs if e["event"] == "euler.ratelimit_policy_ignored"]
        assert len(ignored) == 1
        assert ignored[0]["route"] == "user_id"
        assert ignored[0]["policy"] == "1;w=1e300"

    async def test_a_budget_wait_past_max_wait_is_rate_limited_not_slept(self, clock, sleeps):
        """A window the parser allows (an hour) can still ask for more than the client
        waits: the call raises RateLimited(retry_after) without sleeping or sending, and
        the executor pauses the route as for a 429."""
        transport, sent = _answering({"RateLimit-Policy": "1;w=3600"})
        async with EulerClient(
            "http://euler.test",
            "k-1",
            transport=transport,
            clock=clock,
            sleep=sleeps,
            retry=RetryPolicy(max_wait=60.0),
        ) as api:
            assert await api.user_id("x") == "42"
            with pytest.raises(RateLimited, match="advertised budget") as info:
                await api.user_id("x")
        assert len(sent) == 1
        assert sleeps.waits == []
        assert info.value.retry_after == pytest.approx(3600 * 1.1)

    async def test_a_budget_wait_within_max_wait_is_slept(self, clock, sleeps):
        transport, sent = _answering({"RateLimit-Policy": "1;w=10"})
        async with EulerClient(
            "http://euler.test",
            "k-1",
            transport=transport,
            clock=clock,
            sleep=sleeps,
            retry=RetryPolicy(max_wait=60.0),
        ) as api:
            assert await api.user_id("x") == "42"
            assert await api.user_id("x") == "42"
        assert len(sent) == 2
        assert sleeps.waits == [pytest.approx(11.0)]

    @pytest.mark.parametrize(
        ("retry_after", "expected"),
        [
            ("1e300", 3600.0),
            ("Fri, 31 Dec 9999 23:59:59 GMT", 3600.0),
            ("-5", None),
            ("inf", None),
            ("nan", None),
        ],
    )
    async def test_a_429_asking_for_ever_pauses_an_hour_at_most(
        self, retry_after, expected, clock, sleeps
    ):
        transport, sent = _answering({"Retry-After": retry_after}, status=429)
        async with EulerClient(
            "http://euler.test",
            "k-1",
            transport=transport,
            clock=clock,
            sleep=sleeps,
            retry=RetryPolicy(max_attempts=2),
        ) as api:
            with pytest.raises(RateLimited) as info:
                await api.user_id("x")
        assert info.value.retry_after == expected
        if expected is None:  # no answer from the server: the client's own backoff
            assert len(sent) == 2
            assert all(0 < w < 1 for w in sleeps.waits)
        else:
            assert len(sent) == 1
            assert sleeps.waits == []


class TestRepr:
    def test_repr_and_vars_of_the_client_name_the_host_only(self):
        key = "KNOWN-KEY-in-repr-4711"
        api = EulerClient("https://api.eulerstream.com", key)
        assert repr(api) == "<EulerClient api.eulerstream.com>"
        assert key not in repr(vars(api))
        assert key not in str(api)

    def test_repr_and_vars_of_the_websocket_name_the_host_only(self):
        key = "KNOWN-KEY-in-ws-repr-4712"
        ws = EulerWebSocket("wss://ws.eulerstream.com", unique_id="host", api_key=key)
        assert repr(ws) == "<EulerWebSocket host at ws.eulerstream.com>"
        assert key not in repr(vars(ws))
        assert "apiKey" not in repr(vars(ws))
