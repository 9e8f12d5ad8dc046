"""What to do next after an API error or a WebSocket close (pure: tested with tables).

The sending loops in ``client.py`` and ``ws.py`` only act on what these functions
return, the way httpx computes a redirect in one place and sends it in another.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

# --- HTTP retries -------------------------------------------------------------------

EPOCH_THRESHOLD = 1_000_000_000  # a reset value this large is an epoch, not seconds
EPOCH_MS_THRESHOLD = 100_000_000_000
# The longest wait a server can ask for (Retry-After, RateLimit-Reset): an hour. Euler's
# longest window is a day's quota, but a pause longer than an hour is an outage the
# operator must see, not a wait; and `Retry-After: 1e300` must not park a route for ever.
MAX_RETRY_AFTER = 3600.0
# What a RateLimit-Policy may advertise: a window of at most an hour and at most this
# many requests in it (the API's are a few per second). Outside that the header is
# ignored as if absent: `1;w=1e300` would hold the route for ever, `1e300;w=1` would
# make the list of answer times as long as the server likes.
MAX_POLICY_WINDOW = 3600.0
MAX_POLICY_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Jittered exponential backoff, bounded in attempts and in each wait.

    ``max_attempts`` counts every try, the first included. A server that asks for a
    longer wait than ``max_wait`` is not waited for: the error goes to the caller,
    who can pause that route (``RateLimited.retry_after`` says how long).
    """

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_wait: float = 60.0

    def delay(self, attempt: int, *, retry_after: float | None, jitter: float) -> float | None:
        """Seconds to wait before try number ``attempt + 1``, or None to give up.

        ``attempt`` is the number of tries made so far (1 after the first failure);
        ``jitter`` is a random number in [0, 1).
        """
        if attempt >= self.max_attempts:
            return None
        if retry_after is not None:
            if retry_after > self.max_wait:
                return None
            # Honour the server, plus a little jitter so a crowd does not return at once.
            return max(0.0, retry_after) + jitter * min(1.0, self.base_delay)
        backoff: float = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        # "Equal jitter": half fixed, half random, never zero.
        return backoff / 2 + jitter * backoff / 2


class RouteBudget:
    """A route's request budget as the server advertises it, kept on our side.

    ``RateLimit-Policy: 6;w=1`` (six requests per second) is learned from any answer;
    a request then waits until fewer than six are in flight or were answered in the
    last window (with a margin). A request is counted from the moment it may go until
    its answer, and then at its answer's time: it reached the server no later than
    that, however long its bytes waited in a busy event loop, so the server never sees
    more than the budget in any window. ``RateLimit-Remaining: 0`` on a success holds
    the route until ``RateLimit-Reset``. Times are monotonic seconds.
    """

    MARGIN = 1.1  # the window as we count it, for clock and scheduling jitter
    POLL = 0.05  # seconds between looks while the whole budget is in flight

    def __init__(self) -> None:
        self.limit: int | None = None
        self.window = 1.0
        self.answered: deque[float] = deque()  # answer times within the window
        self.in_flight = 0
        self.blocked_until = 0.0
        self.ignored = 0  # RateLimit-Policy headers refused as out of bounds

    def learn(
        self, headers: Mapping[str, str], now: float, now_epoch: float, ok: bool
    ) -> str | None:
        """Learn the budget from an answer's headers. Returns why a ``RateLimit-Policy``
        was ignored the first time one is (the caller logs it once), else None; later
        refusals are only counted in ``ignored``."""
        lowered = {k.lower(): v for k, v in headers.items()}
        refused: str | None = None
        policy = lowered.get("ratelimit-policy")
        if policy:
            refused = self._learn_policy(policy)
        if ok and lowered.get("ratelimit-remaining", "").strip() == "0":
            reset = retry_after_seconds(
                {"ratelimit-reset": lowered.get("ratelimit-reset", "1")}, now_epoch
            )
            self.blocked_until = max(self.blocked_until, now + (reset or 1.0))
        if refused is None:
            return None
        self.ignored += 1
        return refused if self.ignored == 1 else None

    def _learn_policy(self, policy: str) -> str | None:
        """Take ``limit;w=window`` (the first policy listed); why not, when refused."""
        parts = [part.strip() for part in policy.split(",", maxsplit=1)[0].split(";")]
        limit = _number(parts[0])
        if limit is None or limit < 1:
            return None  # no budget stated (an empty or zero policy): nothing to learn
        window = 1.0
        for part in parts[1:]:
            if part.startswith("w="):
                found = _number(part[2:])
                if found is None or not 0 < found <= MAX_POLICY_WINDOW:
                    return f"its window is not a number of seconds in (0, {MAX_POLICY_WINDOW:g}]"
                window = found
        if limit > MAX_POLICY_LIMIT:
            return f"its limit is more than {MAX_POLICY_LIMIT} requests"
        self.limit = int(limit)
        self.window = window
        return None

    def delay(self, now: float) -> float:
        """Seconds to wait before the next request may go (0: now)."""
        wait = max(0.0, self.blocked_until - now)
        if self.limit is not None:
            span = self.window * self.MARGIN
            answered = self.answered
            while answered and now - answered[0] >= span:
                answered.popleft()
            used = self.in_flight + len(answered)
            if used >= self.limit:
                if self.in_flight >= self.limit:
                    wait = max(wait, self.POLL)  # only an answer frees a place
                else:  # the oldest answers free places as they leave the window
                    wait = max(wait, answered[used - self.limit] + span - now)
        return wait

    def note_sent(self) -> None:
        """A request goes: it counts as in flight until ``note_answered``."""
        self.in_flight += 1

    def note_answered(self, now: float) -> None:
        """One of the requests in flight was answered, or failed, at ``now``."""
        self.in_flight = max(0, self.in_flight - 1)
        if self.limit is not None:
            self.answered.append(now)
            while len(self.answered) > self.limit:
                self.answered.popleft()


