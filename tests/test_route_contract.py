"""The route contract: the client's route table and the fake's served routes, each
checked against ``shared/spec/events.md`` (details in ``shared/reference/euler-api.md``).

The expectation is written here as data, from the spec, and from neither table: the
fake used to build its routes from the client's, so a wrong path agreed with itself.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Route, WebSocketRoute

from modbot.euler.routes import DEFAULT_ROUTES
from modbot.fake.api import ROUTES as FAKE_ROUTES
from modbot.fake.server import FakeEuler
from modbot.loopback import LoopbackServer


@dataclass(frozen=True)
class Spec:
    method: str
    path: str
    scope: str | None = None


_MUTES = "/webcast/rooms/{room_id}/moderation/mutes"
_BANS = "/webcast/rooms/{room_id}/moderation/bans"
_MODS = "/webcast/anchors/{anchor_id}/moderation/moderators"
_WORDS = "/webcast/rooms/{room_id}/moderation/sensitive-words"

# Every REST route the client calls, by modbot's route name, as the spec gives it.
SPEC: dict[str, Spec] = {
    # events.md, "Routes modbot uses" (reference 1.3: new-generation routes)
    "user_id": Spec("GET", "/webcast/anchors/{unique_id}/user_id"),
    "bulk_live_check": Spec("POST", "/webcast/bulk_live_check", "webcast:bulk_live_check"),
    "room_id": Spec("GET", "/webcast/anchors/{unique_id}/room_id"),
    "chat": Spec("POST", "/webcast/rooms/{room_id}/chat", "webcast:chat"),
    "mute": Spec("PUT", _MUTES, "webcast:mute"),
    "unmute": Spec("DELETE", _MUTES, "webcast:mute"),
    "list_mutes": Spec("GET", _MUTES, "webcast:mute"),
    "ban": Spec("PUT", _BANS, "webcast:ban"),
    "unban": Spec("DELETE", _BANS, "webcast:ban"),
    "list_bans": Spec("GET", _BANS, "webcast:ban"),
    "toggle_comments": Spec(
        "POST", "/webcast/rooms/{room_id}/moderation/toggle_comments", "webcast:comments"
    ),
    "add_moderator": Spec("PUT", _MODS, "webcast:moderators"),
    "remove_moderator": Spec("DELETE", _MODS, "webcast:moderators"),
    "list_moderators": Spec("GET", _MODS, "webcast:moderators"),
    # reference 1.3 "Sensitive words (new only)" (events.md does not list them yet)
    "list_sensitive_words": Spec("GET", _WORDS, "webcast:sensitive_words"),
    "add_sensitive_word": Spec("POST", _WORDS, "webcast:sensitive_words"),
    "remove_sensitive_word": Spec("DELETE", _WORDS, "webcast:sensitive_words"),
    "rate_limits": Spec("GET", "/accounts/me/rate_limits"),  # with ?type=WEBCAST
    # events.md, "Authentication" ("Token", "Also"); scope `user:info` from its scope list
    # and reference 1.3 "OAuth user info"
    "token": Spec("POST", "/tiktok/oauth/token"),
    "revoke": Spec("POST", "/tiktok/oauth/revoke"),
    "userinfo": Spec("GET", "/tiktok/oauth/userinfo", "user:info"),
}

# What the fake serves besides the client's REST routes:
OTHER_SERVED = {
    # events.md, "Authentication": the OAuth authorize page (www.eulerstream.com in real
    # life, the browser's; the fake serves it on its one host)
    ("GET", "/tiktok/oauth/authorize"),
    # events.md, "Live events": wss://ws.eulerstream.com?uniqueId=... (the host's root)
    ("WEBSOCKET", "/"),
}


def served(routes: list[BaseRoute]) -> set[tuple[str, str]]:
    """(method, path template) of every route an app serves; ``WEBSOCKET`` for sockets.

    Starlette adds ``HEAD`` to every ``GET`` route by itself; it is not a route of ours.
    """
    found: set[tuple[str, str]] = set()
    for route in routes:
        if isinstance(route, WebSocketRoute):
            found.add(("WEBSOCKET", route.path))
        elif isinstance(route, Route):
            methods = set(route.methods or ()) - {"HEAD"}
            found |= {(method, route.path) for method in methods}
        else:
            msg = f"a route of unknown kind: {route!r}"
            raise TypeError(msg)
    return found


def test_client_routes_are_the_spec_routes() -> None:
    client = {name: Spec(r.method, r.path, r.scope) for name, r in DEFAULT_ROUTES.items()}
    assert client == SPEC


def test_fake_serves_exactly_the_spec_routes() -> None:
    expected = {(s.method, s.path) for s in SPEC.values()} | OTHER_SERVED
    assert served(FakeEuler().app.routes) == expected


def test_fake_asks_the_spec_scopes() -> None:
    fake = {name: Spec(r.method, r.path, r.scope) for name, r in FAKE_ROUTES.items()}
    assert fake == SPEC


def test_a_wrong_path_is_seen() -> None:
    """The check can fail: an app that serves one path wrong (or HEAD only) differs."""

    async def endpoint() -> None:  # never called
        raise AssertionError

    wrong = Starlette(
        routes=[
            Route("/webcast/room/mute", endpoint, methods=["PUT"]),
            Route("/tiktok/oauth/authorize", endpoint, methods=["GET"]),
        ]
    )
    assert served(wrong.routes) == {
        ("PUT", "/webcast/room/mute"),
        ("GET", "/tiktok/oauth/authorize"),
    }
    assert served(wrong.routes) != {("PUT", _MUTES), ("GET", "/tiktok/oauth/authorize")}


def _filled(template: str) -> str:
    fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    return template.format(**dict.fromkeys(fields, "7000000000000000001"))


@pytest.mark.anyio
async def test_each_spec_route_reaches_its_handler(
    fake: FakeEuler, fake_server: LoopbackServer
) -> None:
    """Over loopback, each spec (method, path) is recorded under its route name, so a fault
    injected on ``mute`` lands on ``PUT .../moderation/mutes`` and nowhere else."""
    async with httpx.AsyncClient(base_url=fake_server.url) as http:
        for name, spec in SPEC.items():
            await http.request(spec.method, _filled(spec.path))
            assert (fake.calls[-1].route, fake.calls[-1].method) == (name, spec.method)
    assert len(fake.calls) == len(SPEC)
