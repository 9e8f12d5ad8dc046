"""The fake's REST API: Euler's lookups and TikTok moderation routes, and every call recorded.

Each request goes through one pipeline (``Api.serve``): injected faults and latency,
the API key, the account's rate limit and the route's budget, the plan, and for session
routes the OAuth token and its scope; then the route's handler changes the world and
answers in Euler's envelope. Every request ends up in ``calls`` as a ``RecordedCall``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from modbot.fake import envelopes
from modbot.fake.envelopes import error
from modbot.fake.faults import Faults, RateLimits, fault_response
from modbot.fake.oauth import Grant, OAuthServer
from modbot.fake.world import FakeStreamer, World

ALLOWED_MUTE_DURATIONS = frozenset({-1, 5, 30, 60, 300})


@dataclass(frozen=True, slots=True)
class FakeRoute:
    """One REST route the fake serves: Euler's method and path template, and for
    ``session`` routes (those that act for a streamer: ``x-oauth-token``) the scope
    the grant must hold."""

    method: str
    path: str
    scope: str | None = None
    session: bool = False


_MUTES = "/webcast/rooms/{room_id}/moderation/mutes"
_BANS = "/webcast/rooms/{room_id}/moderation/bans"
_MODS = "/webcast/anchors/{anchor_id}/moderation/moderators"
_WORDS = "/webcast/rooms/{room_id}/moderation/sensitive-words"  # reference 1.3
_W = "webcast:sensitive_words"

# The fake's own table, written from ``shared/spec/events.md`` (Authentication; Routes
# modbot uses), not taken from the client's ``modbot.euler.routes``: a wrong path on
# either side then shows up in ``tests/test_route_contract.py`` instead of agreeing with
# itself. Keys are the route names tests inject faults on and find in ``calls``.
ROUTES: Mapping[str, FakeRoute] = {
    "user_id": FakeRoute("GET", "/webcast/anchors/{unique_id}/user_id"),
    "room_id": FakeRoute("GET", "/webcast/anchors/{unique_id}/room_id"),
    "bulk_live_check": FakeRoute(
        "POST", "/webcast/bulk_live_check", "webcast:bulk_live_check", session=True
    ),
    "chat": FakeRoute("POST", "/webcast/rooms/{room_id}/chat", "webcast:chat", session=True),
    "mute": FakeRoute("PUT", _MUTES, "webcast:mute", session=True),
    "unmute": FakeRoute("DELETE", _MUTES, "webcast:mute", session=True),
    "list_mutes": FakeRoute("GET", _MUTES, "webcast:mute", session=True),
    "ban": FakeRoute("PUT", _BANS, "webcast:ban", session=True),
    "unban": FakeRoute("DELETE", _BANS, "webcast:ban", session=True),
    "list_bans": FakeRoute("GET", _BANS, "webcast:ban", session=True),
    "toggle_comments": FakeRoute(
        "POST",
        "/webcast/rooms/{room_id}/moderation/toggle_comments",
        "webcast:comments",
        session=True,
    ),
    "add_moderator": FakeRoute("PUT", _MODS, "webcast:moderators", session=True),
    "remove_moderator": FakeRoute("DELETE", _MODS, "webcast:moderators", session=True),
    "list_moderators": FakeRoute("GET", _MODS, "webcast:moderators", session=True),
    "list_sensitive_words": FakeRoute("GET", _WORDS, _W, session=True),
    "add_sensitive_word": FakeRoute("POST", _WORDS, _W, session=True),
    "remove_sensitive_word": FakeRoute("DELETE", _WORDS, _W, session=True),
    "rate_limits": FakeRoute("GET", "/accounts/me/rate_limits"),
    "userinfo": FakeRoute("GET", "/tiktok/oauth/userinfo", "user:info", session=True),
    "token": FakeRoute("POST", "/tiktok/oauth/token"),
    "revoke": FakeRoute("POST", "/tiktok/oauth/revoke"),
}

Handler = Callable[[Request, dict[str, Any]], Awaitable[Response]]


@dataclass(frozen=True)
class RecordedCall:
    """One request the fake received, and what it answered."""

    route: str
    method: str
    path: str
    params: dict[str, str]
    body: Any
    at: float
    status: int
    api_key_ok: bool
    token_ok: bool
    sent_token: bool
    arrived: float = 0.0  # when the request came in (``at`` is when it was answered)
    injected: bool = False  # answered by an injected fault or a route limit


class Api:
    """The REST routes' handlers by route name, and the pipeline every request goes through."""

    def __init__(
        self,
        world: World,
        oauth: OAuthServer,
        faults: Faults,
        limits: RateLimits,
        *,
        api_key: str,
    ) -> None:
        self.world = world
        self.oauth = oauth
        self.faults = faults
        self.limits = limits
        self.api_key = api_key
        self.calls: list[RecordedCall] = []
        self.plan_denied: set[str] = set()  # routes the API key's plan does not include
        self.request_hooks: list[Callable[[str, str | None], None]] = []
        # Called with (route name, room id, params) after each call answered 200.
        self.answered_hooks: list[Callable[[str, str, dict[str, str]], None]] = []
        self.handlers: dict[str, Handler] = {
            "user_id": self._user_id,
            "room_id": self._room_id,
            "bulk_live_check": self._bulk_live_check,
            "chat": self._chat,
            "mute": self._mute,
            "unmute": self._unmute,
            "list_mutes": self._list_mutes,
            "ban": self._ban,
            "unban": self._unban,
            "list_bans": self._list_bans,
            "toggle_comments": self._toggle_comments,
            "add_moderator": self._add_moderator,
            "remove_moderator": self._remove_moderator,
            "list_moderators": self._list_moderators,
            "list_sensitive_words": self._list_words,
            "add_sensitive_word": self._add_word,
            "remove_sensitive_word": self._remove_word,
            "rate_limits": self._rate_limits,
            "userinfo": self._userinfo,
            "token": oauth.token,
            "revoke": oauth.revoke,
        }

    # --- the pipeline ---------------------------------------------------------------------

    async def serve(self, name: str, request: Request) -> Response:
        """Answer one request to the route ``name`` and record it."""
        raw = await request.body()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        params = dict(request.query_params)
        api_key_ok = request.headers.get("x-api-key") == self.api_key
        token = request.headers.get("x-oauth-token")
        for hook in self.request_hooks:
            hook(name, token)
        grant = self.oauth.grant(token)
        token_ok = grant is not None and grant.expires_at > self.world.now()
        ctx: dict[str, Any] = {"body": body, "params": params, "grant": grant}
        arrived = self.world.now()
        budget = self.limits.route_budget(name, arrived)
        if budget is not None and budget[1] < 0:
            self.limits.limited[name] += 1
            ctx["injected"] = True
            response: Response = JSONResponse(
                {"code": 429, "message": "Too many requests to this route."}, status_code=429
            )
        else:
            response = await self._respond(
                name, request, ctx, api_key_ok=api_key_ok, token=token, token_ok=token_ok
            )
        if budget is not None:
            self.limits.advertise(name, budget, response)
        if envelopes.status_of(response) == 200:
            room_id = str(request.path_params.get("room_id", ""))
            for answered in self.answered_hooks:
                answered(name, room_id, params)
        self.calls.append(
            RecordedCall(
                route=name,
                method=request.method,
                path=request.url.path,
                params=params,
                body=body,
                at=self.world.now(),
                status=envelopes.status_of(response),
                api_key_ok=api_key_ok,
                token_ok=token_ok,
                sent_token=token is not None,
                arrived=arrived,
                injected=bool(ctx.get("injected")),
            )
        )
        return response

    async def _respond(
        self,
        name: str,
        request: Request,
        ctx: dict[str, Any],
        *,
        api_key_ok: bool,
        token: str | None,
        token_ok: bool,
    ) -> Response:
        route = ROUTES[name]
        fault = self.faults.take(name)
        if fault is not None:
            if fault.latency:
                await anyio.sleep(fault.latency)
            if fault.status:
                ctx["injected"] = True
                return fault_response(fault, self.limits.per_minute)
        if name not in ("token", "revoke") and not api_key_ok:
            return error(401, "Invalid or missing API key (x-api-key)")
        limited = self.limits.count(self.world.now())
        if limited is not None:
            return limited
        if name in self.plan_denied:
            return error(
                401,
                "You lack authorization for this endpoint. If this is a premium endpoint, "
                "upgrade at https://www.eulerstream.com/pricing.",
            )
        if route.session:
            if not token:
                return error(
                    401, "Provide exactly one of the headers x-oauth-token or x-cookie-header"
                )
            if not token_ok:
                return error(401, "The OAuth access token is invalid or expired")
            grant: Grant = ctx["grant"]
            if route.scope and route.scope not in grant.scopes:
                return error(403, f"This OAuth grant lacks the scope {route.scope}")
        return await self.handlers[name](request, ctx)

    # --- lookups --------------------------------------------------------------------------

    async def _user_id(self, request: Request, ctx: dict[str, Any]) -> Response:
        del ctx
        handle = request.path_params["unique_id"]
        streamer = self.world.find(handle)
        if streamer is not None:
            return JSONResponse({"code": 200, "numeric_user_id": streamer.user_id})
        viewer = next(
            (uid for uid, (h, _) in self.world.names.items() if h.lower() == handle.lower()), None
        )
        if viewer is None:
            return error(404, "User not found")
        return JSONResponse({"code": 200, "numeric_user_id": viewer})

    async def _room_id(self, request: Request, ctx: dict[str, Any]) -> Response:
        del ctx
        streamer = self.world.find(request.path_params["unique_id"])
        if streamer is None:
            return error(404, "User not found")
        return JSONResponse(
            {
                "code": 200,
                "ok": True,
                "routes_attempted": ["fake"],
                "is_live": streamer.is_live,
                "room_id": streamer.room_id if streamer.is_live else "0",
            }
        )

    async def _bulk_live_check(self, request: Request, ctx: dict[str, Any]) -> Response:
        del request
        body = ctx["body"]
        ids = body.get("user_numeric_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return error(400, "user_numeric_ids must be a list of strings")
        if len(ids) > 50:
            return error(400, "At most 50 user_numeric_ids per call")
        data = {}
        for user_id in ids:
            streamer = self.world.by_user_id(user_id)
            if streamer is not None:
                data[user_id] = {
                    "room_id": streamer.room_id if streamer.is_live else "0",
                    "is_live": streamer.is_live,
                }
        return JSONResponse({"code": 200, "response": {"data": data}})

    async def _rate_limits(self, request: Request, ctx: dict[str, Any]) -> Response:
        del request, ctx
        limit = self.limits.per_minute or 1000
        used = self.limits.used_this_minute
        now = self.world.now()
        reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((int(now // 60) + 1) * 60))
        window = {"max": limit, "remaining": max(0, limit - used), "reset_at": reset}
        return JSONResponse(
            {
                "code": 200,
                "minute": window,
                "hour": {"max": limit * 60, "remaining": limit * 60 - used, "reset_at": None},
                "day": {"max": limit * 1440, "remaining": limit * 1440 - used, "reset_at": None},
            }
        )

    async def _userinfo(self, request: Request, ctx: dict[str, Any]) -> Response:
        del request
        grant: Grant = ctx["grant"]
        streamer = self.world.find(grant.account)
        if streamer is None:
            return error(404, "User not found")
        return JSONResponse(
            {
                "code": 200,
                "user": {
                    "uid": int(streamer.user_id),
                    "uniqueId": streamer.unique_id,
                    "nickName": streamer.owner.nickname,
                    "secUid": streamer.sec_uid,
                    "roomId": streamer.room_id if streamer.is_live else "",
                    "hasLivePermission": True,
                },
            }
        )

    # --- moderation -----------------------------------------------------------------------

    def _room(self, request: Request) -> FakeStreamer | Response:
        streamer = self.world.by_room(request.path_params["room_id"])
        if streamer is None:
            return error(404, "Room not found")
        return streamer

    def _anchor(self, request: Request) -> FakeStreamer | Response:
        streamer = self.world.by_user_id(request.path_params["anchor_id"])
        if streamer is None:
            return error(404, "Anchor not found")
        return streamer

    def _tiktok(self, data: Any = None) -> Response:
        return envelopes.tiktok(self.world.now_ms(), data)

    def _list(self, rows: list[dict[str, Any]], ctx: dict[str, Any] | None = None) -> Response:
        """One page of ``rows`` (the ``page`` parameter, from 0) of ``world.list_page_size``;
        with ``world.endless_pages`` every page says has_more, past the end too."""
        size = max(1, self.world.list_page_size)
        raw = (ctx or {}).get("params", {}).get("page", "0")
        page = int(raw) if raw.isdigit() else 0
        chunk = rows[page * size : (page + 1) * size]
        more = self.world.endless_pages or (page + 1) * size < len(rows)
        return envelopes.tiktok_list(self.world.now_ms(), chunk, has_more=more, total=len(rows))

    def _user_row(self, user_id: str, mute_duration: int | None = None) -> dict[str, Any]:
        return envelopes.tiktok_user(
            user_id, mute_duration=mute_duration, names=self.world.names.get(user_id)
        )

    async def _chat(self, request: Request, ctx: dict[str, Any]) -> Response:
        room = self._room(request)
        if isinstance(room, Response):
            return room
        body = ctx["body"]
        content = body.get("content") if isinstance(body, dict) else None
        if not isinstance(content, str) or not content:
            return error(400, "content is required")
        room.chat.append(content)
        return JSONResponse(
            {
                "code": 200,
                "data": {"data": {}, "extra": {"now": self.world.now_ms()}, "status_code": 0},
            }
        )

    async def _mute(self, request: Request, ctx: dict[str, Any]) -> Response:
        room = self._room(request)
        if isinstance(room, Response):
            return room
        params = ctx["params"]
        user_id = params.get("user_id", "")
        if not user_id.isdigit():
            return error(400, "user_id is required and must be numeric")
        raw = params.get("duration", "-1")
        try:
            duration = int(raw)
        except ValueError:
            return error(400, "duration must be one of -1, 5, 30, 60, 300")
        if duration not in ALLOWED_MUTE_DURATIONS:
            return error(400, "duration must be one of -1, 5, 30, 60, 300")
        room.mutes[user_id] = None if duration == -1 else self.world.now() + duration
        return self._tiktok(
            {
                "actual_duration": duration,
                "max_count": 1000,
                "room_id": int(room.room_id),
                "total": len(room.mutes),
                "user_id": int(user_id),
            }
        )

    async def _unmute(self, request: Request, ctx: dict[str, Any]) -> Response:
        room = self._room(request)
        if isinstance(room, Response):
            return room
        user_id = ctx["params"].get("user_id", "")
        if not user_id.isdigit():
            return error(400, "user_id is required and must be numeric")
        room.mutes.pop(user_id, None)
        return self._tiktok()

    async def _list_mutes(self, request: Request, ctx: dict[str, Any]) -> Response:
        room = self._room(request)
        if isinstance(room, Response):
            return room
        now = self.world.now()
        rows = [
            self._user_row(uid, mute_duration=-1 if until is None else int(until - now))
            for uid, until in room.mutes.items()
            if room.muted(uid, now)
        ]
        return self._list(rows, ctx)

    async def _ban(self, request: Request, ctx: dict[str, Any]) -> Response:
        return self._change(self._room(request), ctx, "tiktok_user_id", _bans, add=True)

    async def _unban(self, request: Request, ctx: dict[str, Any]) -> Response:
        return self._change(self._room(request), ctx, "tiktok_user_id", _bans, add=False)

    async def _add_moderator(self, request: Request, ctx: dict[str, Any]) -> Response:
        return self._change(self._anchor(request), ctx, "to_user_id", _moderators, add=True)

    async def _remove_moderator(self, request: Request, ctx: dict[str, Any]) -> Response:
        return self._change(self._anchor(request), ctx, "to_user_id", _moderators, add=False)

    def _change(
        self,
        where: FakeStreamer | Response,
        ctx: dict[str, Any],
        param: str,
        members: Callable[[FakeStreamer], set[str]],
        *,
        add: bool,
    ) -> Response:
        """Add the user named by ``param`` to a room's or an anchor's ``members``, or take it out."""
        if isinstance(where, Response):
            return where
        user_id = ctx["params"].get(param, "")
        if not user_id.isdigit():
            return error(400, f"{param} is required and must be numeric")
        if add:
            members(where).add(user_id)
        else:
            members(where).discard(user_id)
        return self._tiktok()

    async def _list_bans(self, request: Request, ctx: dict[str, Any]) -> Response:
        room = self._room(request)
        if isinstance(room, Response):
            return room
        return self._list([self._user_row(uid) for uid in sorted(room.bans)], ctx)

    async def _toggle_comments(self, request: Request, ctx: dict[str, Any]) -> Response:
        room = self._room(request)
        if isinstance(room, Response):
            return room
        enabled = ctx["params"].get("enabled", "").lower()
        if enabled not in ("true", "false", "1", "0"):
            return error(400, "enabled must be true or false")
        room.comments_enabled = enabled in ("true", "1")
        return self._tiktok()

    async def _list_moderators(self, request: Request, ctx: dict[str, Any]) -> Response:
        del ctx
        anchor = self._anchor(request)
        if isinstance(anchor, Response):
            return anchor
        return self._list([self._user_row(uid) for uid in sorted(anchor.moderators)])

    # --- the keyword filter (sensitive words) ---------------------------------------------

    def _words_of(self, request: Request, ctx: dict[str, Any]) -> FakeStreamer | Response:
        room = self._room(request)
        if isinstance(room, Response):
            return room
        if ctx["params"].get("sec_anchor_id") != room.sec_uid:
            return error(400, "sec_anchor_id is required and must be the room's anchor")
        return room

    async def _list_words(self, request: Request, ctx: dict[str, Any]) -> Response:
        room = self._words_of(request, ctx)
        if isinstance(room, Response):
            return room
        rows = [{"word_id": wid, "word": w} for wid, w in room.sensitive_words.items()]
        return self._list(rows, ctx)

    async def _add_word(self, request: Request, ctx: dict[str, Any]) -> Response:
        room = self._words_of(request, ctx)
        if isinstance(room, Response):
            return room
        word = ctx["params"].get("word", "")
        if not word.strip():
            return error(400, "word is required")
        found = next((wid for wid, w in room.sensitive_words.items() if w == word), None)
        word_id = found or self.world.new_word_id()
        room.sensitive_words[word_id] = word
        return self._tiktok({"word_id": word_id, "word": word})

    async def _remove_word(self, request: Request, ctx: dict[str, Any]) -> Response:
        room = self._words_of(request, ctx)
        if isinstance(room, Response):
            return room
        word_id = ctx["params"].get("word_id", "")
        if not word_id.isdigit():
            return error(400, "word_id is required and must be numeric")
        room.sensitive_words.pop(word_id, None)
        return self._tiktok()


def _bans(streamer: FakeStreamer) -> set[str]:
    return streamer.bans


def _moderators(streamer: FakeStreamer) -> set[str]:
    return streamer.moderators
