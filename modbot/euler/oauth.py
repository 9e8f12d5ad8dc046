"""The streamer's OAuth grant: login, the token file, and refresh before expiry.

* ``TokenStore`` keeps the grant in ``STATE_DIR/tokens.json``, mode 0600, written
  atomically (temp file in the same directory, fsync, rename, fsync of the directory).
  A token file that others can read is refused with a clear message.
* ``TokenManager`` hands out access tokens to the client, refreshing shortly before
  expiry or after a 401, one refresh at a time. Refresh tokens are single-use: the new
  grant is kept in memory first, then written before the new access token is handed
  to anyone; if the disk refuses (full, read-only), the grant is used from memory and
  the write is tried again patiently, never lost. A dead refresh token raises
  ``ReauthRequired`` ("the streamer must log in again").
* ``login()`` runs the authorization-code flow with a loopback redirect listener and
  a random ``state``; redirects with another ``state`` are ignored. With ``paste`` (a
  server without a browser), there is no listener: the streamer approves on any device
  and the operator pastes the address the browser was sent to (it need not load).
"""

from __future__ import annotations

import json
import secrets
import stat
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlencode, urlsplit

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from modbot.clock import Clock, SystemClock, epoch
from modbot.errors import BadResponse, ConfigError, OAuthError, ReauthRequired
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
PASTE_PORT = 8765  # the redirect URI's port for --paste when no --port is given
PASTE_LIMIT = 16_384  # characters of a pasted address that are read
REFUSED_HOLD = 30.0  # after an unusable refresh answer, keep the grant in use this long

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
        except OSError as exc:
            msg = f"the token file {self.path} cannot be read ({exc.strerror or exc})"
            raise ConfigError(msg, setting="state_dir") from None
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            mode = stat.S_IMODE(info.st_mode)
            msg = (
                f"the token file {self.path} has mode {mode:04o}, readable by others; "
                f"run `chmod 600 {self.path}` (and consider `modbot auth logout` and a new login)"
            )
            raise ConfigError(msg, setting="state_dir")
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"), parse_constant=_no_constant)
            tokens = TokenSet.from_json(data)
        except (OSError, ValueError) as exc:
            msg = f"the token file {self.path} is unreadable ({exc}); run `modbot auth login`"
            raise ConfigError(msg, setting="state_dir") from None
        register_secret(tokens.access_token, tokens.refresh_token, slot="grant")
        return tokens

    def save(self, tokens: TokenSet) -> None:
        """Write the grant atomically with mode 0600."""
        data = json.dumps(tokens.to_json(), indent=2, allow_nan=False)
        write_private(self.path, data.encode())

    def delete(self) -> bool:
        """Remove the token file; False if there was none."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        fsync_dir(self.path.parent)
        return True


def _no_constant(name: str) -> float:
    msg = f"{name} is not a number"
    raise ValueError(msg)


@dataclass(frozen=True)
class OAuthClientConfig:
    """The OAuth client's id and secret (from settings); repr() leaves the secret out."""

    client_id: str
    client_secret: str = field(repr=False)


@dataclass(frozen=True)
class SavePatience:
    """How a refreshed grant that could not be written waits for the disk.

    Mirrors ``modbot.audit.store.Patience``: the write is tried again after ``first``
    seconds, doubling up to ``longest``, for as long as it takes. The grant is kept
    and used from memory meanwhile, and the write is tried at the next token use that
    is due (the daemon asks for tokens every live check). An error is logged at the
    first failure and then every ``log_every`` seconds, and a line when the write lands.
    """

    first: float = 1.0
    longest: float = 30.0
    log_every: float = 300.0


# Token files whose grant is only in memory, and why (for the systemd STATUS).
_UNSAVED: dict[Path, str] = {}


def grant_unsaved(state_dir: Path) -> str | None:
    """Why the grant in use for ``state_dir`` is not in its token file, or None if it is."""
    return _UNSAVED.get((Path(state_dir) / TOKEN_FILE).absolute())


