"""The streamer's OAuth grant: login, the token file, and refresh before expiry.

* ``TokenStore`` keeps the grant in ``STATE_DIR/tokens.json``, mode 0600, written
  atomically (temp file in the same directory, fsync, rename, fsync of the directory).
  A token file that others can read is refused with a clear message.
* ``TokenManager`` hands out access tokens to the client, refreshing shortly before
  expiry or after a 401. Refresh tokens are single-use: the new grant is on disk
  before the new access token is handed to anyone. A dead refresh token raises
  ``ReauthRequired`` ("the streamer must log in again").
* ``login()`` runs the authorization-code flow with a loopback redirect listener and
  a random ``state``.
"""

from __future__ import annotations

import json
import secrets
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from modbot.clock import Clock, SystemClock, epoch
from modbot.errors import ConfigError, OAuthError, ReauthRequired
from modbot.euler.scopes import canonical, unknown_scopes
from modbot.euler.tokens import TokenSet
from modbot.files import fsync_dir, write_private
from modbot.log import get_logger, register_secret
from modbot.loopback import LoopbackServer

if TYPE_CHECKING:
    from modbot.euler.client import EulerClient

TOKEN_FILE = "tokens.json"
REFRESH_MARGIN = 120.0  # refresh this many seconds before the access token expires
CALLBACK_PATH = "/callback"

log = get_logger("modbot.oauth")

_ERROR_HELP = {
    "invalid_scope": (
        "Euler refused the requested scopes ({description}); check --scopes and that your "
        "OAuth client is allowed them"
    ),
    "access_denied": "the streamer did not grant access on Euler's page; nothing was stored",
    "invalid_client": "Euler does not know this client_id; check the client_id setting",
    "invalid_redirect_uri": "Euler refused the loopback redirect URI ({description})",
    "unsupported_response_type": "Euler refused the request ({description})",
}


class TokenStore:
    """The token file in the state directory (0600, replaced atomically)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / TOKEN_FILE

    def load(self) -> TokenSet | None:
        """The stored grant, or None if there is none. Refuses a readable-by-others file."""
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return None
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            mode = stat.S_IMODE(info.st_mode)
            msg = (
                f"the token file {self.path} has mode {mode:04o}, readable by others; "
                f"run `chmod 600 {self.path}` (and consider `modbot auth logout` and a new login)"
            )
            raise ConfigError(msg, setting="state_dir")
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            tokens = TokenSet.from_json(data)
        except (OSError, ValueError) as exc:
            msg = f"the token file {self.path} is unreadable ({exc}); run `modbot auth login`"
            raise ConfigError(msg, setting="state_dir") from None
        register_secret(tokens.access_token, tokens.refresh_token)
        return tokens

    def save(self, tokens: TokenSet) -> None:
        """Write the grant atomically with mode 0600."""
        write_private(self.path, json.dumps(tokens.to_json(), indent=2).encode())

    def delete(self) -> bool:
        """Remove the token file; False if there was none."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        fsync_dir(self.path.parent)
        return True


@dataclass(frozen=True)
class OAuthClientConfig:
    """The OAuth client's id and secret (from settings)."""

    client_id: str
    client_secret: str


class TokenManager:
    """Gives the client a valid access token; refreshes and persists rotations.

    Implements ``modbot.euler.client.TokenProvider``. ``on_refresh`` callbacks run
    after each successful refresh with the new grant (the executor re-checks scopes).
    """

    def __init__(
        self,
        store: TokenStore,
        oauth: OAuthClientConfig,
        *,
        clock: Clock | None = None,
        margin: float = REFRESH_MARGIN,
    ) -> None:
        self._store = store
        self._oauth = oauth
        self._clock: Clock = clock or SystemClock()
        self._margin = margin
        self._lock = anyio.Lock()
        self._tokens: TokenSet | None = None
        self._client: EulerClient | None = None
        self.on_refresh: list[Callable[[TokenSet], None]] = []
        register_secret(oauth.client_secret)

    def bind(self, client: EulerClient) -> None:
        """The client that refreshes tokens (it also asks this manager for them)."""
        self._client = client

    async def current(self) -> TokenSet:
        """The stored grant (read once from disk)."""
        if self._tokens is None:
            tokens = await anyio.to_thread.run_sync(self._store.load)
            if tokens is None:
                msg = "no OAuth grant is stored; the streamer must log in with `modbot auth login`"
                raise ReauthRequired(msg)
            self._tokens = tokens
        return self._tokens

    async def access_token(self) -> str:
        tokens = await self.current()
        if tokens.expires_within(self._margin, epoch(self._clock)):
            tokens = await self._refresh(tokens.access_token.get_secret_value())
        return tokens.access_token.get_secret_value()

    async def refresh_after_rejection(self, rejected: str) -> str:
        tokens = await self._refresh(rejected)
        return tokens.access_token.get_secret_value()

    async def _refresh(self, stale_access: str) -> TokenSet:
        async with self._lock:
            tokens = await self.current()
            if tokens.access_token.get_secret_value() != stale_access:
                return tokens  # another task refreshed while we waited
            if tokens.refresh_expired(epoch(self._clock)):
                msg = (
                    "the refresh token has expired; the streamer must log in again "
                    "with `modbot auth login`"
                )
                raise ReauthRequired(msg)
            if self._client is None:
                msg = "TokenManager.bind(client) must be called before a refresh"
                raise RuntimeError(msg)
            new = await self._client.refresh_tokens(
                client_id=self._oauth.client_id,
                client_secret=self._oauth.client_secret,
                refresh_token=tokens.refresh_token.get_secret_value(),
            )
            if not new.scopes:
                new = TokenSet(
                    access_token=new.access_token,
                    refresh_token=new.refresh_token,
                    expires_at=new.expires_at,
                    refresh_expires_at=new.refresh_expires_at,
                    scopes=tokens.scopes,
                    token_type=new.token_type,
                )
            # The old refresh token is spent: the new grant must be on disk before use.
            await anyio.to_thread.run_sync(self._store.save, new)
            self._tokens = new
            log.info(
                "oauth.refreshed",
                expires_in_s=round(new.expires_at - epoch(self._clock)),
                scopes=sorted(new.scopes),
            )
            for callback in self.on_refresh:
                callback(new)
            return new


