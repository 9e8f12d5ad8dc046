"""OAuth token sets and how they are read from Euler's answers (pure).

Everything here is hostile until checked: a token must be visible ASCII (it goes into
an HTTP header, so CR, LF, NUL or a space could forge one), and a lifetime must be a
finite number of seconds between zero and ten years (``NaN`` would never expire, so
the grant would never be refreshed).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from modbot.euler.scopes import parse_scopes

MAX_LIFETIME = 10 * 365.25 * 86400.0  # seconds; longer is not a lifetime but a mistake
MAX_TOKEN_CHARS = 8192
# Visible ASCII only: a token is sent as an HTTP header value.
_TOKEN = re.compile(r"[\x21-\x7e]+")
_TOKEN_TYPE = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_DIGITS = re.compile(r"[0-9]{1,12}")
# Epoch seconds in the stored form: after 1970 and before the year 5000.
_LATEST_EPOCH = 95_617_584_000.0


@dataclass(frozen=True)
class TokenSet:
    """One OAuth grant: tokens (masked in repr), their expiry times and granted scopes.

    ``issued_at`` (epoch seconds, None in files written before it existed) tells which
    of two grants is the newer one.
    """

    access_token: SecretStr
    refresh_token: SecretStr
    expires_at: float  # epoch seconds
    refresh_expires_at: float | None
    scopes: frozenset[str] = field(default_factory=frozenset)
    token_type: str = "Bearer"
    issued_at: float | None = None

    def expires_within(self, seconds: float, now_epoch: float) -> bool:
        """Whether the access token is expired or will be within ``seconds``."""
        return self.expires_at - now_epoch <= seconds

    def refresh_expired(self, now_epoch: float) -> bool:
        """Whether the refresh token is known to be past its lifetime."""
        return self.refresh_expires_at is not None and self.refresh_expires_at <= now_epoch

    def newer_than(self, other: TokenSet) -> bool:
        """Whether this grant was issued after ``other`` (by ``issued_at``, else expiry)."""
        if self.refresh_token == other.refresh_token:
            return False
        if self.issued_at is not None and other.issued_at is not None:
            return self.issued_at > other.issued_at
        return self.expires_at > other.expires_at

    def to_json(self) -> dict[str, Any]:
        """The stored form (contains the secrets: only for the 0600 token file)."""
        return {
            "access_token": self.access_token.get_secret_value(),
            "refresh_token": self.refresh_token.get_secret_value(),
            "expires_at": self.expires_at,
            "refresh_expires_at": self.refresh_expires_at,
            "scopes": sorted(self.scopes),
            "token_type": self.token_type,
            "issued_at": self.issued_at,
        }

    @classmethod
    def from_json(cls, data: object) -> TokenSet:
        """Read the stored form; raises ValueError when a field is missing or wrong."""
        if not isinstance(data, dict):
            msg = "the token file does not hold a JSON object"
            raise ValueError(msg)
        if "access_token" not in data or "refresh_token" not in data or "expires_at" not in data:
            msg = "the token file is missing access_token, refresh_token or expires_at"
            raise ValueError(msg)
        refresh_at = data.get("refresh_expires_at")
        issued_at = data.get("issued_at")
        try:
            scopes = parse_scopes(data.get("scopes", data.get("scope")))
        except TypeError as exc:
            raise ValueError(str(exc)) from None
        token_type = data.get("token_type", "Bearer")
        if not isinstance(token_type, str) or not _TOKEN_TYPE.fullmatch(token_type):
            msg = "the token file's token_type is not a short ASCII word"
            raise ValueError(msg)
        return cls(
            access_token=SecretStr(_token(data["access_token"], "access_token")),
            refresh_token=SecretStr(_token(data["refresh_token"], "refresh_token")),
            expires_at=_epoch(data["expires_at"], "expires_at"),
            refresh_expires_at=(
                _epoch(refresh_at, "refresh_expires_at") if refresh_at is not None else None
            ),
            scopes=scopes,
            token_type=token_type,
            issued_at=_epoch(issued_at, "issued_at") if issued_at is not None else None,
        )


def token_set_from_answer(data: dict[str, Any], now_epoch: float) -> TokenSet:
    """Build a TokenSet from the ``data`` of a token-endpoint answer.

    Scopes come as an array (``scopes``) or a space-separated string (``scope``);
    the docs-page aliases are mapped to the API's names. Raises ValueError for a
    token that is not visible ASCII, or a lifetime that is not a sane number of seconds.
    """
    access = _token(data.get("access_token"), "access_token")
    refresh = _token(data.get("refresh_token"), "refresh_token")
    expires_in = _seconds(data.get("expires_in"), "expires_in", default=3600.0)
    refresh_in = data.get("refresh_expires_in")
    try:
        scopes = parse_scopes(data.get("scopes", data.get("scope")))
    except TypeError as exc:
        raise ValueError(str(exc)) from None
    token_type = data.get("token_type") or "Bearer"
    if not isinstance(token_type, str) or not _TOKEN_TYPE.fullmatch(token_type):
        msg = "the token answer's token_type is not a short ASCII word"
        raise ValueError(msg)
    return TokenSet(
        access_token=SecretStr(access),
        refresh_token=SecretStr(refresh),
        expires_at=now_epoch + expires_in,
        refresh_expires_at=(
            now_epoch + _seconds(refresh_in, "refresh_expires_in", default=0.0)
            if refresh_in is not None
            else None
        ),
        scopes=scopes,
        token_type=token_type,
        issued_at=now_epoch,
    )


def _token(value: object, name: str) -> str:
    """A token as sent in a header: 1 to MAX_TOKEN_CHARS visible ASCII characters."""
    if not isinstance(value, str) or not value:
        msg = f"no {name}"
        raise ValueError(msg)
    if len(value) > MAX_TOKEN_CHARS or not _TOKEN.fullmatch(value):
        # The value itself is never quoted: it may be a real token.
        msg = f"the {name} is not {MAX_TOKEN_CHARS} or fewer visible ASCII characters"
        raise ValueError(msg)
    return value


def _seconds(value: object, name: str, *, default: float) -> float:
    """A lifetime: a finite number of seconds above 0 and at most ten years."""
    if value is None:
        return default
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        msg = f"{name} is not a number of seconds ({type(value).__name__})"
        raise ValueError(msg)
    # NaN compares false, and an int too big for a float is compared exactly.
    if not 0 < value <= MAX_LIFETIME or not math.isfinite(value):
        msg = f"{name} is not a number of seconds between 0 and 10 years"
        raise ValueError(msg)
    return float(value)


def _epoch(value: object, name: str) -> float:
    """A stored time: finite epoch seconds (JSON's NaN and Infinity are refused)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        msg = f"the token file's {name} is not a number"
        raise ValueError(msg)
    if not 0 <= value <= _LATEST_EPOCH or not math.isfinite(value):
        msg = f"the token file's {name} is not a time"
        raise ValueError(msg)
    return float(value)
