"""OAuth: the token file, and `auth login` end to end against the fake authorize/token endpoints."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import pytest
from pydantic import SecretStr

from modbot.errors import ConfigError, OAuthError
from modbot.euler.client import EulerClient
from modbot.euler.oauth import OAuthClientConfig, TokenManager, TokenStore, login
from modbot.euler.tokens import TokenSet, token_set_from_answer
from modbot.fake.server import FakeEuler
from modbot.loopback import LoopbackServer


def _tokens(access: str = "at-1234", refresh: str = "rt-5678") -> TokenSet:
    return TokenSet(
        access_token=SecretStr(access),
        refresh_token=SecretStr(refresh),
        expires_at=2_000_000_000.0,
        refresh_expires_at=2_100_000_000.0,
        scopes=frozenset({"webcast:mute"}),
    )


class TestTokenStore:
    def test_token_file_is_0600(self, tmp_path: Path):
        """The token file is created readable by its owner only."""
        store = TokenStore(tmp_path / "state")
        store.save(_tokens())
        assert stat.S_IMODE(store.path.stat().st_mode) == 0o600

    def test_save_replaces_atomically_and_leaves_no_temp_files(self, tmp_path: Path):
        """A second save replaces the file whole; no temporary file stays behind."""
        store = TokenStore(tmp_path)
        store.save(_tokens(refresh="rt-old1"))
        store.save(_tokens(refresh="rt-new2"))
        loaded = store.load()
        assert loaded is not None
        assert loaded.refresh_token.get_secret_value() == "rt-new2"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["tokens.json"]

    def test_round_trip(self, tmp_path: Path):
        """What is saved is what is loaded, scopes included."""
        store = TokenStore(tmp_path)
        store.save(_tokens())
        assert store.load() == _tokens()

    def test_world_readable_token_file_is_refused(self, tmp_path: Path):
        """A token file that others can read is refused with the chmod to run."""
        store = TokenStore(tmp_path)
        store.save(_tokens())
        os.chmod(store.path, 0o644)  # noqa: PTH101
        with pytest.raises(ConfigError, match="chmod 600"):
            store.load()

    def test_corrupt_token_file_says_log_in(self, tmp_path: Path):
        """A damaged token file is a clear error pointing at `modbot auth login`."""
        store = TokenStore(tmp_path)
        store.path.write_text("{not json")
        store.path.chmod(0o600)
        with pytest.raises(ConfigError, match="auth login"):
            store.load()

    def test_repr_of_a_token_set_hides_the_tokens(self):
        """repr() of a grant never shows a token."""
        text = repr(_tokens(access="at-visible-secret", refresh="rt-visible-secret"))
        assert "visible-secret" not in text

    def test_repr_of_the_client_config_hides_the_secret(self):
        """repr() and str() of the OAuth client settings never show the client secret (L4)."""
        config = OAuthClientConfig("client-id-1", "cs-visible-secret-42")
        assert "cs-visible-secret-42" not in repr(config)
        assert "cs-visible-secret-42" not in str(config)
        assert "client-id-1" in repr(config)

    def test_repr_of_the_token_manager_hides_every_secret(self, tmp_path: Path):
        """Nothing the manager holds shows a secret in repr(), its attributes included."""
        store = TokenStore(tmp_path)
        store.save(_tokens(access="at-visible-secret", refresh="rt-visible-secret"))
        manager = TokenManager(store, OAuthClientConfig("client-id-1", "cs-visible-secret"))
        manager._tokens = store.load()
        manager._unsaved = manager._tokens
        shown = repr(manager) + repr(vars(manager)) + repr(store)
        assert "visible-secret" not in shown

    def test_scopes_accepted_as_string_and_aliases(self):
        """A space-separated `scope` string with docs-page spellings becomes API scope names."""
        tokens = token_set_from_answer(
            {
                "access_token": "a" * 8,
                "refresh_token": "r" * 8,
                "expires_in": 3600,
                "scope": "webcast:live_check webcast:earnings webcast:mute",
            },
            0.0,
        )
        assert tokens.scopes == {"webcast:bulk_live_check", "webcast:user_earnings", "webcast:mute"}


class Browser:
    """Plays the streamer: opens the authorize URL and follows Euler's redirect home."""

    def __init__(self) -> None:
        self.url: str | None = None
        self.shown = anyio.Event()
        self.answer: httpx.Response | None = None

    def show(self, url: str) -> None:
        self.url = url
        self.shown.set()

    async def approve(self, *, tamper_state: bool = False) -> None:
        await self.shown.wait()
        assert self.url is not None
        async with httpx.AsyncClient() as http:
            answer = await http.get(self.url, follow_redirects=False)
            assert answer.status_code == 302
            target = answer.headers["location"]
            if tamper_state:
                parts = urlsplit(target)
                query = parse_qs(parts.query)
                query["state"] = ["forged"]
                target = parts._replace(
                    query="&".join(f"{k}={v[0]}" for k, v in query.items())
                ).geturl()
            self.answer = await http.get(target)


