"""The shapes of Euler's answers: error envelopes, TikTok's data envelope, a TikTok user row.

Shared by the REST handlers (``modbot.fake.api``) and the OAuth server
(``modbot.fake.oauth``), so both answer in the same envelopes as the real service.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse, Response


def error(status: int, message: str) -> Response:
    """Euler's error envelope, with the HTTP status as its ``code``."""
    return JSONResponse({"code": status, "message": message}, status_code=status)


def oauth_error(status: int, error: str, description: str) -> Response:
    """An OAuth error (RFC 6749 names) inside Euler's envelope."""
    return JSONResponse(
        {
            "code": status,
            "message": description,
            "error": {"error": error, "error_description": description},
        },
        status_code=status,
    )


def tiktok(now_ms: int, data: Any = None, status_code: int = 0) -> Response:
    """A moderation answer: TikTok's ``data``/``extra``/``status_code`` inside Euler's envelope."""
    return JSONResponse(
        {
            "code": 200,
            "response": {
                "data": {
                    "data": {} if data is None else data,
                    "extra": {"now": now_ms},
                    "status_code": status_code,
                }
            },
        }
    )


def tiktok_list(
    now_ms: int, rows: list[dict[str, Any]], *, has_more: bool = False, total: int | None = None
) -> Response:
    """A list answer (mutes, bans, moderators, words): one page, ``has_more`` if not the last."""
    return JSONResponse(
        {
            "code": 200,
            "response": {
                "data": {
                    "data": rows,
                    "extra": {
                        "has_more": has_more,
                        "next_cursor": 0,
                        "now": now_ms,
                        "total": len(rows) if total is None else total,
                    },
                    "status_code": 0,
                }
            },
        }
    )


def tiktok_user(
    user_id: str, *, mute_duration: int | None = None, names: tuple[str, str] | None = None
) -> dict[str, Any]:
    """A user row as TikTok lists it (with the mute's remaining seconds for a muted one);
    ``names`` is (handle, nickname), made up from the id when not given."""
    handle, nickname = names or (f"user{user_id[-6:]}", f"User {user_id[-4:]}")
    row: dict[str, Any] = {
        "id": int(user_id),
        "id_str": user_id,
        "display_id": handle,
        "nickname": nickname,
        "sec_uid": "MS4wLj" + user_id[-8:],
    }
    if mute_duration is not None:
        row["user_attr"] = {"is_muted": True, "mute_duration": mute_duration}
    return row


def status_of(response: Response) -> int:
    """The status a client sees: the envelope's error ``code`` for an error inside a 200."""
    if response.status_code != 200:
        return response.status_code
    code = _code(response)
    return code if code >= 400 else response.status_code


def _code(response: Response) -> int:
    try:
        body = json.loads(bytes(response.body))
    except (ValueError, AttributeError):
        return response.status_code
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, int) else response.status_code
