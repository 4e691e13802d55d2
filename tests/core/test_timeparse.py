"""Command-line times: ISO 8601 and relative forms, checked against the datetime module."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evstore.core.errors import InvalidInput
from evstore.core.timeparse import civil_from_days, days_from_civil, format_iso, parse_time

NOW = 1_795_000_000_000  # some time in 2026


def ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20T10:00:00Z", datetime(2026, 11, 20, 10, tzinfo=UTC)),
        ("2026-11-20T10:00:00", datetime(2026, 11, 20, 10, tzinfo=UTC)),
        ("2026-11-20 10:00", datetime(2026, 11, 20, 10, tzinfo=UTC)),
        ("2026-11-20", datetime(2026, 11, 20, tzinfo=UTC)),
        ("2026-11-20T10:00:00.25Z", datetime(2026, 11, 20, 10, 0, 0, 250_000, tzinfo=UTC)),
        ("2026-11-20T10:00:00+02:00",
         datetime(2026, 11, 20, 10, tzinfo=timezone(timedelta(hours=2)))),
        ("2026-11-20T10:00:00-0530",
         datetime(2026, 11, 20, 10, tzinfo=timezone(-timedelta(hours=5, minutes=30)))),
        ("2024-02-29T23:59:59Z", datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)),
        ("1969-12-31T23:59:59Z", datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_iso_forms(text: str, expected: datetime) -> None:
    assert parse_time(text, NOW) == ms(expected)


@pytest.mark.parametrize(
    ("text", "back_ms"),
    [("-30s", 30_000), ("-30m", 1_800_000), ("-2h", 7_200_000), ("-1d", 86_400_000),
     ("-1w", 604_800_000), ("-1d12h", 129_600_000), ("now", 0), (" -2h ", 7_200_000)],
)
def test_relative_forms(text: str, back_ms: int) -> None:
    assert parse_time(text, NOW) == NOW - back_ms


@pytest.mark.parametrize(
    "text",
    ["", "yesterday", "2026-13-01", "2026-02-30", "2025-02-29", "2026-11-20T24:00",
     "2026-11-20T10:60", "-2x", "2h", "+2h", "2026-11-20T10:00:00+25:00", "20261120"],
)
def test_bad_times_are_refused_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(InvalidInput, match="ISO 8601"):
        parse_time(text, NOW)


@given(st.integers(min_value=-(6 * 10**13), max_value=10**14))
def test_format_matches_datetime_and_round_trips(millis: int) -> None:
    dt = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millis)
    assert format_iso(millis) == dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert parse_time(format_iso(millis), NOW) == millis


@given(st.integers(min_value=-(10**6), max_value=10**6))
def test_civil_days_are_inverse(days: int) -> None:
    assert days_from_civil(*civil_from_days(days)) == days
