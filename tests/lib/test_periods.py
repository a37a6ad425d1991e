"""Periods in UTC: the one hour floor, day floor, naive-UTC conversion and month arithmetic
(pure: no database). The URL's date ranges are tested in tests/dashboard/test_periods.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pandas as pd

from greenkpi.lib.periods import (
    add_months,
    day_floor,
    hour_floor,
    naive_utc,
    naive_utc_series,
    naive_utc_stamp,
)

IST = timezone(timedelta(hours=5, minutes=30))


def test_the_hour_floor_is_the_utc_hour_whatever_the_offset():
    assert hour_floor(datetime(2025, 3, 10, 12, 59, 59, 999999, tzinfo=UTC)) == datetime(
        2025, 3, 10, 12, tzinfo=UTC
    )
    # 18:10 in India is 12:40 UTC: the UTC hour starts at 12:00 UTC (17:30 there), not 18:00.
    floored = hour_floor(datetime(2025, 3, 10, 18, 10, tzinfo=IST))
    assert floored == datetime(2025, 3, 10, 12, tzinfo=UTC) and floored.tzinfo is UTC


def test_the_day_floor_is_midnight_utc_of_the_utc_day():
    assert day_floor(datetime(2025, 3, 10, 23, 59, tzinfo=UTC)) == datetime(2025, 3, 10, tzinfo=UTC)
    # 02:00 in India on the 11th is still the 10th in UTC.
    assert day_floor(datetime(2025, 3, 11, 2, 0, tzinfo=IST)) == datetime(2025, 3, 10, tzinfo=UTC)


def test_naive_utc_drops_the_zone_after_converting_to_utc():
    assert naive_utc(datetime(2025, 3, 10, 18, 10, tzinfo=IST)) == datetime(2025, 3, 10, 12, 40)
    series = naive_utc_series(pd.Series([datetime(2025, 3, 10, 18, 10, tzinfo=IST)]))
    assert series.dt.tz is None and series.iloc[0] == pd.Timestamp("2025-03-10 12:40")
    assert naive_utc_stamp(None) is pd.NaT
    assert naive_utc_stamp(datetime(2025, 3, 10, 18, 10, tzinfo=IST)) == pd.Timestamp(
        "2025-03-10 12:40"
    )


def test_month_arithmetic_crosses_years_both_ways():
    jan = datetime(2025, 1, 31, 6, tzinfo=UTC)
    assert add_months(jan, -1) == datetime(2024, 12, 1, 6, tzinfo=UTC)
    assert add_months(jan, 11) == datetime(2025, 12, 1, 6, tzinfo=UTC)
    assert add_months(jan, 12) == datetime(2026, 1, 1, 6, tzinfo=UTC)