def retry_after_seconds(headers: Mapping[str, str], now_epoch: float) -> float | None:
    """Seconds to wait according to ``Retry-After``, else ``RateLimit-Reset``.

    ``Retry-After`` is seconds or an HTTP date. ``RateLimit-Reset`` and
    ``X-RateLimit-Reset`` are seconds when small and an epoch (seconds or
    milliseconds) when large, since clients in the wild read them both ways.

    The answer is at most ``MAX_RETRY_AFTER``: a longer wait (``Retry-After: 1e300``, a
    date in the year 9999) is cut to it. A value that is not a finite number or a date
    (``inf``, ``nan``) or that is negative is no answer and the next header is read; a
    date or an epoch in the past is 0.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    value = lowered.get("retry-after")
    if value is not None:
        seconds = _number(value)
        if seconds is not None:
            if seconds >= 0:
                return min(seconds, MAX_RETRY_AFTER)
        else:
            try:
                when = parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError, OverflowError):
                when = None
            if when is not None:
                return _bounded(when.timestamp() - now_epoch)
    for name in ("ratelimit-reset", "x-ratelimit-reset"):
        reset = _number(lowered.get(name))
        if reset is None or reset < 0:
            continue
        if reset >= EPOCH_MS_THRESHOLD:
            return _bounded(reset / 1000 - now_epoch)
        if reset >= EPOCH_THRESHOLD:
            return _bounded(reset - now_epoch)
        return _bounded(reset)
    return None


def _bounded(seconds: float) -> float:
    """A wait the server asked for, within [0, MAX_RETRY_AFTER]."""
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


# --- WebSocket close codes ------------------------------------------------------------


class Next(enum.Enum):
    """What the event source does after its WebSocket closed."""

    WAIT_LIVE = "wait for the streamer to go live again"
    RECONNECT = "reconnect at once"
    BACKOFF = "reconnect after a jittered backoff"
    STOP = "stop and report"


# The documented close codes, by what the source does after each.
_REACTIONS: Mapping[Next, Mapping[int, str]] = {
    Next.WAIT_LIVE: {
        1000: "normal closure",
        4005: "the stream ended",
        4404: "the streamer is not live",
    },
    Next.RECONNECT: {
        4006: "no messages for a while",
        4500: "TikTok closed the connection",
        4555: "the 8-hour connection lifetime was reached",
    },
    Next.BACKOFF: {
        1011: "Euler internal error",
        4429: "too many connections or connecting too quickly",
        4556: "Euler could not fetch the stream",
        4557: "Euler could not fetch the room info",
    },
    Next.STOP: {
        4400: "Euler refused the connection options (check the handle and features)",
        4401: "Euler refused the API key",
        4403: "the API key or JWT is not allowed to watch this streamer",
    },
}
CLOSE_CODES: Mapping[int, tuple[Next, str]] = {
    code: (then, why) for then, codes in _REACTIONS.items() for code, why in codes.items()
}


def after_close(code: int) -> tuple[Next, str]:
    """The documented reaction to a close code; unknown codes back off and retry."""
    return CLOSE_CODES.get(code, (Next.BACKOFF, f"unexpected close code {code}"))


# --- Mute durations -------------------------------------------------------------------

API_MUTE_DURATIONS: tuple[int, ...] = (5, 30, 60, 300)
PERMANENT = -1
MAX_OVERSHOOT = 2.0  # an API duration up to twice the asked one is close enough


@dataclass(frozen=True, slots=True)
class MutePlan:
    """How a mute of some duration is done: one API duration, maybe an unmute timer."""

    api_duration: int
    unmute_after: float | None

    @property
    def needs_timer(self) -> bool:
        return self.unmute_after is not None


def plan_mute(seconds: float | None) -> MutePlan:
    """Map a wanted mute length to what the API allows (5, 30, 60, 300 s or permanent).

    ``None`` means forever. An exact API duration is used as is. A shorter mute takes
    the smallest API duration that covers it when that overshoots by at most
    ``MAX_OVERSHOOT`` times (45 s -> 60 s); anything else is a permanent mute plus an
    unmute timer at expiry (2 min, 10 min, 1 h ...).
    """
    if seconds is None:
        return MutePlan(PERMANENT, None)
    if seconds <= 0:
        msg = f"a mute must last a positive time, not {seconds} s"
        raise ValueError(msg)
    for allowed in API_MUTE_DURATIONS:
        if allowed >= seconds:
            if allowed <= seconds * MAX_OVERSHOOT:
                return MutePlan(allowed, None)
            break
    return MutePlan(PERMANENT, float(seconds))
