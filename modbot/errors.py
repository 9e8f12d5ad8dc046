"""modbot's own exceptions, all raised with a message written for the person who must act.

The tree (modelled on ``httpx/_exceptions.py``)::

    ModbotError
    ├── ConfigError              a setting is missing or wrong (names the setting)
    ├── OAuthError               the authorization flow failed (wrong state, denied, scope)
    ├── ApiError                 the Euler API answered with an error or could not be reached
    │   ├── RateLimited          429; ``retry_after`` seconds until a retry is allowed
    │   ├── AuthExpired          401 about the streamer's access token; refresh once, then stop
    │   │   └── ReauthRequired   the refresh token is dead too: the streamer must log in again
    │   ├── PlanOrScopeDenied    401/402/403 not about the token: plan or scope lacks the route
    │   ├── NotFound             404: unknown streamer, room or user
    │   ├── RequestRejected      another 4xx: the request itself was wrong (never retried)
    │   ├── ServerError          500/502/503/504 from Euler (retried with backoff)
    │   ├── ApiUnavailable       timeout or connection failure (retried with backoff)
    │   └── BadResponse          the answer was not the JSON the route promises
    ├── SourceClosed             the event WebSocket closed; ``code`` and ``reason`` say why
    └── AuditError               the audit database cannot be opened or used

Only ``modbot.euler`` translates HTTP and transport failures into this tree, always with
``raise ... from exc``. No message ever contains a secret: routes are named, not URLs
with their query strings, and header values are never quoted.
"""

from __future__ import annotations


class ModbotError(Exception):
    """Base of every error modbot raises on purpose."""


class ConfigError(ModbotError):
    """A setting is missing or invalid."""

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


class OAuthError(ModbotError):
    """The OAuth authorization flow did not produce tokens."""

    def __init__(self, message: str, *, error: str | None = None) -> None:
        super().__init__(message)
        self.error = error


class ApiError(ModbotError):
    """The Euler API answered with an error, or could not be reached.

    ``route`` is the route's name in the route table (``mute``, ``bulk_live_check`` ...),
    ``status`` the HTTP status or the envelope ``code`` when it carried the error.
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        route: str | None = None,
        status: int | None = None,
        oauth_error: str | None = None,
    ) -> None:
        super().__init__(message)
        self.route = route
        self.status = status
        self.oauth_error = oauth_error


class RateLimited(ApiError):
    """429: too many requests; retry after ``retry_after`` seconds (None if unknown)."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None,
        route: str | None = None,
        limit_label: str | None = None,
    ) -> None:
        super().__init__(message, route=route, status=429)
        self.retry_after = retry_after
        self.limit_label = limit_label


class AuthExpired(ApiError):
    """401 about the streamer's OAuth access token: expired, revoked or malformed."""


class ReauthRequired(AuthExpired):
    """The refresh token is dead as well; only a new `modbot auth login` helps."""


class PlanOrScopeDenied(ApiError):
    """The Euler plan or the OAuth grant does not allow this route; retrying cannot help."""

    def __init__(
        self, message: str, *, route: str | None, scope: str | None, status: int | None = None
    ) -> None:
        super().__init__(message, route=route, status=status)
        self.scope = scope


class NotFound(ApiError):
    """404: the streamer, room or user does not exist (or is not live)."""


class RequestRejected(ApiError):
    """Another 4xx: the request was malformed or refused; never retried."""


class ServerError(ApiError):
    """5xx from Euler; retried with backoff."""

    retryable = True


class ApiUnavailable(ApiError):
    """Euler could not be reached (timeout, refused or dropped connection)."""

    retryable = True


class BadResponse(ApiError):
    """The answer was not the JSON envelope the route promises."""


class SourceClosed(ModbotError):
    """The Euler WebSocket closed, with the close code and reason it gave."""

    def __init__(self, code: int, reason: str = "") -> None:
        text = f"the event WebSocket closed with code {code}"
        if reason:
            text += f" ({reason})"
        super().__init__(text)
        self.code = code
        self.reason = reason


class AuditError(ModbotError):
    """The audit database cannot be used (the message says why and what to do)."""
