"""A fake Euler Stream service: the real routes, headers, envelopes and errors, on loopback.

Built on Starlette (served by uvicorn through ``modbot.loopback``), it keeps state the
way Euler and TikTok do (who is live, who is muted until when, who is banned, whether
comments are on, who moderates), runs an OAuth authorize shortcut and token endpoint
with expiring, rotating tokens, and serves the Euler WebSocket with JSON bundles and
close codes. Tests inject faults per route (429 with headers, 5xx, latency, an error
``code`` inside an HTTP 200), drop WebSockets with a chosen close code, expire tokens
mid-run, and read back every call it received from ``calls``.

Used by the test suite, ``modbot demo`` and ``bench/``.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route as StarletteRoute
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from modbot.clock import Clock, SystemClock
from modbot.euler.routes import DEFAULT_ROUTES
from modbot.euler.scopes import KNOWN_SCOPES
from modbot.fake import messages as msgs
from modbot.fake.messages import Viewer

ALLOWED_MUTE_DURATIONS = frozenset({-1, 5, 30, 60, 300})
DAY = 86_400.0


@dataclass
class Fault:
    """A failure to inject on a route, for the next ``times`` requests (-1: always).

    ``status`` 0 means no error (only ``latency``). ``in_200`` sends the error as an
    envelope ``code`` inside an HTTP 200, as Euler sometimes does.
    """

    status: int = 0
    times: int = 1
    latency: float = 0.0
    retry_after: float | None = None
    reset: float | None = None
    body: dict[str, Any] | None = None
    in_200: bool = False


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


@dataclass
class FakeStreamer:
    """A streamer's account and room, with TikTok's moderation state."""

    owner: Viewer
    room_id: str
    is_live: bool = False
    comments_enabled: bool = True
    mutes: dict[str, float | None] = field(default_factory=dict)  # user id -> until (epoch)
    bans: set[str] = field(default_factory=set)
    moderators: set[str] = field(default_factory=set)
    chat: list[str] = field(default_factory=list)
    # Rooms of earlier streams: moderation (bans, mutes) belongs to the account, so a
    # call naming an earlier room still reaches this streamer (an undo the next day).
    past_rooms: set[str] = field(default_factory=set)

    @property
    def unique_id(self) -> str:
        return self.owner.unique_id

    @property
    def user_id(self) -> str:
        return self.owner.user_id

    def muted(self, user_id: str, now: float) -> bool:
        """Whether the user is muted at ``now``."""
        if user_id not in self.mutes:
            return False
        until = self.mutes[user_id]
        return until is None or until > now


@dataclass
class _Grant:
    scopes: frozenset[str]
    account: str  # unique_id of the account that granted
    expires_at: float
    refresh_token: str


@dataclass
class _Refresh:
    scopes: frozenset[str]
    account: str
    expires_at: float
    used: bool = False


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    scopes: frozenset[str]
    account: str
    used: bool = False


@dataclass
class _Connection:
    unique_id: str
    send: MemoryObjectSendStream[tuple[str, Any]]
    closing: bool = False  # a close is queued: nothing pushed after it reaches the client


class FakeEuler:
    """The fake service's state and its ASGI ``app``."""

    def __init__(
        self,
        *,
        api_key: str = "fake-api-key",
        client_id: str = "fake-client-id",
        client_secret: str = "fake-client-secret",
        clock: Clock | None = None,
        access_ttl: float = 3600.0,
        refresh_ttl: float = 30 * DAY,
        scope_format: str = "array",
        rate_limit_per_minute: int | None = None,
    ) -> None:
        self.api_key = api_key
        self.client_id = client_id
        self.client_secret = client_secret
        self.clock: Clock = clock or SystemClock()
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.scope_format = scope_format
        self.rate_limit_per_minute = rate_limit_per_minute
        self.streamers: dict[str, FakeStreamer] = {}
        self.calls: list[RecordedCall] = []
        self.faults: dict[str, list[Fault]] = defaultdict(list)
        self.plan_denied: set[str] = set()
        self.grant_only: frozenset[str] | None = None
        self.deny_authorization = False
        self.account: str | None = None  # who logs in on the authorize page
        self.ws_connects: list[dict[str, str]] = []
        self.allowed_scopes: frozenset[str] = KNOWN_SCOPES
        self.request_hooks: list[Callable[[str, str | None], None]] = []
        self.undelivered = 0
        # Per-route budgets (requests, window seconds), advertised on every answer of the
        # route (RateLimit-Policy/-Limit/-Remaining/-Reset) and enforced with 429s.
        self.route_limits: dict[str, tuple[int, float]] = {}
        self.limited: Counter[str] = Counter()  # 429s answered for a route budget
        self._route_seen: dict[str, deque[float]] = defaultdict(deque)
        self._access: dict[str, _Grant] = {}
        self._refresh: dict[str, _Refresh] = {}
        self._codes: dict[str, _Code] = {}
        self._connections: list[_Connection] = []
        self._connected = anyio.Event()
        self._minute_window: tuple[int, int] = (0, 0)
        self._next_user_id = 6_812_345_678_901_234_567
        self.app = self._build_app()

    # --- state, for tests and scenarios -------------------------------------------------

    def now(self) -> float:
        """The fake's clock, in epoch seconds."""
        return self.clock.now().timestamp()

    def now_ms(self) -> int:
        return int(self.now() * 1000)

    def new_user_id(self) -> str:
        """A fresh numeric user id above 2^53."""
        self._next_user_id += 7919
        return str(self._next_user_id)

    def add_streamer(
        self,
        unique_id: str,
        *,
        user_id: str | None = None,
        room_id: str | None = None,
        live: bool = False,
        nickname: str = "",
    ) -> FakeStreamer:
        """Create a streamer (offline unless ``live``)."""
        owner = Viewer(
            unique_id=unique_id,
            user_id=user_id or self.new_user_id(),
            nickname=nickname or unique_id,
            is_owner=True,
        )
        streamer = FakeStreamer(owner=owner, room_id=room_id or self.new_room_id(), is_live=live)
        self.streamers[unique_id.lower()] = streamer
        if self.account is None:
            self.account = unique_id
        return streamer

    def new_room_id(self) -> str:
        return str(
            7_301_234_567_890_123_456 + len(self.streamers) * 1_000_003 + secrets.randbelow(997)
        )

    def streamer(self, unique_id: str) -> FakeStreamer:
        """The streamer with this handle (KeyError if unknown)."""
        return self.streamers[unique_id.lower().removeprefix("@")]

    def by_room(self, room_id: str) -> FakeStreamer | None:
        return next(
            (s for s in self.streamers.values() if room_id in (s.room_id, *s.past_rooms)), None
        )

    def go_live(self, unique_id: str, *, new_room: bool = True) -> FakeStreamer:
        """The streamer starts a stream (in a new room, as TikTok does)."""
        streamer = self.streamer(unique_id)
        if not streamer.is_live:
            if new_room:
                streamer.past_rooms.add(streamer.room_id)
                streamer.room_id = self.new_room_id()
            streamer.is_live = True
            streamer.comments_enabled = True
        return streamer

    def go_offline(self, unique_id: str, *, action: int = 3) -> None:
        """The stream ends: a control message, then close code 4005 on every socket."""
        streamer = self.streamer(unique_id)
        streamer.is_live = False
        end = msgs.stream_end(streamer.room_id, self.now_ms(), action=action)
        self.emit(unique_id, [end])
        self.drop(unique_id, 4005, "TikTok stream ended")

    def inject(self, route: str, fault: Fault) -> None:
        """Fail the next requests to ``route`` (a route-table name, or ``*`` for all)."""
        if route != "*" and route not in DEFAULT_ROUTES:
            msg = f"unknown route {route!r}"
            raise KeyError(msg)
        self.faults[route].append(fault)

    def clear_faults(self) -> None:
        self.faults.clear()

    def issue_tokens(self, scopes: Iterable[str], account: str | None = None) -> dict[str, Any]:
        """Grant tokens directly, as if the streamer had logged in (the token answer's data)."""
        return self._issue(frozenset(scopes), account or self.account or "")

    def accept_grant(
        self, access: str, refresh: str, scopes: Iterable[str], account: str, ttl: float = 3600
    ) -> None:
        """Honour tokens this fake issued in an earlier life (``modbot undo`` after the demo)."""
        expires = self.now() + ttl
        self._access[access] = _Grant(frozenset(scopes), account, expires, refresh)
        self._refresh[refresh] = _Refresh(frozenset(scopes), account, expires)

    def expire_access_tokens(self) -> None:
        """Every access token issued so far expires now (refresh tokens stay valid)."""
        now = self.now()
        for grant in self._access.values():
            grant.expires_at = min(grant.expires_at, now - 1)

    def expire_refresh_tokens(self) -> None:
        """Every refresh token dies: only a new login helps."""
        now = self.now()
        for refresh in self._refresh.values():
            refresh.expires_at = min(refresh.expires_at, now - 1)

    def calls_to(self, *routes: str, ok_only: bool = False) -> list[RecordedCall]:
        """Recorded calls to these routes (in order), optionally only the successful ones."""
        return [
            c for c in self.calls if c.route in routes and (not ok_only or 200 <= c.status < 300)
        ]

    # --- WebSocket control ----------------------------------------------------------------

    def connections(self, unique_id: str | None = None) -> int:
        """How many event sockets are open (for one streamer, or all)."""
        return sum(
            1
            for c in self._connections
            if unique_id is None or c.unique_id.lower() == unique_id.lower()
        )

    async def wait_connected(self, unique_id: str, timeout: float = 10.0) -> None:
        """Wait until a client holds an event socket for ``unique_id``."""
        with anyio.fail_after(timeout):
            while not self.connections(unique_id):
                self._connected = anyio.Event()
                await self._connected.wait()

    def emit(self, unique_id: str, messages: list[dict[str, Any]]) -> int:
        """Send one bundle to every socket of the streamer; returns how many got it."""
        frame = msgs.bundle(messages, self.now_ms())
        return self._push(unique_id, ("bundle", frame))

    def emit_raw(self, unique_id: str, text: str) -> int:
        """Send a raw text frame (for malformed-frame tests)."""
        return self._push(unique_id, ("raw", text))

    def drop(self, unique_id: str, code: int, reason: str = "") -> int:
        """Close every socket of the streamer with ``code``."""
        return self._push(unique_id, ("close", (code, reason)))

    def _push(self, unique_id: str, item: tuple[str, Any]) -> int:
        sent = 0
        for conn in list(self._connections):
            if conn.unique_id.lower() == unique_id.lower():
                if conn.closing:
                    continue  # it would be lost on the way: not delivered
                try:
                    conn.send.send_nowait(item)
                    sent += 1
                except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    self.undelivered += 1
                conn.closing = item[0] == "close"
        if not sent and item[0] == "bundle":
            self.undelivered += 1
        return sent

    # --- the app --------------------------------------------------------------------------

    def _build_app(self) -> Starlette:
        handlers: dict[str, Callable[[Request, dict[str, Any]], Awaitable[Response]]] = {
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
            "rate_limits": self._rate_limits,
            "userinfo": self._userinfo,
            "token": self._token,
            "revoke": self._revoke,
        }
        by_path: dict[str, dict[str, str]] = defaultdict(dict)
        for name, route in DEFAULT_ROUTES.items():
            by_path[route.path][route.method] = name
        routes: list[StarletteRoute | WebSocketRoute] = [
            StarletteRoute(path, self._dispatcher(methods, handlers), methods=list(methods))
            for path, methods in by_path.items()
        ]
        routes.append(StarletteRoute("/tiktok/oauth/authorize", self._authorize, methods=["GET"]))
        routes.append(WebSocketRoute("/", self._websocket))
        return Starlette(routes=routes)

    def _dispatcher(
        self,
        methods: dict[str, str],
        handlers: dict[str, Callable[[Request, dict[str, Any]], Awaitable[Response]]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            name = methods[request.method]
            return await self._serve(name, request, handlers[name])

        return endpoint

    async def _serve(
        self,
        name: str,
        request: Request,
        handler: Callable[[Request, dict[str, Any]], Awaitable[Response]],
    ) -> Response:
        route = DEFAULT_ROUTES[name]
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
        grant = self._access.get(token) if token else None
        token_ok = grant is not None and grant.expires_at > self.now()
        ctx: dict[str, Any] = {"body": body, "params": params, "grant": grant}
        arrived = self.now()
        budget = self._route_budget(name, arrived)
        if budget is not None and budget[1] < 0:
            self.limited[name] += 1
            ctx["injected"] = True
            response: Response = JSONResponse(
                {"code": 429, "message": "Too many requests to this route."}, status_code=429
            )
        else:
            response = await self._respond(
                name,
                route.scope,
                route.session,
                request,
                ctx,
                handler,
                api_key_ok=api_key_ok,
                token=token,
                token_ok=token_ok,
            )
        if budget is not None:
            limit, remaining, reset = budget
            window = self.route_limits[name][1]
            response.headers["RateLimit-Policy"] = f"{limit};w={window:g}"
            response.headers["RateLimit-Limit"] = str(limit)
            response.headers["RateLimit-Remaining"] = str(max(0, remaining))
            response.headers["RateLimit-Reset"] = f"{max(1, math.ceil(reset))}"
            if remaining < 0:
                response.headers["Retry-After"] = f"{max(1, math.ceil(reset))}"
        self.calls.append(
            RecordedCall(
                route=name,
                method=request.method,
                path=request.url.path,
                params=params,
                body=body,
                at=self.now(),
                status=response.status_code if not _is_200_error(response) else _code(response),
                api_key_ok=api_key_ok,
                token_ok=token_ok,
                sent_token=token is not None,
                arrived=arrived,
                injected=bool(ctx.get("injected")),
            )
        )
        return response

    def _route_budget(self, name: str, now: float) -> tuple[int, int, float] | None:
        """(limit, remaining after this request, seconds to reset) for a limited route."""
        if name not in self.route_limits:
            return None
        limit, window = self.route_limits[name]
        seen = self._route_seen[name]
        while seen and now - seen[0] >= window:
            seen.popleft()
        if len(seen) >= limit:
            return limit, -1, window - (now - seen[0])
        seen.append(now)
        return limit, limit - len(seen), window - (now - seen[0])

    async def _respond(
        self,
        name: str,
        scope: str | None,
        session: bool,
        request: Request,
        ctx: dict[str, Any],
        handler: Callable[[Request, dict[str, Any]], Awaitable[Response]],
        *,
        api_key_ok: bool,
        token: str | None,
        token_ok: bool,
    ) -> Response:
        fault = self._take_fault(name)
        if fault is not None:
            if fault.latency:
                await anyio.sleep(fault.latency)
            if fault.status:
                ctx["injected"] = True
                return self._fault_response(fault)
        if name not in ("token", "revoke") and not api_key_ok:
            return _error(401, "Invalid or missing API key (x-api-key)")
        limited = self._count_rate()
        if limited is not None:
            return limited
        if name in self.plan_denied:
            return _error(
                401,
                "You lack authorization for this endpoint. If this is a premium endpoint, "
                "upgrade at https://www.eulerstream.com/pricing.",
            )
        if session:
            if not token:
                return _error(
                    401, "Provide exactly one of the headers x-oauth-token or x-cookie-header"
                )
            if not token_ok:
                return _error(401, "The OAuth access token is invalid or expired")
            grant: _Grant = ctx["grant"]
            if scope and scope not in grant.scopes:
                return _error(403, f"This OAuth grant lacks the scope {scope}")
        return await handler(request, ctx)

    def _take_fault(self, name: str) -> Fault | None:
        for key in (name, "*"):
            queue = self.faults.get(key)
            if not queue:
                continue
            fault = queue[0]
            if fault.times > 0:
                fault.times -= 1
                if fault.times == 0:
                    queue.pop(0)
            return fault
        return None

    def _fault_response(self, fault: Fault) -> Response:
        status = fault.status
        if fault.body is not None:
            body = dict(fault.body)
        elif status == 429:
            body = {
                "code": 429,
                "message": "You have reached the rate limit. Sign up for a free API key at https://www.eulerstream.com/pricing.",
                "limit_label": "rate_limit_account_minute",
            }
        elif status == 500:
            body = {"code": 500, "error": f"Internal Server Error - {secrets.token_hex(8)}"}
        else:
            body = {"code": status, "message": f"Injected error {status}"}
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = f"{fault.retry_after:g}"
        if fault.reset is not None:
            headers["RateLimit-Reset"] = f"{fault.reset:.0f}"
            headers["X-RateLimit-Reset"] = f"{fault.reset:.0f}"
        if status == 429:
            headers.setdefault("RateLimit-Limit", str(self.rate_limit_per_minute or 60))
            headers.setdefault("RateLimit-Remaining", "0")
        return JSONResponse(body, status_code=200 if fault.in_200 else status, headers=headers)

    def _count_rate(self) -> Response | None:
        minute = int(self.now() // 60)
        start, count = self._minute_window
        if start != minute:
            start, count = minute, 0
        count += 1
        self._minute_window = (start, count)
        limit = self.rate_limit_per_minute
        if limit is not None and count > limit:
            reset = (minute + 1) * 60
            wait = max(1, math.ceil(reset - self.now()))
            return JSONResponse(
                {
                    "code": 429,
                    "message": "You have reached the rate limit.",
                    "limit_label": "rate_limit_account_minute",
                },
                status_code=429,
                headers={
                    "Retry-After": str(wait),
                    "RateLimit-Limit": str(limit),
                    "RateLimit-Remaining": "0",
                    "RateLimit-Reset": str(wait),
                    "X-RateLimit-Reset": str(reset),
                },
            )
        return None

    # --- lookups --------------------------------------------------------------------------

    async def _user_id(self, request: Request, ctx: dict[str, Any]) -> Response:
        del ctx
        streamer = self.streamers.get(request.path_params["unique_id"].lower())
        if streamer is None:
            return _error(404, "User not found")
        return JSONResponse({"code": 200, "numeric_user_id": streamer.user_id})

    async def _room_id(self, request: Request, ctx: dict[str, Any]) -> Response:
        del ctx
        streamer = self.streamers.get(request.path_params["unique_id"].lower())
        if streamer is None:
            return _error(404, "User not found")
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
            return _error(400, "user_numeric_ids must be a list of strings")
        if len(ids) > 50:
            return _error(400, "At most 50 user_numeric_ids per call")
        data = {}
        for user_id in ids:
            streamer = next((s for s in self.streamers.values() if s.user_id == user_id), None)
            if streamer is not None:
                data[user_id] = {
                    "room_id": streamer.room_id if streamer.is_live else "0",
                    "is_live": streamer.is_live,
                }
        return JSONResponse({"code": 200, "response": {"data": data}})

    async def _rate_limits(self, request: Request, ctx: dict[str, Any]) -> Response:
        del request, ctx
        limit = self.rate_limit_per_minute or 1000
        used = self._minute_window[1]
        reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((int(self.now() // 60) + 1) * 60))
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
        grant: _Grant = ctx["grant"]
        streamer = self.streamers.get(grant.account.lower())
        if streamer is None:
            return _error(404, "User not found")
        return JSONResponse(
            {
                "code": 200,
                "user": {
                    "uid": int(streamer.user_id),
                    "uniqueId": streamer.unique_id,
                    "nickName": streamer.owner.nickname,
                    "roomId": streamer.room_id if streamer.is_live else "",
                    "hasLivePermission": True,
                },
            }
        )

    # --- moderation -----------------------------------------------------------------------

    def _room(self, request: Request) -> FakeStreamer | Response:
        streamer = self.by_room(request.path_params["room_id"])
        if streamer is None:
            return _error(404, "Room not found")
        return streamer

    def _tiktok(self, data: Any = None, status_code: int = 0) -> Response:
        return JSONResponse(
            {
                "code": 200,
                "response": {
                    "data": {
                        "data": {} if data is None else data,
                        "extra": {"now": self.now_ms()},
                        "status_code": status_code,
                    }
                },
            }
        )

    async def _chat(self, request: Request, ctx: dict[str, Any]) -> Response:
        room = self._room(request)
        if isinstance(room, Response):
            return room
        body = ctx["body"]
        content = body.get("content") if isinstance(body, dict) else None
        if not isinstance(content, str) or not content:
            return _error(400, "content is required")
        room.chat.append(content)
        return JSONResponse(
            {
                "code": 200,
                "data": {"data": {}, "extra": {"now": self.now_ms()}, "status_code": 0},
            }
        )

    async def _mute(self, request: Request, ctx: dict[str, Any]) -> Response:
        room = self._room(request)
        if isinstance(room, Response):
            return room
        params = ctx["params"]
        user_id = params.get("user_id", "")
        if not user_id.isdigit():
            return _error(400, "user_id is required and must be numeric")
        raw = params.get("duration", "-1")
        try:
            duration = int(raw)
        except ValueError:
            return _error(400, "duration must be one of -1, 5, 30, 60, 300")
        if duration not in ALLOWED_MUTE_DURATIONS:
            return _error(400, "duration must be one of -1, 5, 30, 60, 300")
        room.mutes[user_id] = None if duration == -1 else self.now() + duration
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
            return _error(400, "user_id is required and must be numeric")
        room.mutes.pop(user_id, None)
        return self._tiktok()

    async def _list_mutes(self, request: Request, ctx: dict[str, Any]) -> Response:
        del ctx
        room = self._room(request)
        if isinstance(room, Response):
            return room
        now = self.now()
        rows = [
            _tiktok_user(uid, mute_duration=-1 if until is None else int(until - now))
            for uid, until in room.mutes.items()
            if room.muted(uid, now)
        ]
        return self._list(rows)

    async def _ban(self, request: Request, ctx: dict[str, Any]) -> Response:
        room = self._room(request)
        if isinstance(room, Response):
            return room
        user_id = ctx["params"].get("tiktok_user_id", "")
        if not user_id.isdigit():
            return _error(400, "tiktok_user_id is required and must be numeric")
        room.bans.add(user_id)
        return self._tiktok()

    async def _unban(self, request: Request, ctx: dict[str, Any]) -> Response:
        room = self._room(request)
        if isinstance(room, Response):
            return room
        user_id = ctx["params"].get("tiktok_user_id", "")
        if not user_id.isdigit():
            return _error(400, "tiktok_user_id is required and must be numeric")
        room.bans.discard(user_id)
        return self._tiktok()

    async def _list_bans(self, request: Request, ctx: dict[str, Any]) -> Response:
        del ctx
        room = self._room(request)
        if isinstance(room, Response):
            return room
        return self._list([_tiktok_user(uid) for uid in sorted(room.bans)])

    def _list(self, rows: list[dict[str, Any]]) -> Response:
        return JSONResponse(
            {
                "code": 200,
                "response": {
                    "data": {
                        "data": rows,
                        "extra": {
                            "has_more": False,
                            "next_cursor": 0,
                            "now": self.now_ms(),
                            "total": len(rows),
                        },
                        "status_code": 0,
                    }
                },
            }
        )

    async def _toggle_comments(self, request: Request, ctx: dict[str, Any]) -> Response:
        room = self._room(request)
        if isinstance(room, Response):
            return room
        enabled = ctx["params"].get("enabled", "").lower()
        if enabled not in ("true", "false", "1", "0"):
            return _error(400, "enabled must be true or false")
        room.comments_enabled = enabled in ("true", "1")
        return self._tiktok()

    def _anchor(self, request: Request) -> FakeStreamer | Response:
        anchor = request.path_params["anchor_id"]
        streamer = next((s for s in self.streamers.values() if s.user_id == anchor), None)
        if streamer is None:
            return _error(404, "Anchor not found")
        return streamer

    async def _add_moderator(self, request: Request, ctx: dict[str, Any]) -> Response:
        anchor = self._anchor(request)
        if isinstance(anchor, Response):
            return anchor
        user_id = ctx["params"].get("to_user_id", "")
        if not user_id.isdigit():
            return _error(400, "to_user_id is required and must be numeric")
        anchor.moderators.add(user_id)
        return self._tiktok()

    async def _remove_moderator(self, request: Request, ctx: dict[str, Any]) -> Response:
        anchor = self._anchor(request)
        if isinstance(anchor, Response):
            return anchor
        user_id = ctx["params"].get("to_user_id", "")
        if not user_id.isdigit():
            return _error(400, "to_user_id is required and must be numeric")
        anchor.moderators.discard(user_id)
        return self._tiktok()

    async def _list_moderators(self, request: Request, ctx: dict[str, Any]) -> Response:
        del ctx
        anchor = self._anchor(request)
        if isinstance(anchor, Response):
            return anchor
        return self._list([_tiktok_user(uid) for uid in sorted(anchor.moderators)])

    # --- OAuth ----------------------------------------------------------------------------

    async def _authorize(self, request: Request) -> Response:
        q = request.query_params
        client_id = q.get("client_id", "")
        redirect_uri = q.get("redirect_uri", "")
        state = q.get("state", "")
        if client_id != self.client_id:
            return _error(400, "invalid_client: unknown client_id")
        parts = urlsplit(redirect_uri)
        loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
        if not parts.scheme or (parts.scheme != "https" and not loopback):
            return _error(400, "invalid_redirect_uri: HTTPS required except on localhost")

        def back(**values: str) -> Response:
            query = urlencode({**values, "state": state})
            return RedirectResponse(f"{redirect_uri}?{query}", status_code=302)

        if q.get("response_type") != "code":
            return back(
                error="unsupported_response_type",
                error_description="Only response_type=code is supported",
            )
        scopes = q.get("scope", "").split()
        bad = [s for s in scopes if s not in self.allowed_scopes]
        if bad or not scopes:
            return back(
                error="invalid_scope",
                error_description=f"Invalid scope: {', '.join(bad) or '(none requested)'}",
            )
        if self.deny_authorization:
            return back(error="access_denied", error_description="The user denied access")
        granted = frozenset(scopes)
        if self.grant_only is not None:
            granted &= self.grant_only
        code = secrets.token_urlsafe(24)
        self._codes[code] = _Code(client_id, redirect_uri, granted, self.account or "")
        return back(code=code)

    async def _token(self, request: Request, ctx: dict[str, Any]) -> Response:
        del request
        body = ctx["body"]
        if not isinstance(body, dict):
            return _oauth_error(400, "invalid_request", "The body must be a JSON object")
        if (
            body.get("client_id") != self.client_id
            or body.get("client_secret") != self.client_secret
        ):
            return _oauth_error(401, "invalid_client", "Unknown client or wrong secret")
        grant_type = body.get("grant_type")
        if grant_type == "authorization_code":
            code = self._codes.get(str(body.get("code")))
            if code is None or code.used:
                return _oauth_error(400, "invalid_grant", "The code is invalid or was used")
            if body.get("redirect_uri") != code.redirect_uri:
                return _oauth_error(400, "invalid_grant", "redirect_uri must match the original")
            code.used = True
            return self._token_answer(self._issue(code.scopes, code.account))
        if grant_type == "refresh_token":
            refresh = self._refresh.get(str(body.get("refresh_token")))
            if refresh is None or refresh.used or refresh.expires_at <= self.now():
                return _oauth_error(400, "invalid_grant", "The refresh token is invalid or expired")
            refresh.used = True  # single-use: it rotates
            return self._token_answer(self._issue(refresh.scopes, refresh.account))
        return _oauth_error(400, "unsupported_grant_type", "Unknown grant_type")

    def _issue(self, scopes: frozenset[str], account: str) -> dict[str, Any]:
        access = "fake-at-" + secrets.token_urlsafe(24)
        refresh = "fake-rt-" + secrets.token_urlsafe(24)
        now = self.now()
        self._access[access] = _Grant(scopes, account, now + self.access_ttl, refresh)
        self._refresh[refresh] = _Refresh(scopes, account, now + self.refresh_ttl)
        data: dict[str, Any] = {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "Bearer",
            "expires_in": int(self.access_ttl),
            "refresh_expires_in": int(self.refresh_ttl),
        }
        if self.scope_format == "string":
            data["scope"] = " ".join(sorted(scopes))
        else:
            data["scopes"] = sorted(scopes)
        return data

    def _token_answer(self, data: dict[str, Any]) -> Response:
        return JSONResponse({"code": 200, "message": "OK", "data": data})

    async def _revoke(self, request: Request, ctx: dict[str, Any]) -> Response:
        del request
        body = ctx["body"]
        if not isinstance(body, dict):
            return _oauth_error(400, "invalid_request", "The body must be a JSON object")
        if (
            body.get("client_id") != self.client_id
            or body.get("client_secret") != self.client_secret
        ):
            return _oauth_error(401, "invalid_client", "Unknown client or wrong secret")
        token = str(body.get("token"))
        self._access.pop(token, None)
        refresh = self._refresh.pop(token, None)
        if refresh is not None:
            for key in [k for k, g in self._access.items() if g.refresh_token == token]:
                del self._access[key]
        return JSONResponse({"code": 200, "message": "OK"})

    def token_valid(self, token: str) -> bool:
        """Whether an access token would be accepted now."""
        grant = self._access.get(token)
        return grant is not None and grant.expires_at > self.now()

    def refresh_valid(self, token: str) -> bool:
        """Whether a refresh token would be accepted now."""
        refresh = self._refresh.get(token)
        return refresh is not None and not refresh.used and refresh.expires_at > self.now()

    # --- WebSocket ------------------------------------------------------------------------

    async def _websocket(self, websocket: WebSocket) -> None:
        q = websocket.query_params
        self.ws_connects.append({k: v for k, v in q.items() if k not in ("apiKey", "jwtKey")})
        await websocket.accept()
        unique_id = q.get("uniqueId", "").removeprefix("@")
        if q.get("apiKey") != self.api_key:
            await websocket.close(4401, "Invalid auth")
            return
        if (
            q.get("features.bundleEvents") not in ("true", "1")
            or q.get("features.schemaVersion") != "v2"
        ):
            await websocket.close(
                4400,
                "Invalid options: the fake serves features.bundleEvents=true, schemaVersion=v2",
            )
            return
        fault = self._take_fault("*ws")
        if fault is not None and fault.status:
            await websocket.close(fault.status, "Injected close")
            return
        streamer = self.streamers.get(unique_id.lower())
        if streamer is None:
            await websocket.close(4400, "Invalid options: unknown uniqueId")
            return
        if not streamer.is_live:
            await websocket.close(4404, "Streamer is not live")
            return
        send, receive = anyio.create_memory_object_stream[tuple[str, Any]](10_000)
        conn = _Connection(streamer.unique_id, send)
        await websocket.send_text(
            json.dumps(
                msgs.bundle(
                    [msgs.room_info(streamer.room_id, streamer.owner, self.now_ms())], self.now_ms()
                )
            )
        )
        self._connections.append(conn)
        self._connected.set()
        try:
            await self._pump(websocket, receive)
        finally:
            self._connections.remove(conn)
            send.close()

    async def _pump(
        self, websocket: WebSocket, receive: MemoryObjectReceiveStream[tuple[str, Any]]
    ) -> None:
        async with anyio.create_task_group() as tg:

            async def watch_client() -> None:
                try:
                    while True:
                        message = await websocket.receive()
                        if message["type"] == "websocket.disconnect":
                            break
                except (WebSocketDisconnect, RuntimeError):
                    pass
                tg.cancel_scope.cancel()

            tg.start_soon(watch_client)
            async with receive:
                async for kind, value in receive:
                    if kind == "close":
                        code, reason = value
                        await websocket.close(code, reason)
                        break
                    text = json.dumps(value) if kind == "bundle" else str(value)
                    await websocket.send_text(text)
            tg.cancel_scope.cancel()

    # --- ws fault (close on connect) ------------------------------------------------------

    def fail_next_connect(self, code: int, times: int = 1) -> None:
        """Close the next ``times`` WebSocket connections at once with ``code``."""
        self.faults["*ws"].append(Fault(status=code, times=times))


def _tiktok_user(user_id: str, *, mute_duration: int | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": int(user_id),
        "id_str": user_id,
        "display_id": f"user{user_id[-6:]}",
        "nickname": f"User {user_id[-4:]}",
        "sec_uid": "MS4wLj" + user_id[-8:],
    }
    if mute_duration is not None:
        row["user_attr"] = {"is_muted": True, "mute_duration": mute_duration}
    return row


def _error(status: int, message: str) -> Response:
    return JSONResponse({"code": status, "message": message}, status_code=status)


def _oauth_error(status: int, error: str, description: str) -> Response:
    return JSONResponse(
        {
            "code": status,
            "message": description,
            "error": {"error": error, "error_description": description},
        },
        status_code=status,
    )


def _is_200_error(response: Response) -> bool:
    return response.status_code == 200 and _code(response) >= 400


def _code(response: Response) -> int:
    try:
        body = json.loads(bytes(response.body))
    except (ValueError, AttributeError):
        return response.status_code
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, int) else response.status_code