async def _login(fake: FakeEuler, server: LoopbackServer, store: TokenStore, scopes, **kw):
    browser = Browser()
    result: dict[str, object] = {}
    async with EulerClient(server.url, fake.api_key) as client:

        async def run() -> None:
            try:
                result["tokens"] = await login(
                    client,
                    store,
                    authorize_base=f"{server.url}/tiktok/oauth/authorize",
                    oauth=OAuthClientConfig(fake.client_id, fake.client_secret),
                    scopes=scopes,
                    show_url=browser.show,
                    timeout=10,
                )
            except OAuthError as exc:
                result["error"] = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await browser.approve(**kw)
    return result, browser


class TestLogin:
    async def test_login_end_to_end_stores_the_grant(self, fake, fake_server, token_store):
        """The authorize URL carries scopes, state and a loopback redirect; tokens land 0600."""
        result, browser = await _login(
            fake, fake_server, token_store, ["webcast:mute", "webcast:live_check"]
        )
        assert "error" not in result
        query = parse_qs(urlsplit(browser.url or "").query)
        assert query["scope"] == ["webcast:bulk_live_check webcast:mute"]
        assert query["response_type"] == ["code"]
        assert len(query["state"][0]) >= 20
        assert query["redirect_uri"][0].startswith("http://127.0.0.1:")
        stored = token_store.load()
        assert stored is not None
        assert stored.scopes == {"webcast:bulk_live_check", "webcast:mute"}
        assert stat.S_IMODE(token_store.path.stat().st_mode) == 0o600
        assert fake.token_valid(stored.access_token.get_secret_value())
        assert browser.answer is not None
        assert browser.answer.status_code == 200

    async def test_wrong_state_is_ignored_and_the_login_goes_on(
        self, fake, fake_server, token_store
    ):
        """Redirects with a forged, missing or non-ASCII state get a 404 and change nothing.

        Any web page the operator has open can send them (L5): they must neither end the
        login nor slip a code into it. The real redirect that follows still logs in.
        """
        browser = Browser()
        result: dict[str, object] = {}
        async with EulerClient(fake_server.url, fake.api_key) as client:

            async def run() -> None:
                result["tokens"] = await login(
                    client,
                    token_store,
                    authorize_base=f"{fake_server.url}/tiktok/oauth/authorize",
                    oauth=OAuthClientConfig(fake.client_id, fake.client_secret),
                    scopes=["webcast:mute"],
                    show_url=browser.show,
                    timeout=10,
                )

            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                await browser.shown.wait()
                assert browser.url is not None
                redirect = parse_qs(urlsplit(browser.url).query)["redirect_uri"][0]
                async with httpx.AsyncClient() as http:
                    answer = await http.get(browser.url, follow_redirects=False)
                    target = answer.headers["location"]
                    for query in (
                        "code=attacker-code&state=forged",
                        "code=attacker-code",
                        "error=access_denied&state=forged",
                        "code=attacker-code&state=%C3%A9t%C3%A9",  # non-ASCII: was a 500
                        "code=attacker-code&state=%ED%A0%80",  # a lone surrogate
                    ):
                        forged = await http.get(f"{redirect}?{query}")
                        assert forged.status_code == 404, query
                    real = await http.get(target)
        assert real.status_code == 200
        stored = token_store.load()
        assert stored is not None
        assert result["tokens"] == stored
        exchanges = fake.calls_to("token")
        assert len(exchanges) == 1
        assert exchanges[0].body["code"] != "attacker-code"

    async def test_invalid_scope_is_explained(self, fake, fake_server, token_store):
        """Euler's invalid_scope comes back as a clear error naming the scope."""
        fake.allowed_scopes = frozenset({"webcast:chat"})
        result, _ = await _login(fake, fake_server, token_store, ["webcast:ban"])
        error = result["error"]
        assert isinstance(error, OAuthError)
        assert error.error == "invalid_scope"
        assert "webcast:ban" in str(error)
        assert token_store.load() is None

    async def test_access_denied_is_explained(self, fake, fake_server, token_store):
        """A streamer who declines gets a plain sentence, and nothing is stored."""
        fake.deny_authorization = True
        result, _ = await _login(fake, fake_server, token_store, ["webcast:mute"])
        error = result["error"]
        assert isinstance(error, OAuthError)
        assert error.error == "access_denied"
        assert "did not grant" in str(error)

    async def test_partial_grant_is_stored_as_granted(self, fake, fake_server, token_store):
        """If fewer scopes are granted than asked, the stored grant says which."""
        fake.grant_only = frozenset({"webcast:chat"})
        result, _ = await _login(fake, fake_server, token_store, ["webcast:chat", "webcast:ban"])
        stored = token_store.load()
        assert stored is not None
        assert stored.scopes == {"webcast:chat"}
        assert "error" not in result

    async def test_scope_string_answers_are_accepted(self, fake, fake_server, token_store):
        """A token answer with a space-separated `scope` string is read like an array."""
        fake.scope_format = "string"
        await _login(fake, fake_server, token_store, ["webcast:chat", "webcast:mute"])
        stored = token_store.load()
        assert stored is not None
        assert stored.scopes == {"webcast:chat", "webcast:mute"}

    async def test_unknown_scope_is_refused_before_any_request(
        self, fake, fake_server, token_store
    ):
        """A misspelled scope never reaches Euler."""
        async with EulerClient(fake_server.url, fake.api_key) as client:
            with pytest.raises(OAuthError, match="unknown scope"):
                await login(
                    client,
                    token_store,
                    authorize_base=f"{fake_server.url}/tiktok/oauth/authorize",
                    oauth=OAuthClientConfig(fake.client_id, fake.client_secret),
                    scopes=["webcast:mutee"],
                    show_url=lambda _url: None,
                )
        assert fake.calls == []