class TokenManager:
    """Gives the client a valid access token; refreshes and persists rotations.

    Implements ``modbot.euler.client.TokenProvider``. ``on_refresh`` callbacks run
    after each successful refresh with the new grant (the executor re-checks scopes).

    One refresh at a time: reading the token file and refreshing happen under one
    lock, and a grant read from disk never replaces a newer one in memory. A refreshed
    grant is used from memory at once and written patiently (``SavePatience``): a full
    or read-only disk is an outage to wait out, never a crash and never a lost grant.
    ``persist_failing`` says why the grant in use is not on disk (None when it is).
    """

    def __init__(
        self,
        store: TokenStore,
        oauth: OAuthClientConfig,
        *,
        clock: Clock | None = None,
        margin: float = REFRESH_MARGIN,
        patience: SavePatience | None = None,
    ) -> None:
        self._store = store
        self._oauth = oauth
        self._clock: Clock = clock or SystemClock()
        self._margin = margin
        self._patience = patience or SavePatience()
        self._lock = anyio.Lock()
        self._tokens: TokenSet | None = None
        self._client: EulerClient | None = None
        self.on_refresh: list[Callable[[TokenSet], None]] = []
        # A refresh whose answer was refused is tried again at this epoch time, not
        # before (while the grant in use still works).
        self._hold_until = 0.0
        # The grant in use when it is not on disk yet, and when to try again.
        self._unsaved: TokenSet | None = None
        self._save_lock = anyio.Lock()
        self._save_due = 0.0  # monotonic
        self._save_delay = self._patience.first
        self._failing_since = 0.0
        self._logged_at = 0.0
        self.persist_failing: str | None = None
        register_secret(oauth.client_secret)

    def bind(self, client: EulerClient) -> None:
        """The client that refreshes tokens (it also asks this manager for them)."""
        self._client = client

    async def current(self) -> TokenSet:
        """The grant in use (read once from disk)."""
        tokens = self._tokens
        if tokens is not None:
            return tokens
        async with self._lock:
            return await self._current()

    async def access_token(self) -> str:
        tokens = self._tokens
        if tokens is None or self._refresh_due(tokens):
            async with self._lock:
                tokens = await self._current()
                if self._refresh_due(tokens):
                    tokens = await self._refresh_locked(tokens, rejected=False)
        if self._unsaved is not None and self._clock.monotonic() >= self._save_due:
            await self._persist(wait=False)
        return tokens.access_token.get_secret_value()

    async def refresh_after_rejection(self, rejected: str) -> str:
        async with self._lock:
            tokens = await self._current()
            if tokens.access_token.get_secret_value() == rejected:
                tokens = await self._refresh_locked(tokens, rejected=True)
            # else: another task refreshed while we waited
        return tokens.access_token.get_secret_value()

    def _refresh_due(self, tokens: TokenSet) -> bool:
        now = epoch(self._clock)
        # At most half the token's lifetime: a token that lives less than the margin
        # would otherwise be due at once, and every use of it would start a refresh.
        margin = self._margin
        if tokens.issued_at is not None:
            margin = min(margin, (tokens.expires_at - tokens.issued_at) / 2)
        if not tokens.expires_within(margin, now):
            return False
        return now >= self._hold_until or tokens.expires_at <= now

    async def _current(self) -> TokenSet:
        """The grant in use, read from disk the first time (with the lock held)."""
        if self._tokens is None:
            loaded = await self._load()
            if loaded is None:
                msg = "no OAuth grant is stored; the streamer must log in with `modbot auth login`"
                raise ReauthRequired(msg)
            self._adopt(loaded)
        assert self._tokens is not None
        return self._tokens

    async def _load(self) -> TokenSet | None:
        return await anyio.to_thread.run_sync(self._store.load)

    def _adopt(self, loaded: TokenSet) -> bool:
        """Use a grant read from disk, unless the one in memory is newer (or the same)."""
        if self._tokens is not None and not loaded.newer_than(self._tokens):
            return False
        self._tokens = loaded
        self._hold_until = 0.0
        return True

    async def _refresh_locked(self, tokens: TokenSet, *, rejected: bool) -> TokenSet:
        """Trade the refresh token of ``tokens`` for a new grant (with the lock held)."""
        now = epoch(self._clock)
        if tokens.refresh_expired(now):
            newer = await self._newer_on_disk()
            if newer is not None:
                return newer
            msg = (
                "the refresh token has expired; the streamer must log in again "
                "with `modbot auth login`"
            )
            raise ReauthRequired(msg)
        if self._client is None:
            msg = "TokenManager.bind(client) must be called before a refresh"
            raise RuntimeError(msg)
        try:
            new = await self._client.refresh_tokens(
                client_id=self._oauth.client_id,
                client_secret=self._oauth.client_secret,
                refresh_token=tokens.refresh_token.get_secret_value(),
            )
        except BadResponse as exc:
            return self._answer_refused(tokens, exc, rejected=rejected)
        except ReauthRequired:
            newer = await self._newer_on_disk()
            if newer is None:
                raise
            return newer
        if not new.scopes:
            new = replace(new, scopes=tokens.scopes)
        # The old refresh token is spent: the new grant is used from memory whatever
        # the disk does, and written before it is handed out if the disk lets us.
        self._tokens = new
        self._hold_until = 0.0
        self._unsaved = new
        await self._persist(wait=True)
        log.info(
            "oauth.refreshed",
            expires_in_s=round(new.expires_at - epoch(self._clock)),
            scopes=sorted(new.scopes),
            on_disk=self._unsaved is None,
        )
        for callback in self.on_refresh:
            callback(new)
        return new

    def _answer_refused(self, tokens: TokenSet, exc: BadResponse, *, rejected: bool) -> TokenSet:
        """Euler's answer to a refresh is unusable; its refresh token may be spent.

        The grant in use stays while its access token still works (a refresh is tried
        again later, or at a 401); otherwise the error goes to the caller.
        """
        now = epoch(self._clock)
        usable = not rejected and tokens.expires_at > now
        log.error(
            "oauth.refresh_answer_refused",
            error=str(exc),
            access_valid_s=max(0, round(tokens.expires_at - now)),
            message=(
                "Euler's answer to a token refresh was refused, and the refresh token it "
                "was given may now be spent: if the next refresh is refused too, the "
                "streamer must log in again with `modbot auth login`"
            ),
        )
        if not usable:
            raise exc
        self._hold_until = min(now + REFUSED_HOLD, tokens.expires_at)
        return tokens

    async def _newer_on_disk(self) -> TokenSet | None:
        """A grant from a login made while we ran (the refresh token in use is dead).

        The file may also hold an older grant than memory (a write that failed); that
        one is never taken back.
        """
        try:
            loaded = await self._load()
        except ConfigError:
            return None
        if loaded is None or not self._adopt(loaded):
            return None
        log.warning("oauth.new_login_found", file=str(self._store.path))
        self._unsaved = None
        self._saved()
        for callback in self.on_refresh:
            callback(loaded)
        return loaded

    async def flush(self) -> bool:
        """A last try at writing a grant not on disk yet (at the stop): whether it is there.

        Never raises. When it fails, the error says plainly that the next start will need
        a new login, since the refresh token on disk was spent.
        """
        if self._unsaved is None:
            return True
        await self._persist(wait=True)
        if self.persist_failing is None:
            return True
        log.critical(
            "oauth.grant_lost_at_stop",
            error=self.persist_failing,
            file=str(self._store.path),
            message="the refreshed OAuth grant could not be written before the stop; the "
            "refresh token on disk was spent, so the streamer must log in again "
            "(`modbot auth login`) unless the file can be written at the next refresh",
        )
        return False

    async def _persist(self, *, wait: bool) -> None:
        """One try at writing the grant in use that is not on disk yet; never raises."""
        if not wait and self._save_lock.locked():
            return  # a try is under way
        async with self._save_lock:
            grant = self._unsaved
            if grant is None:
                return
            try:
                await anyio.to_thread.run_sync(self._store.save, grant)
            except OSError as exc:
                self._save_failed(exc)
                return
            if self._unsaved is grant:
                self._unsaved = None
                self._saved()

    def _save_failed(self, exc: OSError) -> None:
        now = self._clock.monotonic()
        patience = self._patience
        first = self.persist_failing is None
        if first:
            self._failing_since = now
            self._save_delay = patience.first
        else:
            self._save_delay = min(self._save_delay * 2, patience.longest)
        self._save_due = now + self._save_delay
        reason = exc.strerror or type(exc).__name__
        self.persist_failing = reason
        _UNSAVED[self._store.path.absolute()] = reason
        if first or now - self._logged_at >= patience.log_every:
            self._logged_at = now
            log.error(
                "oauth.grant_unsaved",
                error=reason,
                file=str(self._store.path),
                waited=round(now - self._failing_since, 1),
                retry_in=self._save_delay,
                message=(
                    "the refreshed OAuth grant is in use from memory but is not on disk "
                    "(a restart now would need a new login); trying again"
                ),
            )

    def _saved(self) -> None:
        if self.persist_failing is not None:
            log.warning(
                "oauth.grant_saved",
                file=str(self._store.path),
                waited=round(self._clock.monotonic() - self._failing_since, 1),
            )
        self.persist_failing = None
        _UNSAVED.pop(self._store.path.absolute(), None)


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
    code: str | None = field(default=None, repr=False)
    error: str | None = None
    description: str = ""
    ignored: int = 0  # redirects with a wrong state


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
    paste: Callable[[], Awaitable[str | None]] | None = None,
) -> TokenSet:
    """Run the authorization-code flow and store the grant.

    Listens on ``127.0.0.1:port`` for Euler's redirect, shows the authorize URL through
    ``show_url``, checks ``state``, exchanges the code and saves the tokens (0600).

    With ``paste``, nothing listens: the redirect URI is ``127.0.0.1:port`` (``PASTE_PORT``
    when ``port`` is 0), and ``paste()`` returns the address the streamer's browser was
    sent to, as pasted by the operator (None at the end of input); its ``state`` is
    checked like a redirect's.

    Raises:
        OAuthError: bad scopes, the streamer declined, or time ran out. Redirects with a
            wrong ``state`` are ignored (404), so they cannot end the login; a pasted
            address with a wrong ``state`` ends it (nothing is stored).
    """
    wanted = sorted({canonical(s) for s in scopes})
    if not wanted:
        raise OAuthError("no scopes to request; give --scopes or use rules that act")
    bad = unknown_scopes(wanted)
    if bad:
        raise OAuthError(f"unknown scope(s): {', '.join(bad)}", error="invalid_scope")
    state = secrets.token_urlsafe(24)

    def show(redirect_uri: str) -> None:
        url = authorize_url(
            authorize_base,
            client_id=oauth.client_id,
            redirect_uri=redirect_uri,
            scopes=wanted,
            state=state,
        )
        show_url(url)

    if paste is not None:
        redirect_uri = f"http://127.0.0.1:{port or PASTE_PORT}{CALLBACK_PATH}"
        show(redirect_uri)
        with anyio.move_on_after(timeout) as scope:
            pasted = await paste()
        if scope.cancelled_caught:
            raise OAuthError(f"no address was pasted within {timeout:g} s", error="timeout")
        if pasted is None:
            msg = "the input ended before an address was pasted; nothing was stored"
            raise OAuthError(msg, error="no_input")
        result = pasted_answer(pasted, state)
        return await _finish(client, store, oauth, result, redirect_uri)
    result = _Callback()
    done = anyio.Event()
    app = _callback_app(state, result, done)
    server = LoopbackServer(app, port=port)
    redirect_uri = f"{server.url}{CALLBACK_PATH}"
    async with anyio.create_task_group() as tg:
        await tg.start(server.run)
        try:
            show(redirect_uri)
            with anyio.move_on_after(timeout) as scope:
                await done.wait()
            if scope.cancelled_caught:
                msg = f"no answer from Euler's authorize page within {timeout:g} s"
                if result.ignored:
                    msg += f" ({result.ignored} redirect(s) with a wrong state were ignored)"
                raise OAuthError(msg, error="timeout")
        finally:
            server.stop()
            with anyio.move_on_after(5, shield=True):
                await server.stopped.wait()
            tg.cancel_scope.cancel()
    return await _finish(client, store, oauth, result, redirect_uri)


