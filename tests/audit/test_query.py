"""``--since``/``--until`` values that cannot be a time are one clear FilterError (review L6)."""

from __future__ import annotations

import pytest

from modbot.audit.query import FilterError, parse_when
from modbot.fake.clock import FakeClock


@pytest.mark.parametrize(
    "value",
    [
        "99999999999999999999w",
        "9999999d",
        "9" * 400 + "s",  # float() of it is infinity
        "2739000y".replace("y", "d"),  # a date before year 1
        "0001-01-01T00:00:00+01:00",  # year 0 in UTC
        "9999-12-31T23:59:59-05:00",  # year 10000 in UTC
    ],
)
def test_out_of_range_is_a_filter_error(value: str) -> None:
    with pytest.raises(FilterError, match="out of range"):
        parse_when(value, FakeClock().now())


def test_the_value_is_shown_inert_and_short() -> None:
    with pytest.raises(FilterError) as info:
        parse_when("\x1b]0;pwn\x07" + "9" * 100, FakeClock().now())
    assert "\x1b" not in str(info.value)
    assert len(str(info.value)) < 140


def test_a_large_but_possible_duration_works() -> None:
    now = FakeClock().now()
    assert parse_when("520w", now).year == now.year - 10