class Paster:
    """Plays the streamer on another device and the operator who pastes: opens the
    authorize URL, does not follow Euler's redirect (nothing listens), and hands the
    address the browser was sent to, changed by ``edit``, to ``login(paste=...)``."""

    def __init__(self, edit: Callable[[str], str] = lambda address: address) -> None:
        self.url: str | None = None
        self.shown = anyio.Event()
        self.edit = edit
        self.sent_to: str | None = None

    def show(self, url: str) -> None:
        self.url = url
        self.shown.set()

    async def paste(self) -> str | None:
        await self.shown.wait()
        assert self.url is not None
        async with httpx.AsyncClient() as http:
            answer = await http.get(self.url, follow_redirects=False)
        assert answer.status_code == 302
        self.sent_to = answer.headers["location"]
        return self.edit(self.sent_to)


async def _paste_login(fake, server, store, paster: Paster, scopes=("webcast:mute",), **kw):
    async with EulerClient(server.url, fake.api_key) as client:
        return await login(
            client,
            store,
            authorize_base=f"{server.url}/tiktok/oauth/authorize",
            oauth=OAuthClientConfig(fake.client_id, fake.client_secret),
            scopes=scopes,
            show_url=paster.show,
            paste=paster.paste,
            timeout=10,
            **kw,
        )


