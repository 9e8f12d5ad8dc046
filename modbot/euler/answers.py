"""What the Euler API answers, read strictly: the envelope, the errors it stands for,
and the typed answers of the client's routes.

No I/O here: ``read_envelope`` takes the status, headers and body bytes that
``modbot.euler.transport`` read, and gives the envelope or the ``ApiError`` it stands for
(an error ``code`` inside an HTTP 200 is an error too). Ids and numbers go through
``modbot.events``' one parser; strings taken from an answer are scrubbed of secrets, then
cleaned (lone surrogates, controls) and only then shortened (``clean``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from modbot.errors import (
    ApiError,
    AuthExpired,
    BadResponse,
    NotFound,
    PlanOrScopeDenied,
    RateLimited,
    RequestRejected,
    ServerError,
)
from modbot.euler.policy import retry_after_seconds
from modbot.euler.routes import Route
from modbot.events import EventError, clean_text, parse_id, parse_number
from modbot.log import scrub

_PLAN_WORDS = ("premium", "plan", "upgrade", "pricing", "scope", "permission", "not allowed")
MAX_MESSAGE = 300  # characters of the server's explanation kept in an error
_SCRUB_WINDOW = 65_536  # characters of an answer's string looked at for secrets at most
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class LiveStatus:
    """Whether a streamer is live, and in which room."""

    user_id: str
    is_live: bool
    room_id: str | None


@dataclass(frozen=True, slots=True)
class ModerationResult:
    """TikTok's own answer to a moderation call, passed through by Euler."""

    status_code: int | None
    data: Any


@dataclass(frozen=True, slots=True)
class ListedUser:
    """A user in a list of mutes, bans or moderators."""

    user_id: str
    unique_id: str | None
    nickname: str | None


@dataclass(frozen=True, slots=True)
class UserPage:
    """One page of a mute, ban or moderator list."""

    users: tuple[ListedUser, ...]
    has_more: bool


@dataclass(frozen=True, slots=True)
class RateWindow:
    """One rate-limit window of the API key."""

    max: int | None
    remaining: int | None
    reset_at: str | None


@dataclass(frozen=True, slots=True)
class RateLimits:
    """The API key's remaining calls per minute, hour and day."""

    minute: RateWindow | None
    hour: RateWindow | None
    day: RateWindow | None


@dataclass(frozen=True, slots=True)
class UserInfo:
    """The TikTok account behind an OAuth grant."""

    user_id: str
    unique_id: str | None
    nickname: str | None
    room_id: str | None
    sec_uid: str | None = None  # what the sensitive-words routes call ``sec_anchor_id``


@dataclass(frozen=True, slots=True)
class SensitiveWord:
    """One word of a streamer's TikTok keyword filter."""

    word_id: str
    word: str


@dataclass(frozen=True, slots=True)
class UserList:
    """All pages of a list; ``complete`` is False when the page cap stopped the reading."""

    users: tuple[ListedUser, ...]
    complete: bool
    pages: int


def as_id(value: object, what: str = "id") -> str:
    """A TikTok numeric id as an exact decimal string (never through a float): what
    ``modbot.events.parse_id`` accepts, and not missing; BadResponse otherwise."""
    try:
        found = parse_id(value, what)
    except EventError as exc:
        raise BadResponse(str(exc)) from None
    if not found:
        msg = f"{what} is missing"
        raise BadResponse(msg)
    return found


def clean(value: str, limit: int = MAX_MESSAGE) -> str:
    """A string taken from an answer, fit for an error, a log line or the audit DB:
    registered secrets cut out first (a secret cut in half by the limit would not be
    found), lone surrogates made U+FFFD, controls removed, then at most ``limit``
    characters."""
    text = clean_text(scrub(value[:_SCRUB_WINDOW]), _SCRUB_WINDOW)
    return _CONTROLS.sub("", text)[:limit]


def read_envelope(
    route: Route,
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    now_epoch: float,
    *,
    sent_token: bool,
) -> dict[str, Any]:
    """The envelope of an answer (its status, headers and body), or the ApiError it
    stands for."""
    try:
        body: Any = json.loads(content) if content else {}
    except (ValueError, RecursionError):  # not JSON, not UTF-8, 5,000 digits, [ x 100,000
        body = None
    if not isinstance(body, dict):
        if status >= 400:
            body = {}
        else:
            msg = f"the {route.name} answer is not a JSON object (HTTP {status})"
            raise BadResponse(msg, route=route.name, status=status)
    code = body.get("code")
    if status < 400 and isinstance(code, int) and not isinstance(code, bool) and code >= 400:
        status = code  # an error reported inside an HTTP 200
    if status < 400:
        envelope: dict[str, Any] = body
        return envelope
    raise _error_for(route, status, body, headers, now_epoch, sent_token=sent_token)