async def _finish(
    client: EulerClient,
    store: TokenStore,
    oauth: OAuthClientConfig,
    result: _Callback,
    redirect_uri: str,
) -> TokenSet:
    """Euler's answer (a redirect or a pasted address): explain an error, or exchange
    the code and store the grant."""
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


def pasted_answer(text: str, state: str) -> _Callback:
    """The code or error in an address pasted by the operator, if its ``state`` is this
    login's (compared in constant time, as bytes); otherwise one sentence (OAuthError)."""
    address = text.strip()
    query = urlsplit(address).query if "?" in address else ""
    params = parse_qs(query, keep_blank_values=True)
    if "state" not in params or not ("code" in params or "error" in params):
        msg = (
            "the pasted text is not the address Euler sent the browser to (it has no "
            "code and state); copy the whole address from the browser's address bar"
        )
        raise OAuthError(msg, error="bad_paste")

    def one(name: str) -> str:
        values = params.get(name, [])
        if len(values) > 1:
            msg = f"the pasted address has {len(values)} '{name}' parameters; paste it as it is"
            raise OAuthError(msg, error="bad_paste")
        return values[0] if values else ""

    given = one("state").encode("utf-8", "surrogatepass")
    if not secrets.compare_digest(given, state.encode()):
        msg = (
            "the pasted address is not Euler's answer to this login (its state does not "
            "match the URL printed above); nothing was stored"
        )
        raise OAuthError(msg, error="state_mismatch")
    if one("error"):
        return _Callback(error=one("error"), description=one("error_description"))
    if not one("code"):
        return _Callback(error="invalid_request", description="the pasted address has no code")
    return _Callback(code=one("code"))


def _callback_app(state: str, result: _Callback, done: anyio.Event) -> Starlette:
    """The redirect listener: records the code or error of the first valid redirect.

    A request whose ``state`` is not this login's is not Euler's answer to our
    authorize URL (a stale tab, a forged redirect, any web page the operator has open):
    it gets a 404 and changes nothing, so it can neither stop the login nor slip an
    attacker's code into it.
    """
    expected = state.encode()

    async def callback(request: Request) -> Response:
        q = request.query_params
        if done.is_set():
            return PlainTextResponse("This login is already finished.", status_code=410)
        given = q.get("state", "").encode("utf-8", "surrogatepass")
        if not secrets.compare_digest(given, expected):
            result.ignored += 1
            if result.ignored == 1 or result.ignored % 100 == 0:
                log.warning("oauth.redirect_ignored", reason="wrong state", ignored=result.ignored)
            return PlainTextResponse("Not found.", status_code=404)
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
