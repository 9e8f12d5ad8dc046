"""The Euler Stream API client: one typed async method per route modbot uses.

With ``modbot.euler.transport``, the only module that sees httpx. It sends ``x-api-key`` on every call and
``x-oauth-token`` on routes that act for the streamer, reads the ``{code, message,
response|data}`` envelope (an error ``code`` inside an HTTP 200 is an error too), and
translates every failure into ``modbot.errors`` once, here. Retries follow
``policy.RetryPolicy``: 429, 500/502/503/504, timeouts and connection errors are
retried with jittered backoff honouring ``Retry-After``/``RateLimit-Reset``; other
4xx never are; a 401 about the access token refreshes it once and replays the call.
Routes that are not idempotent (chat, the token endpoint) are replayed only when the
request cannot have been processed (429, 503, a connection that never opened).
Numeric ids are handled as strings and never pass through a float.

Whatever goes wrong on the way (a broken answer, a JSON bomb, a token store that cannot
be read) leaves ``_call`` as an ``ApiError``, never as a bare exception.

The module does one job, the calls; its helpers have theirs: ``modbot.euler.transport``
the HTTP (the transport, the limits of an answer, how a failed exchange is classified),
``modbot.euler.answers`` reading what Euler answered (the envelope, the errors, the typed
answers). The names other modules import stay importable from here.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, NoReturn, Protocol, Self

import anyio
import httpx
from pydantic import SecretStr

from modbot.__about__ import __version__
from modbot.clock import Clock, SystemClock, epoch
from modbot.errors import (
    ApiError,
    ApiUnavailable,
    AuthExpired,
    BadResponse,
    ConfigError,
    NotFound,
    OAuthError,
    PlanOrScopeDenied,
    RateLimited,
    ReauthRequired,
    RequestRejected,
)
from modbot.euler.answers import (
    ListedUser,
    LiveStatus,
    ModerationResult,
    RateLimits,
    RateWindow,
    SensitiveWord,
    UserInfo,
    UserList,
    UserPage,
    as_id,
    clean,
    moderation_result,
    opt_str,
    rate_window,
    read_envelope,
    response_object,
    sensitive_words,
    user_page,
)
from modbot.euler.policy import API_MUTE_DURATIONS, PERMANENT, RetryPolicy, RouteBudget
from modbot.euler.routes import Route, route_table
from modbot.euler.tokens import TokenSet, token_set_from_answer
from modbot.euler.transport import (
    KEEPALIVE_SECONDS,
    MAX_BODY,
    MAX_CONNECTIONS,
    MAX_HEAD,
    Failed,
    api_ssl_context,
    api_transport,
    dropped,
    read_body,
    visible_ascii,
)
from modbot.log import get_logger, register_secret

__all__ = [
    "KEEPALIVE_SECONDS",
    "MAX_BODY",
    "MAX_CONNECTIONS",
    "MAX_HEAD",
    "EulerClient",
    "ListedUser",
    "LiveStatus",
    "ModerationResult",
    "RateLimits",
    "RateWindow",
    "SensitiveWord",
    "TokenProvider",
    "UserInfo",
    "UserList",
    "UserPage",
    "api_ssl_context",
    "api_transport",
    "as_id",
    "clean",
]

BULK_LIVE_CHECK_BATCH = 50
# A list is read page by page while the API says has_more, and never further than this:
# 100 pages of TikTok's 20-50 rows is more than any room's mutes or bans, and an API that
# says has_more forever (or repeats one page) must not keep modbot reading for ever.
MAX_LIST_PAGES = 100

log = get_logger("modbot.euler")


class TokenProvider(Protocol):
    """Gives the streamer's current access token and refreshes it after a 401."""

    async def access_token(self) -> str:
        """A valid access token (refreshed first if it is about to expire)."""
        ...

    async def refresh_after_rejection(self, rejected: str) -> str:
        """A new access token after ``rejected`` got a 401 (raises ReauthRequired)."""
        ...


