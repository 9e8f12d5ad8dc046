"""The Euler routes modbot calls, as a table that settings can override (pure).

Euler has moved hosts and routes before, so every path here can be replaced by the
`routes` setting (name -> path template). Placeholders in braces are filled from the
call's path parameters; a replacement must keep the same placeholders.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class Route:
    """One Euler route.

    ``session`` routes act for the streamer and send ``x-oauth-token``; ``idempotent``
    routes may be replayed after a timeout or a 500 without doing the thing twice.
    """

    name: str
    method: str
    path: str
    scope: str | None = None
    session: bool = False
    idempotent: bool = True

    def placeholders(self) -> frozenset[str]:
        """The names in braces in the path."""
        return placeholders(self.path)


def placeholders(template: str) -> frozenset[str]:
    """The field names used by a ``{name}`` path template."""
    return frozenset(
        field for _, field, _, _ in string.Formatter().parse(template) if field is not None
    )


_MUTES = "/webcast/rooms/{room_id}/moderation/mutes"
_BANS = "/webcast/rooms/{room_id}/moderation/bans"
_MODS = "/webcast/anchors/{anchor_id}/moderation/moderators"
_WORDS = "/webcast/rooms/{room_id}/moderation/sensitive-words"
_W = "webcast:sensitive_words"

DEFAULT_ROUTES: Mapping[str, Route] = {
    r.name: r
    for r in (
        Route("user_id", "GET", "/webcast/anchors/{unique_id}/user_id"),
        Route("room_id", "GET", "/webcast/anchors/{unique_id}/room_id"),
        Route(
            "bulk_live_check",
            "POST",
            "/webcast/bulk_live_check",
            scope="webcast:bulk_live_check",
            session=True,
        ),
        Route(
            "chat",
            "POST",
            "/webcast/rooms/{room_id}/chat",
            scope="webcast:chat",
            session=True,
            idempotent=False,
        ),
        Route("mute", "PUT", _MUTES, scope="webcast:mute", session=True),
        Route("unmute", "DELETE", _MUTES, scope="webcast:mute", session=True),
        Route("list_mutes", "GET", _MUTES, scope="webcast:mute", session=True),
        Route("ban", "PUT", _BANS, scope="webcast:ban", session=True),
        Route("unban", "DELETE", _BANS, scope="webcast:ban", session=True),
        Route("list_bans", "GET", _BANS, scope="webcast:ban", session=True),
        Route(
            "toggle_comments",
            "POST",
            "/webcast/rooms/{room_id}/moderation/toggle_comments",
            scope="webcast:comments",
            session=True,
        ),
        Route("add_moderator", "PUT", _MODS, scope="webcast:moderators", session=True),
        Route("remove_moderator", "DELETE", _MODS, scope="webcast:moderators", session=True),
        Route("list_moderators", "GET", _MODS, scope="webcast:moderators", session=True),
        Route("list_sensitive_words", "GET", _WORDS, scope=_W, session=True),
        Route("add_sensitive_word", "POST", _WORDS, scope=_W, session=True, idempotent=False),
        Route("remove_sensitive_word", "DELETE", _WORDS, scope=_W, session=True),
        Route("rate_limits", "GET", "/accounts/me/rate_limits"),
        Route("userinfo", "GET", "/tiktok/oauth/userinfo", scope="user:info", session=True),
        Route("token", "POST", "/tiktok/oauth/token", idempotent=False),
        Route("revoke", "POST", "/tiktok/oauth/revoke"),
    )
}


def route_table(overrides: Mapping[str, str] | None = None) -> dict[str, Route]:
    """The default routes with ``overrides`` (name -> path) applied.

    Raises:
        ValueError: an override names an unknown route or changes the placeholders.
    """
    table = dict(DEFAULT_ROUTES)
    for name, path in (overrides or {}).items():
        base = table.get(name)
        if base is None:
            known = ", ".join(sorted(table))
            msg = f"unknown route {name!r} (known routes: {known})"
            raise ValueError(msg)
        if not path.startswith("/"):
            msg = f"route {name!r} must be a path starting with '/', got {path!r}"
            raise ValueError(msg)
        if placeholders(path) != base.placeholders():
            want = ", ".join("{" + p + "}" for p in sorted(base.placeholders())) or "none"
            msg = f"route {name!r} must use the placeholders {want}, got {path!r}"
            raise ValueError(msg)
        table[name] = replace(base, path=path)
    return table