# --- login ------------------------------------------------------------------------------


def authorize_url(
    base: str, *, client_id: str, redirect_uri: str, scopes: Iterable[str], state: str
) -> str:
    """The page the streamer opens to grant access."""
    query = urlencode(
        {
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": " ".join(scopes),
            "state": state,
        }
    )
    return f"{base}?{query}"


@dataclass
class _Callback:
    code: str | None = None
    error: str | None = None
    description: str = ""


async def login(
    client: EulerClient,
    store: TokenStore,
    *,
    authorize_base: str,
    oauth: OAuthClientConfig,
    scopes: Iterable[str],
    show_url: Callable[[str], None],
    port: int = 0,
    timeout: float = 600.0,
) -> TokenSet:
    """Run the authorization-code flow and store the grant.

    Listens on ``127.0.0.1:port`` for Euler's redirect, shows the authorize URL through
    ``show_url``, checks ``state``, exchanges the code and saves the tokens (0600).

    Raises:
        OAuthError: bad scopes, the streamer declined, a wrong ``state``, or time ran out.
    """
    wanted = sorted({canonical(s) for s in scopes})
    if not wanted:
        raise OAuthError("no scopes to request; give --scopes or use rules that act")
    bad = unknown_scopes(wanted)
    if bad:
        raise OAuthError(f"unknown scope(s): {', '.join(bad)}", error="invalid_scope")
    state = secrets.token_urlsafe(24)
    result = _Callback()
    done = anyio.Event()
    app = _callback_app(state, result, done)
    server = LoopbackServer(app, port=port)
    redirect_uri = f"{server.url}{CALLBACK_PATH}"
    async with anyio.create_task_group() as tg:
        await tg.start(server.run)
        try:
            show_url(
                authorize_url(
                    authorize_base,
                    client_id=oauth.client_id,
                    redirect_uri=redirect_uri,
                    scopes=wanted,
                    state=state,
                )
            )
            with anyio.move_on_after(timeout) as scope:
                await done.wait()
            if scope.cancelled_caught:
                msg = f"no answer from Euler's authorize page within {timeout:g} s"
                raise OAuthError(msg, error="timeout")
        finally:
            server.stop()
            with anyio.move_on_after(5, shield=True):
                await server.stopped.wait()
            tg.cancel_scope.cancel()

    if result.error == "state_mismatch":
        raise OAuthError(
            "the redirect's state did not match this login (a forged or stale redirect); "
            "nothing was stored, run `modbot auth login` again",
            error="state_mismatch",
        )
    if result.error:
        template = _ERROR_HELP.get(
            result.error, "Euler refused the authorization: {error} {description}"
        )
        raise OAuthError(
            template.format(error=result.error, description=result.description or result.error),
            error=result.error,
        )
    assert result.code is not None
    tokens = await client.exchange_code(
        client_id=oauth.client_id,
        client_secret=oauth.client_secret,
        code=result.code,
        redirect_uri=redirect_uri,
    )
    await anyio.to_thread.run_sync(store.save, tokens)
    return tokens


def _callback_app(state: str, result: _Callback, done: anyio.Event) -> Starlette:
    """The redirect listener: records the code or error of the first valid redirect."""

    async def callback(request: Request) -> Response:
        q = request.query_params
        if done.is_set():
            return PlainTextResponse("This login is already finished.", status_code=410)
        if not secrets.compare_digest(q.get("state", ""), state):
            # A request that is not the answer to our authorize URL: refuse it and fail
            # the login, since it may be a forged redirect.
            result.error = "state_mismatch"
            done.set()
            return PlainTextResponse(
                "The state parameter does not match this login; nothing was stored.",
                status_code=400,
            )
        if q.get("error"):
            result.error = q["error"]
            result.description = q.get("error_description", "")
            done.set()
            return PlainTextResponse(
                f"Authorization failed: {result.error}. You can close this tab.", status_code=400
            )
        if not q.get("code"):
            result.error = "invalid_request"
            result.description = "the redirect carried no code"
            done.set()
            return PlainTextResponse("No code in the redirect.", status_code=400)
        result.code = q["code"]
        done.set()
        return PlainTextResponse("modbot is authorized. You can close this tab.")

    return Starlette(routes=[Route(CALLBACK_PATH, callback, methods=["GET"])])