def _error_for(
    route: Route,
    status: int,
    body: dict[str, Any],
    headers: Mapping[str, str],
    now_epoch: float,
    *,
    sent_token: bool,
) -> ApiError:
    message = _message(body)
    name = route.name
    text = f"Euler answered {status} to {name}"
    if message:
        text += f": {message}"
    oauth_error = _oauth_error(body)
    error: ApiError
    if status == 429:
        wait = retry_after_seconds(headers, now_epoch)
        label = body.get("limit_label")
        error = RateLimited(
            text + (f" (retry after {wait:g} s)" if wait is not None else ""),
            retry_after=wait,
            route=name,
            limit_label=clean(label, 80) if isinstance(label, str) else None,
        )
    elif status == 401 and sent_token and route.name != "token" and not _about_plan(message):
        error = AuthExpired(
            f"the streamer's access token was refused by {name}: {message or 'unauthorized'}",
            route=name,
            status=status,
        )
    elif status in (401, 402, 403) and not oauth_error:
        scope = route.scope
        why = f"the Euler plan or the OAuth grant does not allow {name}"
        if scope:
            why += f" (it needs the scope {scope})"
        error = PlanOrScopeDenied(
            f"{why}: {message or status}", route=name, scope=scope, status=status
        )
    elif status == 404:
        error = NotFound(text, route=name, status=status)
    elif status in (500, 502, 503, 504) or status >= 500:
        error = ServerError(text, route=name, status=status)
    else:
        error = RequestRejected(text, route=name, status=status)
    error.oauth_error = oauth_error
    return error


def _about_plan(message: str) -> bool:
    lowered = message.lower()
    return any(word in lowered for word in _PLAN_WORDS)


def _message(body: dict[str, Any]) -> str:
    """The server's explanation, shortened and with any secret it echoed cut out."""
    for key in ("message", "error_description", "error"):
        value = body.get(key)
        if isinstance(value, dict):
            value = value.get("error_description") or value.get("error")
        if isinstance(value, str) and value:
            return clean(value)
    return ""


def _oauth_error(body: dict[str, Any]) -> str | None:
    value = body.get("error")
    if isinstance(value, dict):
        inner = value.get("error")
        return clean(inner, 80) if isinstance(inner, str) else None
    return None


def response_object(body: dict[str, Any], name: str) -> dict[str, Any]:
    payload = body.get("response", body.get("data"))
    if not isinstance(payload, dict):
        msg = f"the {name} answer has no response object"
        raise BadResponse(msg, route=name)
    return payload


def moderation_result(body: dict[str, Any], name: str) -> ModerationResult:
    """TikTok's reply inside ``response.data`` (or ``data`` for chat)."""
    payload = response_object(body, name)
    inner = payload.get("data", payload) if "status_code" not in payload else payload
    if not isinstance(inner, dict):
        raise BadResponse(f"the {name} answer has no data object", route=name)
    raw = inner.get("status_code")
    if isinstance(raw, int | str) and not isinstance(raw, bool):
        try:
            status: int | None = parse_number(raw, "status_code", name)  # 4001 or "4001"
        except EventError as exc:
            raise BadResponse(f"the {exc}", route=name) from None
    elif raw is None:
        status = None
    else:
        msg = f"the {name} answer's status_code is not a number ({type(raw).__name__})"
        raise BadResponse(msg, route=name)
    if status:
        msg = f"TikTok refused {name} with status_code {status}"
        raise RequestRejected(msg, route=name, status=status)
    return ModerationResult(status_code=status, data=inner.get("data"))


def _listed(rows: object, name: str, what: str, each: str) -> Iterator[dict[str, Any]]:
    """The rows of a list answer, in order, each an object: else ``BadResponse`` ("the
    NAME answer has no WHAT" / "lists something that is not EACH", when reached)."""
    if not isinstance(rows, list):
        raise BadResponse(f"the {name} answer has no {what}", route=name)
    for row in rows:
        if not isinstance(row, dict):
            raise BadResponse(f"the {name} answer lists something that is not {each}", route=name)
        yield row


def user_page(body: dict[str, Any], name: str) -> UserPage:
    payload = response_object(body, name)
    inner = payload.get("data", payload)
    if not isinstance(inner, dict):
        raise BadResponse(f"the {name} answer has no data object", route=name)
    users = []
    for row in _listed(inner.get("data"), name, "list", "a user"):
        raw_id = row.get("id_str") or row.get("id") or row.get("user_id")
        users.append(
            ListedUser(
                user_id=as_id(raw_id, "user id"),
                unique_id=opt_str(row.get("display_id")),
                nickname=opt_str(row.get("nickname")),
            )
        )
    extra = inner.get("extra")
    has_more = bool(extra.get("has_more")) if isinstance(extra, dict) else False
    return UserPage(users=tuple(users), has_more=has_more)


def sensitive_words(body: dict[str, Any], name: str) -> list[SensitiveWord]:
    """The words of a keyword-filter answer: TikTok's list under ``data`` (or under
    ``data.words``/``data.word_list``), each row with ``word_id`` (or ``id``) and ``word``
    (or ``content``). The shape is not documented anywhere, so both spellings are read."""
    payload = response_object(body, name)
    inner = payload.get("data", payload)
    rows: object = inner.get("data") if isinstance(inner, dict) else inner
    if isinstance(rows, dict):
        rows = rows.get("words", rows.get("word_list"))
    words = []
    for row in _listed(rows, name, "list of words", "a word"):
        word = row.get("word", row.get("content"))
        if not isinstance(word, str) or not word:
            raise BadResponse(f"the {name} answer lists a word without text", route=name)
        words.append(
            SensitiveWord(word_id=as_id(row.get("word_id", row.get("id")), "word_id"), word=word)
        )
    return words


def rate_window(value: object) -> RateWindow | None:
    if not isinstance(value, dict):
        return None
    return RateWindow(
        max=_opt_int(value.get("max")),
        remaining=_opt_int(value.get("remaining")),
        reset_at=opt_str(value.get("reset_at")),
    )


def _opt_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def opt_str(value: object, limit: int = 200) -> str | None:
    if value is None:
        return None
    return clean(value if isinstance(value, str) else str(value), limit)
