"""The Euler WebSocket: one connection to one streamer's live events.

The seam between modbot and its WebSocket library. We use ``websockets`` (its asyncio
implementation): it is the most widely used and best maintained WebSocket library for
Python, it follows RFC 6455 strictly (close codes and reasons are exposed as sent),
it runs on the asyncio loop that anyio drives, and uvicorn uses it too, so the fake
server and the client speak through the same well-tested code. Nothing outside this
module imports it.

``EulerWebSocket.bundles()`` yields each JSON bundle ``{"timestamp", "messages"}``
in order and ends by raising ``SourceClosed(code, reason)``; what to do after a close
is ``policy.after_close(code)``. Malformed frames are counted by kind, logged once
per kind, and skipped.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import websockets.exceptions as wsx
from pydantic import SecretStr
from websockets.asyncio.client import connect

from modbot.errors import ApiUnavailable, PlanOrScopeDenied, SourceClosed
from modbot.log import get_logger, register_secret

log = get_logger("modbot.ws")

# Always sent: the defaults of Euler's WebSocket have changed between SDK versions.
DEFAULT_FEATURES: Mapping[str, str] = {
    "bundleEvents": "true",
    "schemaVersion": "v2",
    "rawMessages": "false",
    "syntheticPresence": "false",
    "normalizeUniqueId": "true",
    "closeInactiveWebSocketAfter": "120",
}
MAX_FRAME = 4 * 1024 * 1024
# Proxy policy, the same as the API client's (``modbot.euler.client.api_transport``):
# straight to the configured host, whatever HTTPS_PROXY / ALL_PROXY say. websockets
# would follow them by default (``proxy=True``), the API client does not: the two
# channels left by different routes (review L11). The key is in this URL's query.
PROXY = None


def ws_address(
    base: str, *, unique_id: str, api_key: str, features: Mapping[str, str] | None = None
) -> str:
    """The connection URL: ``uniqueId``, ``apiKey`` and every ``features.*`` option."""
    query = {"uniqueId": unique_id, "apiKey": api_key}
    for name, value in {**DEFAULT_FEATURES, **(features or {})}.items():
        query[f"features.{name}"] = value
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}{urlencode(query)}"


class EulerWebSocket:
    """One WebSocket to Euler for one streamer."""

    def __init__(
        self,
        base_url: str,
        *,
        unique_id: str,
        api_key: str,
        features: Mapping[str, str] | None = None,
        open_timeout: float = 15.0,
    ) -> None:
        register_secret(api_key)
        self.unique_id = unique_id
        # A SecretStr: the URL's query holds the key, and vars() must not show it.
        self._url = SecretStr(
            ws_address(base_url, unique_id=unique_id, api_key=api_key, features=features)
        )
        self._host = urlsplit(base_url).hostname or "?"
        self._open_timeout = open_timeout
        self.malformed: Counter[str] = Counter()
        self.frames = 0

    def __repr__(self) -> str:
        # Never the URL: its query holds the API key.
        return f"<EulerWebSocket {self.unique_id} at {self._host}>"

    async def bundles(self) -> AsyncIterator[dict[str, Any]]:
        """Yield the bundles of one connection; always ends by raising ``SourceClosed``.

        Raises:
            SourceClosed: the socket closed (the code says why; 1006 if it just dropped).
            ApiUnavailable: the connection could not be opened.
            PlanOrScopeDenied: Euler refused the handshake with 401/403.
        """
        try:
            connection = await connect(
                self._url.get_secret_value(),
                open_timeout=self._open_timeout,
                max_size=MAX_FRAME,
                compression="deflate",
                proxy=PROXY,
            )
        except wsx.InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 402, 403):
                msg = f"Euler refused the WebSocket for {self.unique_id} (HTTP {status})"
                raise PlanOrScopeDenied(msg, route="websocket", scope=None, status=status) from None
            msg = f"Euler answered HTTP {status} to the WebSocket for {self.unique_id}"
            raise ApiUnavailable(msg, route="websocket", status=status) from None
        except (OSError, TimeoutError, wsx.InvalidHandshake, wsx.InvalidURI) as exc:
            msg = f"could not open the WebSocket for {self.unique_id} ({type(exc).__name__})"
            raise ApiUnavailable(msg, route="websocket") from None
        async with connection:
            try:
                async for frame in connection:
                    self.frames += 1
                    bundle = self._parse(frame)
                    if bundle is not None:
                        yield bundle
            except wsx.ConnectionClosed:
                pass
            code = connection.close_code if connection.close_code is not None else 1006
            reason = connection.close_reason or ""
        raise SourceClosed(code, reason)

    def _parse(self, frame: str | bytes) -> dict[str, Any] | None:
        if isinstance(frame, bytes):
            self._bad("binary frame")
            return None
        try:
            data = json.loads(frame)
        except ValueError:
            self._bad("frame that is not JSON")
            return None
        except RecursionError:
            self._bad("frame nested too deeply")
            return None
        if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
            self._bad("JSON frame without a messages list")
            return None
        return data

    def _bad(self, kind: str) -> None:
        self.malformed[kind] += 1
        if self.malformed[kind] == 1:
            log.warning("ws.malformed_frame", streamer=self.unique_id, kind=kind)