class EulerClient:
    """Typed access to the Euler API. Use as ``async with EulerClient(...) as api:``."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        tokens: TokenProvider | None = None,
        routes: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 10.0,
        clock: Clock | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        register_secret(api_key)
        if api_key and not visible_ascii(api_key):
            msg = (
                "the Euler API key holds characters that cannot be sent in an HTTP header "
                "(spaces, controls or non-ASCII); paste it again"
            )
            raise ConfigError(msg, setting="api_key")
        self._has_key = bool(api_key)
        self._routes = route_table(routes)
        self._tokens = tokens
        self._retry = retry or RetryPolicy()
        self._clock: Clock = clock or SystemClock()
        self._sleep = sleep
        self._jitter = jitter
        self._budgets: dict[str, RouteBudget] = defaultdict(RouteBudget)
        # Requests go straight to the transport: httpx.AsyncClient's layers (cookies,
        # auth flows, redirects, hooks, URL and header merging) are nothing the API
        # needs, and cost a fifth of each call's CPU under load.
        self._base = str(httpx.URL(base_url)).rstrip("/")
        self._headers = {
            "user-agent": f"modbot/{__version__}",
            # Answers as sent, never compressed (and any other encoding is refused):
            # a small gzip answer can inflate to gigabytes (review M5).
            "accept-encoding": "identity",
        }
        # The key goes into each request's headers; kept as a SecretStr so that neither
        # repr() nor vars() of the client shows it.
        self._key = {"x-api-key": SecretStr(api_key)} if api_key else {}
        self._timeout = httpx.Timeout(timeout).as_dict()
        # httpx's timeout bounds each phase and each read, not the answer: a server
        # that drips a byte per read would hold a call (and its connection) for ever.
        # So the whole exchange, from asking the pool for a connection to the body's last
        # byte, has a deadline too: twice the timeout. An answer of the API (a few
        # kilobytes, one or two reads) takes a fraction of one timeout; the second one
        # leaves room for httpx's own pool and connect timeouts (one timeout each) to
        # fire first, so that they keep their meaning: the request was never sent, and
        # even a chat message may go again. Past the deadline it may have been.
        self._deadline = 2.0 * timeout
        self._http: httpx.AsyncBaseTransport = transport or api_transport()

    def __repr__(self) -> str:
        return f"<EulerClient {httpx.URL(self._base).host}>"

    async def __aenter__(self) -> Self:
        await self._http.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._http.__aexit__(exc_type, exc, tb)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    def route(self, name: str) -> Route:
        """The route called ``name`` in this client's table."""
        return self._routes[name]

    # --- lookups --------------------------------------------------------------------

    async def user_id(self, unique_id: str) -> str:
        """The numeric user id of a handle."""
        body = await self._call("user_id", path={"unique_id": unique_id})
        return as_id(body.get("numeric_user_id"), "numeric_user_id")

    async def room_id(self, unique_id: str) -> LiveStatus:
        """One handle's live flag and room id (the numeric user id is not in this answer)."""
        body = await self._call("room_id", path={"unique_id": unique_id})
        room = body.get("room_id")
        return LiveStatus(
            user_id="",
            is_live=bool(body.get("is_live")),
            room_id=as_id(room, "room_id") if room not in (None, "", "0", 0) else None,
        )

    async def bulk_live_check(self, user_ids: Sequence[str]) -> dict[str, LiveStatus]:
        """Who of ``user_ids`` is live, in calls of at most 50 ids."""
        found: dict[str, LiveStatus] = {}
        ids = [as_id(u, "user id") for u in user_ids]
        for start in range(0, len(ids), BULK_LIVE_CHECK_BATCH):
            batch = ids[start : start + BULK_LIVE_CHECK_BATCH]
            body = await self._call("bulk_live_check", json_body={"user_numeric_ids": batch})
            data = response_object(body, "bulk_live_check").get("data")
            if not isinstance(data, dict):
                raise BadResponse("bulk_live_check answered without a data map")
            for key, entry in data.items():
                if not isinstance(entry, dict):
                    raise BadResponse("bulk_live_check answered an entry that is not an object")
                room = entry.get("room_id")
                live = bool(entry.get("is_live"))
                found[as_id(key, "user id")] = LiveStatus(
                    user_id=as_id(key, "user id"),
                    is_live=live,
                    room_id=as_id(room, "room_id") if room not in (None, "", "0", 0) else None,
                )
            for missing in batch:
                found.setdefault(missing, LiveStatus(missing, is_live=False, room_id=None))
        return found

    async def rate_limits(self, kind: str = "WEBCAST") -> RateLimits:
        """The API key's remaining calls."""
        body = await self._call("rate_limits", params={"type": kind})
        inner = body.get("response")
        source: dict[str, Any] = inner if isinstance(inner, dict) else body
        return RateLimits(
            minute=rate_window(source.get("minute")),
            hour=rate_window(source.get("hour")),
            day=rate_window(source.get("day")),
        )

    async def userinfo(self) -> UserInfo:
        """The TikTok account behind the OAuth grant."""
        body = await self._call("userinfo")
        user = body.get("user")
        if not isinstance(user, dict):
            raise BadResponse("userinfo answered without a user")
        room = user.get("roomId")
        return UserInfo(
            user_id=as_id(user.get("uid"), "uid"),
            unique_id=opt_str(user.get("uniqueId")),
            nickname=opt_str(user.get("nickName")),
            room_id=as_id(room, "roomId") if room not in (None, "", "0", 0) else None,
            sec_uid=opt_str(user.get("secUid")),
        )

    # --- acting for the streamer --------------------------------------------------------

    async def send_chat(self, room_id: str, content: str) -> ModerationResult:
        """Send a chat message to the room as the streamer's account."""
        if not content.strip():
            msg = "a chat message needs some text"
            raise RequestRejected(msg, route="chat")
        body = await self._call(
            "chat", path={"room_id": as_id(room_id)}, json_body={"content": content}
        )
        return moderation_result(body, "chat")

    async def mute(
        self, room_id: str, user_id: str, duration: int, comment_msg_id: str | None = None
    ) -> ModerationResult:
        """Mute a user for ``duration`` seconds: 5, 30, 60, 300, or -1 for permanent.

        Longer or odd durations are planned with ``policy.plan_mute`` (a permanent mute
        plus an unmute timer); this method sends only what the API accepts.
        """
        if duration not in (*API_MUTE_DURATIONS, PERMANENT):
            msg = f"the API mutes for 5, 30, 60, 300 s or -1 (permanent), not {duration}"
            raise ValueError(msg)
        params = {"user_id": as_id(user_id), "duration": str(duration)}
        if comment_msg_id:
            params["comment_msg_id"] = as_id(comment_msg_id, "comment_msg_id")
        body = await self._call("mute", path={"room_id": as_id(room_id)}, params=params)
        return moderation_result(body, "mute")

    async def unmute(self, room_id: str, user_id: str) -> ModerationResult:
        """Lift a user's mute."""
        body = await self._call(
            "unmute", path={"room_id": as_id(room_id)}, params={"user_id": as_id(user_id)}
        )
        return moderation_result(body, "unmute")

    async def list_mutes(self, room_id: str, page: int = 0) -> UserPage:
        """One page of the room's muted users."""
        body = await self._call(
            "list_mutes", path={"room_id": as_id(room_id)}, params={"page": str(page)}
        )
        return user_page(body, "list_mutes")

    async def ban(
        self, room_id: str, user_id: str, comment_msg_id: str | None = None
    ) -> ModerationResult:
        """Ban (kick) a user from the room."""
        params = {"tiktok_user_id": as_id(user_id)}
        if comment_msg_id:
            params["comment_msg_id"] = as_id(comment_msg_id, "comment_msg_id")
        body = await self._call("ban", path={"room_id": as_id(room_id)}, params=params)
        return moderation_result(body, "ban")

    async def unban(self, room_id: str, user_id: str) -> ModerationResult:
        """Let a banned user back in."""
        body = await self._call(
            "unban", path={"room_id": as_id(room_id)}, params={"tiktok_user_id": as_id(user_id)}
        )
        return moderation_result(body, "unban")

    async def list_bans(self, room_id: str, page: int = 0) -> UserPage:
        """One page of the room's banned users."""
        body = await self._call(
            "list_bans", path={"room_id": as_id(room_id)}, params={"page": str(page)}
        )
        return user_page(body, "list_bans")

    async def all_mutes(self, room_id: str) -> UserList:
        """Every muted user of the room: all pages, at most ``MAX_LIST_PAGES``."""
        return await self._all_pages(lambda page: self.list_mutes(room_id, page), "list_mutes")

    async def all_bans(self, room_id: str) -> UserList:
        """Every banned user of the room: all pages, at most ``MAX_LIST_PAGES``."""
        return await self._all_pages(lambda page: self.list_bans(room_id, page), "list_bans")

    async def _all_pages(self, fetch: Callable[[int], Awaitable[UserPage]], name: str) -> UserList:
        """Pages 0, 1, ... while ``has_more``; stops at the cap or at a page with nobody
        new (an API repeating itself), and says whether the list is complete."""
        seen: dict[str, ListedUser] = {}
        for page in range(MAX_LIST_PAGES):
            got = await fetch(page)
            before = len(seen)
            for user in got.users:
                seen.setdefault(user.user_id, user)
            if not got.has_more:
                return UserList(tuple(seen.values()), complete=True, pages=page + 1)
            if len(seen) == before:
                log.warning("euler.list_repeats", route=name, page=page)
                return UserList(tuple(seen.values()), complete=False, pages=page + 1)
        log.warning("euler.list_capped", route=name, pages=MAX_LIST_PAGES)
        return UserList(tuple(seen.values()), complete=False, pages=MAX_LIST_PAGES)

    async def toggle_comments(self, room_id: str, *, enabled: bool) -> ModerationResult:
        """Turn the room's comments on or off."""
        body = await self._call(
            "toggle_comments",
            path={"room_id": as_id(room_id)},
            params={"enabled": "true" if enabled else "false"},
        )
        return moderation_result(body, "toggle_comments")

    async def add_moderator(self, anchor_id: str, user_id: str) -> ModerationResult:
        """Make a user a moderator of the streamer (``anchor_id`` is their numeric id)."""
        body = await self._call(
            "add_moderator",
            path={"anchor_id": as_id(anchor_id)},
            params={"to_user_id": as_id(user_id)},
        )
        return moderation_result(body, "add_moderator")

    async def remove_moderator(self, anchor_id: str, user_id: str) -> ModerationResult:
        """Take a user's moderator role away."""
        body = await self._call(
            "remove_moderator",
            path={"anchor_id": as_id(anchor_id)},
            params={"to_user_id": as_id(user_id)},
        )
        return moderation_result(body, "remove_moderator")

    async def list_moderators(self, anchor_id: str) -> UserPage:
        """The streamer's moderators."""
        body = await self._call("list_moderators", path={"anchor_id": as_id(anchor_id)})
        return user_page(body, "list_moderators")

    async def list_sensitive_words(self, room_id: str, sec_anchor_id: str) -> list[SensitiveWord]:
        """The streamer's TikTok keyword filter (``sec_anchor_id`` is their ``secUid``)."""
        body = await self._call(
            "list_sensitive_words",
            path={"room_id": as_id(room_id)},
            params={"sec_anchor_id": sec_anchor_id},
        )
        return sensitive_words(body, "list_sensitive_words")

    async def add_sensitive_word(
        self, room_id: str, sec_anchor_id: str, word: str
    ) -> ModerationResult:
        """Add a word to the streamer's keyword filter."""
        if not word.strip():
            raise RequestRejected("a keyword needs some text", route="add_sensitive_word")
        body = await self._call(
            "add_sensitive_word",
            path={"room_id": as_id(room_id)},
            params={"sec_anchor_id": sec_anchor_id, "word": word},
        )
        return moderation_result(body, "add_sensitive_word")

    async def remove_sensitive_word(
        self, room_id: str, sec_anchor_id: str, word_id: str
    ) -> ModerationResult:
        """Take a word (by its ``word_id``) out of the streamer's keyword filter."""
        body = await self._call(
            "remove_sensitive_word",
            path={"room_id": as_id(room_id)},
            params={"sec_anchor_id": sec_anchor_id, "word_id": as_id(word_id, "word_id")},
        )
        return moderation_result(body, "remove_sensitive_word")

    # --- OAuth token endpoint -----------------------------------------------------------

    async def exchange_code(
        self, *, client_id: str, client_secret: str, code: str, redirect_uri: str
    ) -> TokenSet:
        """Trade an authorization code for tokens."""
        register_secret(client_secret, code, slot="code")
        return await self._token_call(
            {
                "client_id": client_id,
                "client_secret": client_secret,
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
            }
        )

    async def refresh_tokens(
        self, *, client_id: str, client_secret: str, refresh_token: str
    ) -> TokenSet:
        """Trade a refresh token for a new token set (the refresh token rotates).

        Raises:
            ReauthRequired: the refresh token is expired, revoked or already used.
        """
        register_secret(client_secret, refresh_token, slot="refresh")
        try:
            return await self._token_call(
                {
                    "client_id": client_id,
                    "client_secret": client_secret,
                    "grant_type": "refresh_token",
                    "refresh_token": refresh_token,
                }
            )
        except OAuthError as exc:
            if exc.error in {"invalid_grant", "invalid_token", "expired_token", None}:
                msg = (
                    "the refresh token was refused "
                    f"({exc}); the streamer must log in again with `modbot auth login`"
                )
                raise ReauthRequired(msg, route="token", status=400) from exc
            raise

    async def revoke(self, *, client_id: str, client_secret: str, token: str, hint: str) -> None:
        """Revoke a token (RFC 7009: succeeds even if it was already revoked)."""
        register_secret(client_secret, token, slot="revoke")
        await self._call(
            "revoke",
            json_body={
                "token": token,
                "token_type_hint": hint,
                "client_id": client_id,
                "client_secret": client_secret,
            },
            send_token=False,
        )

    async def _token_call(self, payload: dict[str, str]) -> TokenSet:
        try:
            body = await self._call("token", json_body=payload, send_token=False)
        except (RequestRejected, PlanOrScopeDenied, AuthExpired, NotFound) as exc:
            raise OAuthError(str(exc), error=exc.oauth_error) from exc
        data = body.get("data")
        if not isinstance(data, dict):
            raise BadResponse("the token endpoint answered without data", route="token")
        try:
            tokens = token_set_from_answer(data, epoch(self._clock))
        except ValueError as exc:
            raise BadResponse(f"the token endpoint's answer: {exc}", route="token") from exc
        register_secret(tokens.access_token, tokens.refresh_token, slot="grant")
        return tokens

    # --- the sending loop ---------------------------------------------------------------

    async def _call(
        self,
        name: str,
        *,
        path: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        send_token: bool | None = None,
    ) -> dict[str, Any]:
        route = self._routes[name]
        if not self._has_key and name not in ("token", "revoke"):
            msg = (
                f"the {name} call needs the Euler API key: set MODBOT_API_KEY, the systemd "
                "credential 'api-key' or 'api_key' in the config file"
            )
            raise ConfigError(msg, setting="api_key")
        url = route.path.format(**{k: _path_part(v, name) for k, v in (path or {}).items()})
        with_token = route.session if send_token is None else send_token
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            try:
                token = await self._token_for(name) if with_token else None
                try:
                    return await self._exchange(route, url, params, json_body, token)
                except AuthExpired:
                    if refreshed or token is None or self._tokens is None:
                        raise
                    refreshed = True
                    log.info("euler.token_refresh", route=name, reason="401 from Euler")
                    await self._refreshed(token, name)
                    attempt -= 1
                    continue
            except Failed as failed:
                error, cause, unsent = failed.error, failed.cause, failed.unsent
            if not error.retryable or (not route.idempotent and not unsent):
                _raise_from(error, cause)
            wait = self._retry.delay(
                attempt,
                retry_after=error.retry_after if isinstance(error, RateLimited) else None,
                jitter=self._jitter(),
            )
            if wait is None:
                _raise_from(error, cause)
            log.warning(
                "euler.retry",
                route=name,
                status=error.status,
                error=type(error).__name__,
                attempt=attempt,
                wait_s=round(wait, 3),
            )
            await self._sleep(wait)

    async def _token_for(self, name: str) -> str:
        """The access token for a call. A token manager that fails other than with an
        ApiError (its file cannot be read or written: a full disk, a permission) is an
        outage to wait out, not a crash; a token no header can carry is refused."""
        if self._tokens is None:
            msg = (
                f"the {name} route acts for the streamer and needs an OAuth grant; "
                "run `modbot auth login` first"
            )
            raise AuthExpired(msg, route=name)
        try:
            token = await self._tokens.access_token()
        except ApiError:
            raise
        except Exception as exc:  # noqa: BLE001 (whatever it is, the call waits and retries)
            msg = f"the streamer's access token could not be had for the {name} call ({type(exc).__name__})"
            raise Failed(ApiUnavailable(msg, route=name), exc, unsent=True) from None
        if not isinstance(token, str) or not visible_ascii(token):
            msg = (
                "the streamer's access token holds characters that cannot be sent in an HTTP "
                "header (spaces, controls or non-ASCII); run `modbot auth login` again"
            )
            raise RequestRejected(msg, route=name)
        return token

    async def _refreshed(self, rejected: str, name: str) -> None:
        """A new access token after a 401 (failures other than ApiError: an outage)."""
        assert self._tokens is not None
        try:
            await self._tokens.refresh_after_rejection(rejected)
        except ApiError:
            raise
        except Exception as exc:  # noqa: BLE001 (as in _token_for)
            msg = f"the streamer's access token could not be refreshed for the {name} call ({type(exc).__name__})"
            raise Failed(ApiUnavailable(msg, route=name), exc, unsent=True) from None

    async def _exchange(
        self,
        route: Route,
        url: str,
        params: Mapping[str, str] | None,
        json_body: Any,
        token: str | None,
    ) -> dict[str, Any]:
        """One request and its envelope. AuthExpired goes to ``_call`` as it is (it
        refreshes the token); every other failure, whatever raised it, is a ``Failed``
        with the ApiError it stands for."""
        name = route.name
        try:
            headers = {"x-oauth-token": token} if token is not None else {}
            async with self._within_budget(name) as budget:
                response, content = await self._send(
                    name, route.method, url, params, json_body, headers
                )
                refused = budget.learn(
                    response.headers,
                    self._clock.monotonic(),
                    epoch(self._clock),
                    ok=response.is_success,
                )
                if refused is not None:  # once per route; later ones counted in the budget
                    log.warning(
                        "euler.ratelimit_policy_ignored",
                        route=name,
                        policy=clean(response.headers.get("ratelimit-policy", ""), 80),
                        reason=refused,
                    )
            return read_envelope(
                route,
                response.status_code,
                response.headers,
                content,
                epoch(self._clock),
                sent_token=token is not None,
            )
        except AuthExpired:
            raise
        except ApiError as exc:
            raise Failed(exc, exc, unsent=exc.status in (429, 503)) from None
        except httpx.TimeoutException as exc:
            unsent = isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
            error: ApiError = ApiUnavailable(f"the {name} call timed out", route=name)
            raise Failed(error, exc, unsent=unsent) from None
        except httpx.RemoteProtocolError as exc:
            if dropped(exc):
                msg = f"Euler closed the connection during the {name} call"
                raise Failed(ApiUnavailable(msg, route=name), exc, unsent=False) from None
            msg = f"the {name} answer broke HTTP ({clean(str(exc), 120)})"
            raise Failed(BadResponse(msg, route=name), exc, unsent=False) from None
        except (httpx.TransportError, OSError) as exc:
            unsent = isinstance(exc, httpx.ConnectError)
            msg = f"could not reach Euler for the {name} call ({type(exc).__name__})"
            raise Failed(ApiUnavailable(msg, route=name), exc, unsent=unsent) from None
        except Exception as exc:  # noqa: BLE001 (a RecursionError, a ValueError of a parser ...)
            msg = f"the {name} answer could not be read ({type(exc).__name__})"
            raise Failed(BadResponse(msg, route=name), exc, unsent=False) from None

    async def _send(
        self,
        name: str,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        json_body: Any,
        headers: dict[str, str],
    ) -> tuple[httpx.Response, bytes]:
        """One request and its body, read as sent up to ``MAX_BODY`` bytes, all within
        the exchange's deadline; httpx's own errors (TransportError, Timeout...),
        BadResponse, or ApiUnavailable past the deadline."""
        request = httpx.Request(
            method,
            self._base + path,
            params=params,
            json=json_body,
            headers={
                **self._headers,
                **{k: v.get_secret_value() for k, v in self._key.items()},
                **headers,
            },
            extensions={"timeout": self._timeout},
        )
        # move_on_after rather than fail_after: its TimeoutError would be an OSError to
        # the handlers in _exchange, and one raised inside would pass for the deadline.
        with anyio.move_on_after(self._deadline):
            response = await self._http.handle_async_request(request)
            try:
                content = await read_body(response, name)
            finally:
                await response.aclose()  # httpcore shields its close from the cancel
            return response, content
        msg = f"the {name} answer was not complete within {self._deadline:g} s"
        raise ApiUnavailable(msg, route=name)  # the request may have been received

    @asynccontextmanager
    async def _within_budget(self, name: str) -> AsyncIterator[RouteBudget]:
        """Wait until the route's advertised budget allows one more request, and count
        the request until its answer (or its failure, or cancellation). A wait longer
        than the retry policy's ``max_wait`` is not waited: RateLimited goes to the
        caller, who pauses the route (as for a 429 asking as long)."""
        budget = self._budgets[name]
        for _ in range(1000):  # each wait ends a window; the bound only guards a stuck clock
            wait = budget.delay(self._clock.monotonic())
            if wait <= 0:
                break
            if wait > self._retry.max_wait:
                msg = (
                    f"the {name} route's advertised budget allows no request for {wait:.0f} s "
                    f"(more than {self._retry.max_wait:g} s)"
                )
                raise RateLimited(msg, retry_after=wait, route=name)
            await self._sleep(wait)
        budget.note_sent()
        try:
            yield budget
        finally:
            budget.note_answered(self._clock.monotonic())


def _raise_from(error: ApiError, cause: BaseException) -> NoReturn:
    if error is cause:
        raise error
    raise error from cause


def _path_part(value: str, name: str) -> str:
    if not value or value in {".", ".."} or any(c in value for c in "/?#%\\ "):
        msg = f"{clean(value, 80)!r} cannot be used in the {name} route's path"
        raise RequestRejected(msg, route=name)
    return value
