"""The fake's OAuth server: an authorize shortcut and a token endpoint with rotating tokens.

``/tiktok/oauth/authorize`` logs the world's ``account`` in at once and redirects with a
code (or with the error a test asked for: denied, a bad scope, an unknown client). The
token endpoint trades a code or a single-use refresh token for expiring tokens, and the
revoke endpoint drops them. ``modbot.fake.api`` asks ``grant`` whether a request's token
is good and what it may do.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from modbot.euler.scopes import KNOWN_SCOPES
from modbot.fake.envelopes import error, oauth_error
from modbot.fake.world import World


@dataclass
class Grant:
    """What an access token may do, for whom, until when."""

    scopes: frozenset[str]
    account: str  # unique_id of the account that granted
    expires_at: float
    refresh_token: str


@dataclass
class Refresh:
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


class OAuthServer:
    """The client's credentials, the tokens issued, and what the next login grants."""

    def __init__(
        self,
        world: World,
        *,
        client_id: str,
        client_secret: str,
        access_ttl: float,
        refresh_ttl: float,
        scope_format: str,
    ) -> None:
        self.world = world
        self.client_id = client_id
        self.client_secret = client_secret
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.scope_format = scope_format  # "array" (``scopes``) or "string" (``scope``)
        self.grant_only: frozenset[str] | None = None  # the login grants at most these
        self.deny_authorization = False
        self.allowed_scopes: frozenset[str] = KNOWN_SCOPES
        self.access: dict[str, Grant] = {}
        self.refresh: dict[str, Refresh] = {}
        self._codes: dict[str, _Code] = {}

    # --- for the API and tests ------------------------------------------------------------

    def grant(self, token: str | None) -> Grant | None:
        """The grant behind an access token (expired or not), if it was issued."""
        return self.access.get(token) if token else None

    def issue(self, scopes: frozenset[str], account: str) -> dict[str, Any]:
        """New tokens for ``account``: the token answer's ``data``."""
        access = "fake-at-" + secrets.token_urlsafe(24)
        refresh = "fake-rt-" + secrets.token_urlsafe(24)
        now = self.world.now()
        self.access[access] = Grant(scopes, account, now + self.access_ttl, refresh)
        self.refresh[refresh] = Refresh(scopes, account, now + self.refresh_ttl)
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

    def accept_grant(
        self, access: str, refresh: str, scopes: Iterable[str], account: str, ttl: float
    ) -> None:
        """Honour tokens issued in an earlier life."""
        expires = self.world.now() + ttl
        self.access[access] = Grant(frozenset(scopes), account, expires, refresh)
        self.refresh[refresh] = Refresh(frozenset(scopes), account, expires)

    def expire_access_tokens(self) -> None:
        """Every access token issued so far expires now (refresh tokens stay valid)."""
        now = self.world.now()
        for grant in self.access.values():
            grant.expires_at = min(grant.expires_at, now - 1)

    def expire_refresh_tokens(self) -> None:
        """Every refresh token dies: only a new login helps."""
        now = self.world.now()
        for refresh in self.refresh.values():
            refresh.expires_at = min(refresh.expires_at, now - 1)

    def token_valid(self, token: str) -> bool:
        """Whether an access token would be accepted now."""
        grant = self.access.get(token)
        return grant is not None and grant.expires_at > self.world.now()

    def refresh_valid(self, token: str) -> bool:
        """Whether a refresh token would be accepted now."""
        refresh = self.refresh.get(token)
        return refresh is not None and not refresh.used and refresh.expires_at > self.world.now()

    # --- endpoints ------------------------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        """The authorize page, answered at once: a redirect with a code or an error."""
        q = request.query_params
        client_id = q.get("client_id", "")
        redirect_uri = q.get("redirect_uri", "")
        state = q.get("state", "")
        if client_id != self.client_id:
            return error(400, "invalid_client: unknown client_id")
        parts = urlsplit(redirect_uri)
        loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
        if not parts.scheme or (parts.scheme != "https" and not loopback):
            return error(400, "invalid_redirect_uri: HTTPS required except on localhost")

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
        self._codes[code] = _Code(client_id, redirect_uri, granted, self.world.account or "")
        return back(code=code)

    async def token(self, request: Request, ctx: dict[str, Any]) -> Response:
        """The token route: a code or a refresh token (used once) for new tokens."""
        del request
        body = self._client_body(ctx)
        if isinstance(body, Response):
            return body
        grant_type = body.get("grant_type")
        if grant_type == "authorization_code":
            code = self._codes.get(str(body.get("code")))
            if code is None or code.used:
                return oauth_error(400, "invalid_grant", "The code is invalid or was used")
            if body.get("redirect_uri") != code.redirect_uri:
                return oauth_error(400, "invalid_grant", "redirect_uri must match the original")
            code.used = True
            return _token_answer(self.issue(code.scopes, code.account))
        if grant_type == "refresh_token":
            refresh = self.refresh.get(str(body.get("refresh_token")))
            if refresh is None or refresh.used or refresh.expires_at <= self.world.now():
                return oauth_error(400, "invalid_grant", "The refresh token is invalid or expired")
            refresh.used = True  # single-use: it rotates
            return _token_answer(self.issue(refresh.scopes, refresh.account))
        return oauth_error(400, "unsupported_grant_type", "Unknown grant_type")

    async def revoke(self, request: Request, ctx: dict[str, Any]) -> Response:
        """The revoke route: drops a token (a refresh token takes its access tokens along)."""
        del request
        body = self._client_body(ctx)
        if isinstance(body, Response):
            return body
        token = str(body.get("token"))
        self.access.pop(token, None)
        refresh = self.refresh.pop(token, None)
        if refresh is not None:
            for key in [k for k, g in self.access.items() if g.refresh_token == token]:
                del self.access[key]
        return JSONResponse({"code": 200, "message": "OK"})

    def _client_body(self, ctx: dict[str, Any]) -> dict[str, Any] | Response:
        """The request's JSON body, or the refusal when it is not from this client."""
        body = ctx["body"]
        if not isinstance(body, dict):
            return oauth_error(400, "invalid_request", "The body must be a JSON object")
        if (
            body.get("client_id") != self.client_id
            or body.get("client_secret") != self.client_secret
        ):
            return oauth_error(401, "invalid_client", "Unknown client or wrong secret")
        return body


def _token_answer(data: dict[str, Any]) -> Response:
    return JSONResponse({"code": 200, "message": "OK", "data": data})
