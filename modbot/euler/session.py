"""The Euler client, OAuth config and WebSocket factory as the settings describe them (I/O).

One place builds them, so ``modbot run``, ``record``, ``undo`` and ``auth`` all talk to
Euler with the same key, routes, timeout and retry policy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio

from modbot.clock import Clock
from modbot.config import Settings
from modbot.errors import ConfigError
from modbot.euler.client import EulerClient, TokenProvider, api_transport
from modbot.euler.oauth import OAuthClientConfig, TokenManager, TokenStore
from modbot.euler.policy import RetryPolicy
from modbot.euler.tokens import TokenSet
from modbot.euler.ws import EulerWebSocket


def oauth_config(settings: Settings) -> OAuthClientConfig:
    """The OAuth client credentials (a ConfigError naming the missing one)."""
    settings.require("client_id", "client_secret")
    assert settings.client_id is not None
    assert settings.client_secret is not None
    return OAuthClientConfig(settings.client_id, settings.client_secret.get_secret_value())


def client_for(
    settings: Settings, *, tokens: TokenProvider | None = None, clock: Clock | None = None
) -> EulerClient:
    """An Euler client with the configured key, routes, timeout and retry policy."""
    return EulerClient(
        settings.api_base_url,
        settings.api_key.get_secret_value() if settings.api_key else None,
        tokens=tokens,
        routes=settings.routes,
        timeout=settings.http_timeout,
        transport=api_transport(library=settings.http_transport),
        retry=RetryPolicy(max_attempts=settings.max_attempts, max_wait=settings.max_retry_wait),
        clock=clock,
    )


def websocket_factory(settings: Settings) -> Callable[[str], EulerWebSocket]:
    """Opens the event WebSocket of one handle."""
    api_key = settings.api_key.get_secret_value() if settings.api_key else ""

    def open_for(handle: str) -> EulerWebSocket:
        return EulerWebSocket(settings.ws_url, unique_id=handle, api_key=api_key)

    return open_for


@asynccontextmanager
async def api_session(
    settings: Settings, clock: Clock
) -> AsyncIterator[tuple[EulerClient, TokenManager, TokenSet]]:
    """The Euler client acting for the streamer: API key, stored grant, token refresh."""
    settings.require("api_key")
    oauth = oauth_config(settings)
    token_store = TokenStore(settings.state_dir)
    grant = token_store.load()
    if grant is None:
        msg = f"no OAuth grant in {settings.state_dir}; run `modbot auth login` first"
        raise ConfigError(msg, setting="state_dir")
    tokens = TokenManager(token_store, oauth, clock=clock)
    async with client_for(settings, tokens=tokens, clock=clock) as client:
        tokens.bind(client)
        try:
            yield client, tokens, grant
        finally:
            with anyio.CancelScope(shield=True):
                await tokens.flush()  # a grant refreshed while the disk was failing
