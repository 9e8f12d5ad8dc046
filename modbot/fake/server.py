"""A fake Euler Stream service: the real routes, headers, envelopes and errors, on loopback.

Built on Starlette (served by uvicorn through ``modbot.loopback``), it keeps state the
way Euler and TikTok do (who is live, who is muted until when, who is banned, whether
comments are on, who moderates), runs an OAuth authorize shortcut and token endpoint
with expiring, rotating tokens, and serves the Euler WebSocket with JSON bundles and
close codes. Tests inject faults per route (429 with headers, 5xx, latency, an error
``code`` inside an HTTP 200), drop WebSockets with a chosen close code, expire tokens
mid-run, and read back every call it received from ``calls``.

This module is the assembly; each part has a module of its own:

- ``modbot.fake.world``: streamers and their rooms (``FakeStreamer``);
- ``modbot.fake.api``: the REST routes, the request pipeline and ``RecordedCall``;
- ``modbot.fake.oauth``: the authorize page, tokens and grants;
- ``modbot.fake.ws``: the event WebSocket;
- ``modbot.fake.faults``: injected faults (``Fault``) and rate limits;
- ``modbot.fake.envelopes``: the shapes of Euler's answers.

Used by the test suite, ``modbot demo`` and ``bench/``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute
from starlette.routing import WebSocketRoute

from modbot.clock import Clock, SystemClock
from modbot.fake import messages as msgs
from modbot.fake.api import ALLOWED_MUTE_DURATIONS, ROUTES, Api, RecordedCall
from modbot.fake.faults import Fault, Faults, RateLimits
from modbot.fake.oauth import OAuthServer
from modbot.fake.world import FakeStreamer, World
from modbot.fake.ws import Sockets

__all__ = ["ALLOWED_MUTE_DURATIONS", "DAY", "FakeEuler", "FakeStreamer", "Fault", "RecordedCall"]

DAY = 86_400.0


class FakeEuler:
    """The fake service: its parts (``world``, ``api``, ``oauth``, ``sockets``, ``faults``,
    ``limits``), the ASGI ``app`` that serves them, and the controls tests and scenarios use.
    """

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
        self.world = World(clock or SystemClock())
        self.faults = Faults(ROUTES)
        self.limits = RateLimits(rate_limit_per_minute)
        self.oauth = OAuthServer(
            self.world,
            client_id=client_id,
            client_secret=client_secret,
            access_ttl=access_ttl,
            refresh_ttl=refresh_ttl,
            scope_format=scope_format,
        )
        self.api = Api(self.world, self.oauth, self.faults, self.limits, api_key=api_key)
        self.sockets = Sockets(self.world, self.faults, api_key=api_key)
        self.app = self._build_app()
        # The world's own controls, offered here as they are (see World for each).
        world = self.world
        self.now, self.now_ms = world.now, world.now_ms
        self.new_user_id, self.new_room_id = world.new_user_id, world.new_room_id
        self.add_streamer, self.streamer = world.add_streamer, world.streamer
        self.by_room, self.go_live = world.by_room, world.go_live

    def _build_app(self) -> Starlette:
        by_path: dict[str, dict[str, str]] = defaultdict(dict)
        for name, route in ROUTES.items():
            by_path[route.path][route.method] = name
        routes: list[StarletteRoute | WebSocketRoute] = [
            StarletteRoute(path, self._endpoint(methods), methods=list(methods))
            for path, methods in by_path.items()
        ]
        routes.append(
            StarletteRoute("/tiktok/oauth/authorize", self.oauth.authorize, methods=["GET"])
        )
        routes.append(WebSocketRoute("/", self.sockets.endpoint))
        return Starlette(routes=routes)

    def _endpoint(self, methods: dict[str, str]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await self.api.serve(methods[request.method], request)

        return endpoint

    # --- settings and records, kept by the parts ------------------------------------------

    @property
    def api_key(self) -> str:
        return self.api.api_key

    @property
    def client_id(self) -> str:
        return self.oauth.client_id

    @property
    def client_secret(self) -> str:
        return self.oauth.client_secret

    @property
    def clock(self) -> Clock:
        return self.world.clock

    @property
    def access_ttl(self) -> float:
        return self.oauth.access_ttl

    @property
    def refresh_ttl(self) -> float:
        return self.oauth.refresh_ttl

    @property
    def rate_limit_per_minute(self) -> int | None:
        return self.limits.per_minute

    @property
    def streamers(self) -> dict[str, FakeStreamer]:
        return self.world.streamers

    @property
    def account(self) -> str | None:
        """Who logs in on the authorize page (the first streamer added, unless set)."""
        return self.world.account

    @account.setter
    def account(self, unique_id: str | None) -> None:
        self.world.account = unique_id

    @property
    def calls(self) -> list[RecordedCall]:
        """Every request received, in order."""
        return self.api.calls

    @property
    def plan_denied(self) -> set[str]:
        """Routes the API key's plan does not include (answered 401)."""
        return self.api.plan_denied

    @property
    def request_hooks(self) -> list[Callable[[str, str | None], None]]:
        """Called with (route name, OAuth token) as each request arrives."""
        return self.api.request_hooks

    @property
    def route_limits(self) -> dict[str, tuple[int, float]]:
        """Per-route budgets (requests, window seconds), advertised and enforced with 429s."""
        return self.limits.route_limits

    @route_limits.setter
    def route_limits(self, limits: dict[str, tuple[int, float]]) -> None:
        self.limits.route_limits = limits

    @property
    def limited(self) -> Counter[str]:
        """429s answered for a route budget, per route."""
        return self.limits.limited

    @property
    def grant_only(self) -> frozenset[str] | None:
        """A login grants at most these scopes (None: all it asks for)."""
        return self.oauth.grant_only

    @grant_only.setter
    def grant_only(self, scopes: frozenset[str] | None) -> None:
        self.oauth.grant_only = scopes

    @property
    def deny_authorization(self) -> bool:
        """The streamer refuses on the authorize page."""
        return self.oauth.deny_authorization

    @deny_authorization.setter
    def deny_authorization(self, deny: bool) -> None:
        self.oauth.deny_authorization = deny

    @property
    def allowed_scopes(self) -> frozenset[str]:
        """Scopes the authorize page knows; others are ``invalid_scope``."""
        return self.oauth.allowed_scopes

    @allowed_scopes.setter
    def allowed_scopes(self, scopes: frozenset[str]) -> None:
        self.oauth.allowed_scopes = scopes

    @property
    def scope_format(self) -> str:
        """How the token answer lists scopes: "array" (``scopes``) or "string" (``scope``)."""
        return self.oauth.scope_format

    @scope_format.setter
    def scope_format(self, form: str) -> None:
        self.oauth.scope_format = form

    @property
    def ws_connects(self) -> list[dict[str, str]]:
        """Each WebSocket connect's query parameters, without the keys."""
        return self.sockets.ws_connects

    @property
    def undelivered(self) -> int:
        """Bundles that reached no socket, and items a socket's queue refused."""
        return self.sockets.undelivered

    # --- the world ------------------------------------------------------------------------

    def go_offline(self, unique_id: str, *, action: int = 3) -> None:
        """The stream ends: a control message, then close code 4005 on every socket."""
        streamer = self.world.streamer(unique_id)
        streamer.is_live = False
        end = msgs.stream_end(streamer.room_id, self.now_ms(), action=action)
        self.emit(unique_id, [end])
        self.drop(unique_id, 4005, "TikTok stream ended")

    # --- faults ---------------------------------------------------------------------------

    def inject(self, route: str, fault: Fault) -> None:
        """Fail the next requests to ``route`` (a route-table name, or ``*`` for all)."""
        self.faults.inject(route, fault)

    def clear_faults(self) -> None:
        self.faults.clear()

    def fail_next_connect(self, code: int, times: int = 1) -> None:
        """Close the next ``times`` WebSocket connections at once with ``code``."""
        self.faults.fail_next_connect(code, times)

    # --- tokens ---------------------------------------------------------------------------

    def issue_tokens(self, scopes: Iterable[str], account: str | None = None) -> dict[str, Any]:
        """Grant tokens directly, as if the streamer had logged in (the token answer's data)."""
        return self.oauth.issue(frozenset(scopes), account or self.world.account or "")

    def accept_grant(
        self, access: str, refresh: str, scopes: Iterable[str], account: str, ttl: float = 3600
    ) -> None:
        """Honour tokens this fake issued in an earlier life (``modbot undo`` after the demo)."""
        self.oauth.accept_grant(access, refresh, scopes, account, ttl)

    def expire_access_tokens(self) -> None:
        """Every access token issued so far expires now (refresh tokens stay valid)."""
        self.oauth.expire_access_tokens()

    def expire_refresh_tokens(self) -> None:
        """Every refresh token dies: only a new login helps."""
        self.oauth.expire_refresh_tokens()

    def token_valid(self, token: str) -> bool:
        """Whether an access token would be accepted now."""
        return self.oauth.token_valid(token)

    def refresh_valid(self, token: str) -> bool:
        """Whether a refresh token would be accepted now."""
        return self.oauth.refresh_valid(token)

    # --- calls and sockets ----------------------------------------------------------------

    def calls_to(self, *routes: str, ok_only: bool = False) -> list[RecordedCall]:
        """Recorded calls to these routes (in order), optionally only the successful ones."""
        return [
            c for c in self.calls if c.route in routes and (not ok_only or 200 <= c.status < 300)
        ]

    def connections(self, unique_id: str | None = None) -> int:
        """How many event sockets are open (for one streamer, or all)."""
        return self.sockets.connections(unique_id)

    async def wait_connected(self, unique_id: str, timeout: float = 10.0) -> None:
        """Wait until a client holds an event socket for ``unique_id``."""
        await self.sockets.wait_connected(unique_id, timeout)

    def emit(self, unique_id: str, messages: list[dict[str, Any]]) -> int:
        """Send one bundle to every socket of the streamer; returns how many got it."""
        return self.sockets.emit(unique_id, messages)

    def emit_raw(self, unique_id: str, text: str) -> int:
        """Send a raw text frame (for malformed-frame tests)."""
        return self.sockets.emit_raw(unique_id, text)

    def drop(self, unique_id: str, code: int, reason: str = "") -> int:
        """Close every socket of the streamer with ``code``."""
        return self.sockets.drop(unique_id, code, reason)
