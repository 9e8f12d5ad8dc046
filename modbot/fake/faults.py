"""What goes wrong at the fake on purpose: injected faults and Euler's rate limits.

``Faults`` holds the failures a test queues per route (a status, latency, an error
``code`` inside an HTTP 200, a WebSocket closed on connect) and hands out the next one.
``RateLimits`` emulates the account's per-minute limit and per-route budgets, with the
headers Euler sends (``RateLimit-*``, ``Retry-After``) and 429s when they run out.
"""

from __future__ import annotations

import math
import secrets
from collections import Counter, defaultdict, deque
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse, Response

WS = "*ws"  # the queue of faults for WebSocket connects
ANY = "*"  # faults for every HTTP route


@dataclass
class Fault:
    """A failure to inject on a route, for the next ``times`` requests (-1: always).

    ``status`` 0 means no error (only ``latency``). ``in_200`` sends the error as an
    envelope ``code`` inside an HTTP 200, as Euler sometimes does.
    """

    status: int = 0
    times: int = 1
    latency: float = 0.0
    retry_after: float | None = None
    reset: float | None = None
    body: dict[str, Any] | None = None
    in_200: bool = False


class Faults:
    """The queued faults per route name (``*`` for every route, ``*ws`` for WebSocket connects)."""

    def __init__(self, routes: Collection[str]) -> None:
        self._routes = routes
        self._queues: dict[str, list[Fault]] = defaultdict(list)

    def inject(self, route: str, fault: Fault) -> None:
        """Fail the next requests to ``route`` (a route-table name, or ``*`` for all)."""
        if route != ANY and route not in self._routes:
            msg = f"unknown route {route!r}"
            raise KeyError(msg)
        self._queues[route].append(fault)

    def fail_next_connect(self, code: int, times: int = 1) -> None:
        """Close the next ``times`` WebSocket connections at once with ``code``."""
        self._queues[WS].append(Fault(status=code, times=times))

    def clear(self) -> None:
        self._queues.clear()

    def take(self, name: str) -> Fault | None:
        """The fault for this request to ``name`` (its own queue first, then ``*``), if any."""
        for key in (name, ANY):
            queue = self._queues.get(key)
            if not queue:
                continue
            fault = queue[0]
            if fault.times > 0:
                fault.times -= 1
                if fault.times == 0:
                    queue.pop(0)
            return fault
        return None


def fault_response(fault: Fault, per_minute: int | None) -> Response:
    """The answer Euler gives for this fault's status (its body and headers)."""
    status = fault.status
    if fault.body is not None:
        body = dict(fault.body)
    elif status == 429:
        body = {
            "code": 429,
            "message": "You have reached the rate limit. Sign up for a free API key at https://www.eulerstream.com/pricing.",
            "limit_label": "rate_limit_account_minute",
        }
    elif status == 500:
        body = {"code": 500, "error": f"Internal Server Error - {secrets.token_hex(8)}"}
    else:
        body = {"code": status, "message": f"Injected error {status}"}
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = f"{fault.retry_after:g}"
    if fault.reset is not None:
        headers["RateLimit-Reset"] = f"{fault.reset:.0f}"
        headers["X-RateLimit-Reset"] = f"{fault.reset:.0f}"
    if status == 429:
        headers.setdefault("RateLimit-Limit", str(per_minute or 60))
        headers.setdefault("RateLimit-Remaining", "0")
    return JSONResponse(body, status_code=200 if fault.in_200 else status, headers=headers)


class RateLimits:
    """The account's requests per minute, and per-route budgets of (requests, window seconds).

    A route budget is advertised on every answer of the route
    (RateLimit-Policy/-Limit/-Remaining/-Reset) and enforced with 429s.
    """

    def __init__(self, per_minute: int | None) -> None:
        self.per_minute = per_minute
        self.route_limits: dict[str, tuple[int, float]] = {}
        self.limited: Counter[str] = Counter()  # 429s answered for a route budget
        self._route_seen: dict[str, deque[float]] = defaultdict(deque)
        self._minute_window: tuple[int, int] = (0, 0)

    @property
    def used_this_minute(self) -> int:
        return self._minute_window[1]

    def route_budget(self, name: str, now: float) -> tuple[int, int, float] | None:
        """(limit, remaining after this request, seconds to reset) for a limited route."""
        if name not in self.route_limits:
            return None
        limit, window = self.route_limits[name]
        seen = self._route_seen[name]
        while seen and now - seen[0] >= window:
            seen.popleft()
        if len(seen) >= limit:
            return limit, -1, window - (now - seen[0])
        seen.append(now)
        return limit, limit - len(seen), window - (now - seen[0])

    def advertise(self, name: str, budget: tuple[int, int, float], response: Response) -> None:
        """Put the route budget's headers on its answer (and Retry-After when it ran out)."""
        limit, remaining, reset = budget
        window = self.route_limits[name][1]
        response.headers["RateLimit-Policy"] = f"{limit};w={window:g}"
        response.headers["RateLimit-Limit"] = str(limit)
        response.headers["RateLimit-Remaining"] = str(max(0, remaining))
        response.headers["RateLimit-Reset"] = f"{max(1, math.ceil(reset))}"
        if remaining < 0:
            response.headers["Retry-After"] = f"{max(1, math.ceil(reset))}"

    def count(self, now: float) -> Response | None:
        """Count one request against the account's minute; a 429 once it is over the limit."""
        minute = int(now // 60)
        start, count = self._minute_window
        if start != minute:
            start, count = minute, 0
        count += 1
        self._minute_window = (start, count)
        limit = self.per_minute
        if limit is not None and count > limit:
            reset = (minute + 1) * 60
            wait = max(1, math.ceil(reset - now))
            return JSONResponse(
                {
                    "code": 429,
                    "message": "You have reached the rate limit.",
                    "limit_label": "rate_limit_account_minute",
                },
                status_code=429,
                headers={
                    "Retry-After": str(wait),
                    "RateLimit-Limit": str(limit),
                    "RateLimit-Remaining": "0",
                    "RateLimit-Reset": str(wait),
                    "X-RateLimit-Reset": str(reset),
                },
            )
        return None