def _with_query(address: str, **values: str) -> str:
    parts = urlsplit(address)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | values
    return parts._replace(query="&".join(f"{k}={v}" for k, v in query.items())).geturl()


class TestPasteLogin:
    """`auth login --paste`: no listener; the operator pastes where the browser went."""

    async def test_pasted_address_logs_in(self, fake, fake_server, token_store):
        paster = Paster(edit=lambda address: f"  {address}\n")  # as pasted, with a newline
        tokens = await _paste_login(fake, fake_server, token_store, paster, port=8123)
        query = parse_qs(urlsplit(paster.url or "").query)
        assert query["redirect_uri"] == ["http://127.0.0.1:8123/callback"]
        assert token_store.load() == tokens
        assert stat.S_IMODE(token_store.path.stat().st_mode) == 0o600
        exchange = fake.calls_to("token")[0]
        assert exchange.body["redirect_uri"] == "http://127.0.0.1:8123/callback"

    async def test_default_port_of_the_redirect_uri(self, fake, fake_server, token_store):
        paster = Paster()
        await _paste_login(fake, fake_server, token_store, paster)
        redirect = parse_qs(urlsplit(paster.url or "").query)["redirect_uri"]
        assert redirect == ["http://127.0.0.1:8765/callback"]

    @pytest.mark.parametrize(
        "edit",
        [
            lambda a: _with_query(a, state="forged"),
            lambda a: _with_query(a, state="%C3%A9t%C3%A9"),  # non-ASCII
            lambda a: _with_query(a, state="%ED%A0%80"),  # a lone surrogate's bytes
            lambda a: _with_query(a, state=""),
            lambda a: _with_query(a, state="forged", error="access_denied"),
            lambda a: _with_query(a, code="attacker-code", state="forged"),
        ],
    )
    async def test_wrong_state_ends_the_login_and_stores_nothing(
        self, fake, fake_server, token_store, edit
    ):
        with pytest.raises(OAuthError) as caught:
            await _paste_login(fake, fake_server, token_store, Paster(edit=edit))
        assert caught.value.error == "state_mismatch"
        assert str(caught.value) == (
            "the pasted address is not Euler's answer to this login (its state does not "
            "match the URL printed above); nothing was stored"
        )
        assert token_store.load() is None
        assert fake.calls_to("token") == []

    async def test_repeated_state_is_refused(self, fake, fake_server, token_store):
        paster = Paster(edit=lambda a: f"{a}&state=forged")
        with pytest.raises(OAuthError, match="2 'state' parameters"):
            await _paste_login(fake, fake_server, token_store, paster)
        assert fake.calls_to("token") == []

    async def test_declined_is_explained(self, fake, fake_server, token_store):
        fake.deny_authorization = True
        with pytest.raises(OAuthError, match="did not grant access") as caught:
            await _paste_login(fake, fake_server, token_store, Paster())
        assert caught.value.error == "access_denied"
        assert token_store.load() is None

    @pytest.mark.parametrize(
        "text",
        ["", "\n", "yes", "http://127.0.0.1:8765/callback", "x" * 20_000, "?\x00\x1b[2J"],
    )
    async def test_not_an_address(self, fake, fake_server, token_store, text):
        with pytest.raises(OAuthError, match="not the address Euler sent the browser to"):
            await _paste_login(fake, fake_server, token_store, Paster(edit=lambda _a: text))
        assert fake.calls_to("token") == []

    async def test_end_of_input(self, fake, fake_server, token_store):
        paster = Paster()

        async def nothing() -> None:
            return None

        paster.paste = nothing  # type: ignore[method-assign]
        with pytest.raises(OAuthError, match="input ended before an address was pasted"):
            await _paste_login(fake, fake_server, token_store, paster)
        assert token_store.load() is None
