"""The pure retry, close-code and mute-duration policies, as tables."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from modbot.euler.policy import (
    CLOSE_CODES,
    MAX_POLICY_LIMIT,
    MAX_POLICY_WINDOW,
    MAX_RETRY_AFTER,
    MutePlan,
    Next,
    RetryPolicy,
    RouteBudget,
    after_close,
    plan_mute,
    retry_after_seconds,
)

NOW = 1_790_000_000.0


class TestRetryPolicy:
    @pytest.mark.parametrize(
        ("attempt", "jitter", "expected"),
        [(1, 0.0, 0.25), (1, 0.999, 0.49975), (2, 0.0, 0.5), (3, 0.5, 1.5), (10, 0.0, 15.0)],
    )
    def test_backoff_grows_and_is_capped(self, attempt, jitter, expected):
        """Equal-jitter backoff doubles per attempt and never exceeds max_delay."""
        policy = RetryPolicy(max_attempts=20, base_delay=0.5, max_delay=30.0)
        assert policy.delay(attempt, retry_after=None, jitter=jitter) == pytest.approx(expected)

    def test_gives_up_after_max_attempts(self):
        """After max_attempts tries there is no further wait."""
        policy = RetryPolicy(max_attempts=3)
        assert policy.delay(2, retry_after=None, jitter=0.5) is not None
        assert policy.delay(3, retry_after=None, jitter=0.5) is None

    def test_server_wait_is_honoured(self):
        """Retry-After is waited in full, plus at most half a second of jitter."""
        policy = RetryPolicy(base_delay=0.5)
        assert policy.delay(1, retry_after=7.0, jitter=0.0) == 7.0
        assert (policy.delay(1, retry_after=7.0, jitter=0.99) or 99) < 7.5

    def test_server_wait_beyond_the_cap_is_not_waited(self):
        """A server asking for more than max_wait gets the error passed up instead."""
        assert RetryPolicy(max_wait=60).delay(1, retry_after=61, jitter=0) is None


class TestRetryAfterHeaders:
    @pytest.mark.parametrize(
        ("headers", "expected"),
        [
            ({"Retry-After": "3"}, 3.0),
            ({"retry-after": "0"}, 0.0),
            ({"Retry-After": "Wed, 21 Oct 2020 07:28:00 GMT"}, 0.0),  # in the past
            ({"Retry-After": formatdate(NOW + 90, usegmt=True)}, 90.0),
            ({"RateLimit-Reset": "12"}, 12.0),
            ({"X-RateLimit-Reset": str(int(NOW + 30))}, 30.0),
            ({"X-RateLimit-Reset": str(int((NOW + 40) * 1000))}, 40.0),
            ({"Retry-After": "5", "RateLimit-Reset": "50"}, 5.0),
            ({"Retry-After": "soon", "RateLimit-Reset": "8"}, 8.0),
            ({"RateLimit-Remaining": "0"}, None),
            ({}, None),
        ],
    )
    def test_header_table(self, headers, expected):
        """Retry-After wins; reset values are seconds when small and epochs when large."""
        result = retry_after_seconds(headers, NOW)
        if expected is None:
            assert result is None
        else:
            assert result == pytest.approx(expected)

    @pytest.mark.parametrize(
        ("headers", "expected"),
        [
            ({"Retry-After": "1e300"}, MAX_RETRY_AFTER),
            ({"Retry-After": "3601"}, MAX_RETRY_AFTER),
            ({"Retry-After": "3600"}, 3600.0),
            ({"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"}, MAX_RETRY_AFTER),
            ({"RateLimit-Reset": "1e300"}, MAX_RETRY_AFTER),  # an epoch in ms, far away
            ({"X-RateLimit-Reset": str(int(NOW + 86_400))}, MAX_RETRY_AFTER),
            ({"Retry-After": "-5"}, None),
            ({"Retry-After": "-5", "RateLimit-Reset": "8"}, 8.0),
            ({"Retry-After": "inf"}, None),
            ({"Retry-After": "-inf", "RateLimit-Reset": "8"}, 8.0),
            ({"Retry-After": "nan"}, None),
            ({"Retry-After": "1e400"}, None),  # inf once parsed
            ({"RateLimit-Reset": "-3"}, None),
            ({"RateLimit-Reset": "nan", "X-RateLimit-Reset": "4"}, 4.0),
        ],
    )
    def test_a_hostile_wait_is_bounded_or_no_answer(self, headers, expected):
        """A finite but huge wait is cut to an hour (it would park the route for ever);
        one that is negative or not finite is no answer, and the next header counts."""
        result = retry_after_seconds(headers, NOW)
        if expected is None:
            assert result is None
        else:
            assert result == pytest.approx(expected)


class TestCloseCodes:
    @pytest.mark.parametrize(
        ("code", "expected"),
        [
            (1000, Next.WAIT_LIVE),
            (1011, Next.BACKOFF),
            (4005, Next.WAIT_LIVE),
            (4006, Next.RECONNECT),
            (4400, Next.STOP),
            (4401, Next.STOP),
            (4403, Next.STOP),
            (4404, Next.WAIT_LIVE),
            (4429, Next.BACKOFF),
            (4500, Next.RECONNECT),
            (4555, Next.RECONNECT),
            (4556, Next.BACKOFF),
            (4557, Next.BACKOFF),
            (1006, Next.BACKOFF),
            (4999, Next.BACKOFF),
        ],
    )
    def test_close_code_table(self, code, expected):
        """Every documented close code takes its documented path; unknown codes back off."""
        assert after_close(code)[0] is expected

    def test_every_documented_code_has_a_reason(self):
        """Each code in the table explains itself for the log line."""
        assert all(reason for _next, reason in CLOSE_CODES.values())


class TestMuteDurations:
    @pytest.mark.parametrize(
        ("seconds", "plan"),
        [
            (5, MutePlan(5, None)),
            (3, MutePlan(5, None)),
            (30, MutePlan(30, None)),
            (45, MutePlan(60, None)),
            (60, MutePlan(60, None)),
            (200, MutePlan(300, None)),
            (300, MutePlan(300, None)),
            (10, MutePlan(-1, 10.0)),
            (120, MutePlan(-1, 120.0)),
            (600, MutePlan(-1, 600.0)),
            (3600, MutePlan(-1, 3600.0)),
            (None, MutePlan(-1, None)),
        ],
    )
    def test_mute_duration_table(self, seconds, plan):
        """API durations are used when close enough; others are permanent plus an unmute timer."""
        assert plan_mute(seconds) == plan

    def test_a_mute_must_last(self):
        """Zero or negative durations are refused."""
        with pytest.raises(ValueError, match="positive"):
            plan_mute(0)


class TestRouteBudget:
    """The advertised per-route budget, kept on our side (pure; times passed in)."""

    def test_unknown_budget_never_waits(self):
        budget = RouteBudget()
        for t in range(100):
            assert budget.delay(t * 0.001) == 0
            budget.note_sent()

    def test_policy_spaces_requests_over_the_window(self):
        budget = RouteBudget()
        budget.learn({"RateLimit-Policy": "3;w=2"}, 0.0, 1e9, ok=True)
        for t in (0.0, 0.1, 0.2):
            assert budget.delay(t) == 0
            budget.note_sent()
            budget.note_answered(t)
        # A fourth waits until the first leaves the window (2 s, with the margin).
        assert budget.delay(0.3) == pytest.approx(2 * RouteBudget.MARGIN - 0.3)
        assert budget.delay(0.0 + 2 * RouteBudget.MARGIN) == 0

    def test_a_request_counts_from_its_answer_and_while_in_flight(self):
        """A request's bytes may leave late (a busy loop) or its answer take long: it
        counts while in flight and then at its answer's time, so the server never sees
        more than the budget in a window, however late the bytes left."""
        budget = RouteBudget()
        budget.learn({"RateLimit-Policy": "2;w=1"}, 0.0, 1e9, ok=True)
        budget.note_sent()  # sent at 0.0, answered only at 0.8
        budget.note_sent()  # sent at 0.0, still in flight
        assert budget.delay(0.5) == RouteBudget.POLL  # the whole budget is in flight
        budget.note_answered(0.8)
        # One place is in flight, one answered at 0.8: free again 1.1 s after the answer.
        assert budget.delay(0.9) == pytest.approx(0.8 + RouteBudget.MARGIN - 0.9)
        budget.note_answered(1.0)
        assert budget.delay(1.95) == 0  # the 0.8 answer left the window
        assert budget.in_flight == 0

    def test_remaining_zero_on_success_holds_until_reset(self):
        budget = RouteBudget()
        budget.learn({"RateLimit-Remaining": "0", "RateLimit-Reset": "4"}, 10.0, 1e9, ok=True)
        assert budget.delay(11.0) == pytest.approx(3.0)
        assert budget.delay(14.0) == 0

    def test_an_error_answer_does_not_block(self):
        """A 429 is the retry logic's business (Retry-After), not a budget hold."""
        budget = RouteBudget()
        budget.learn({"RateLimit-Remaining": "0", "RateLimit-Reset": "30"}, 0.0, 1e9, ok=False)
        assert budget.delay(0.0) == 0

    @pytest.mark.parametrize("policy", ["", "x;w=1", "0;w=1", "5;w=-1", "5;w=abc"])
    def test_odd_policies_are_ignored_or_defaulted(self, policy):
        budget = RouteBudget()
        budget.learn({"RateLimit-Policy": policy}, 0.0, 1e9, ok=True)
        assert budget.limit in (None, 5)
        assert budget.window > 0

    @pytest.mark.parametrize(
        "policy",
        [
            "1;w=1e300",
            f"1;w={MAX_POLICY_WINDOW + 1:g}",
            "1;w=0",
            "1;w=-1",
            "1;w=inf",
            "1;w=nan",
            "1;w=",
            "1e300;w=1",
            f"{MAX_POLICY_LIMIT + 1};w=1",
        ],
    )
    def test_a_policy_out_of_bounds_is_ignored_as_if_absent(self, policy):
        """``1;w=1e300`` once made the next request wait about 1e300 s: a window past an
        hour, or a limit past MAX_POLICY_LIMIT, is refused and what was learned stays."""
        budget = RouteBudget()
        assert budget.learn({"RateLimit-Policy": "3;w=2"}, 0.0, 1e9, ok=True) is None
        reason = budget.learn({"RateLimit-Policy": policy}, 0.0, 1e9, ok=True)
        assert reason
        assert (budget.limit, budget.window) == (3, 2.0)
        budget.note_sent()
        budget.note_answered(0.0)
        assert budget.delay(0.0) == 0
        fresh = RouteBudget()
        fresh.learn({"RateLimit-Policy": policy}, 0.0, 1e9, ok=True)
        assert fresh.limit is None
        for _ in range(3):
            fresh.note_sent()
            fresh.note_answered(0.0)
        assert fresh.delay(0.0) == 0

    def test_a_refused_policy_is_reported_once_and_counted(self):
        budget = RouteBudget()
        reasons = [
            budget.learn({"RateLimit-Policy": "1;w=1e300"}, 0.0, 1e9, ok=True) for _ in range(3)
        ]
        assert reasons[0] is not None
        assert "window" in reasons[0]
        assert reasons[1:] == [None, None]
        assert budget.ignored == 3

    def test_the_largest_policy_allowed_is_taken(self):
        budget = RouteBudget()
        policy = f"{MAX_POLICY_LIMIT};w={MAX_POLICY_WINDOW:g}"
        assert budget.learn({"RateLimit-Policy": policy}, 0.0, 1e9, ok=True) is None
        assert (budget.limit, budget.window) == (MAX_POLICY_LIMIT, MAX_POLICY_WINDOW)

    def test_remaining_zero_with_a_huge_reset_holds_an_hour_at_most(self):
        budget = RouteBudget()
        budget.learn({"RateLimit-Remaining": "0", "RateLimit-Reset": "1e300"}, 0.0, 1e9, ok=True)
        assert budget.delay(0.0) == pytest.approx(MAX_RETRY_AFTER)
