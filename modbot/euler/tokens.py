"""OAuth token sets and how they are read from Euler's answers (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from modbot.euler.scopes import parse_scopes


@dataclass(frozen=True)
class TokenSet:
    """One OAuth grant: tokens (masked in repr), their expiry times and granted scopes."""

    access_token: SecretStr
    refresh_token: SecretStr
    expires_at: float  # epoch seconds
    refresh_expires_at: float | None
    scopes: frozenset[str] = field(default_factory=frozenset)
    token_type: str = "Bearer"

    def expires_within(self, seconds: float, now_epoch: float) -> bool:
        """Whether the access token is expired or will be within ``seconds``."""
        return self.expires_at - now_epoch <= seconds

    def refresh_expired(self, now_epoch: float) -> bool:
        """Whether the refresh token is known to be past its lifetime."""
        return self.refresh_expires_at is not None and self.refresh_expires_at <= now_epoch

    def to_json(self) -> dict[str, Any]:
        """The stored form (contains the secrets: only for the 0600 token file)."""
        return {
            "access_token": self.access_token.get_secret_value(),
            "refresh_token": self.refresh_token.get_secret_value(),
            "expires_at": self.expires_at,
            "refresh_expires_at": self.refresh_expires_at,
            "scopes": sorted(self.scopes),
            "token_type": self.token_type,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TokenSet:
        """Read the stored form; raises ValueError when a field is missing or wrong."""
        try:
            access = data["access_token"]
            refresh = data["refresh_token"]
            expires_at = float(data["expires_at"])
        except (KeyError, TypeError, ValueError) as exc:
            msg = "the token file is missing access_token, refresh_token or expires_at"
            raise ValueError(msg) from exc
        if not isinstance(access, str) or not isinstance(refresh, str):
            msg = "the token file's tokens are not strings"
            raise ValueError(msg)
        refresh_at = data.get("refresh_expires_at")
        return cls(
            access_token=SecretStr(access),
            refresh_token=SecretStr(refresh),
            expires_at=expires_at,
            refresh_expires_at=float(refresh_at) if refresh_at is not None else None,
            scopes=parse_scopes(data.get("scopes", data.get("scope"))),
            token_type=str(data.get("token_type", "Bearer")),
        )


def token_set_from_answer(data: dict[str, Any], now_epoch: float) -> TokenSet:
    """Build a TokenSet from the ``data`` of a token-endpoint answer.

    Scopes come as an array (``scopes``) or a space-separated string (``scope``);
    the docs-page aliases are mapped to the API's names.
    """
    access = data.get("access_token")
    refresh = data.get("refresh_token")
    if not isinstance(access, str) or not access:
        msg = "the token answer has no access_token"
        raise ValueError(msg)
    if not isinstance(refresh, str) or not refresh:
        msg = "the token answer has no refresh_token"
        raise ValueError(msg)
    expires_in = _seconds(data.get("expires_in"), default=3600.0)
    refresh_in = data.get("refresh_expires_in")
    scopes_value = data.get("scopes", data.get("scope"))
    return TokenSet(
        access_token=SecretStr(access),
        refresh_token=SecretStr(refresh),
        expires_at=now_epoch + expires_in,
        refresh_expires_at=(
            now_epoch + _seconds(refresh_in, default=0.0) if refresh_in is not None else None
        ),
        scopes=parse_scopes(scopes_value),
        token_type=str(data.get("token_type") or "Bearer"),
    )


def _seconds(value: object, *, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        msg = f"expected a number of seconds, got {type(value).__name__}"
        raise ValueError(msg)
    return float(value)
