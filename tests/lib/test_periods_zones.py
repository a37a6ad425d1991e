"""Local days, months and budget periods in an organisation's zone, worked out by hand.

Los Angeles is UTC-7 (PDT) until 1 November 2026 02:00 local and UTC-8 (PST) after; it springs
forward on 8 March 2026 (02:00 -> 03:00). Kolkata is UTC+5:30 all year (no DST).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from greenkpi.lib.periods import (
    BadPeriod,
    BadZone,
    Period,
    day_floor,
    day_hours,
    day_of,
    day_start,
    is_calendar_months,
    month_period,
    period_bounds,
    period_from_query,
    period_label,
    previous_period,
    zone,
)

LA = ZoneInfo("America/Los_Angeles")
KOLKATA = ZoneInfo("Asia/Kolkata")
NEPAL = ZoneInfo("Asia/Kathmandu")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_an_iana_name_is_a_zone_and_anything_else_is_refused_with_the_name() -> None:
    assert zone("America/Los_Angeles") == LA
    assert zone("UTC").key == "UTC"
    for bad in ("", "PST-ish", "Mars/Olympus", "+02:00", " UTC", "../etc/passwd"):
        with pytest.raises(BadZone, match="IANA"):
            zone(bad)


def test_la_31_october_2000_local_is_1_november_0300_utc_and_lands_in_october() -> None:
    moment = datetime(2026, 10, 31, 20, tzinfo=LA)
    assert moment.astimezone(UTC) == utc(2026, 11, 1, 3)
    assert day_of(moment, LA) == date(2026, 10, 31)
    start, end = period_bounds("month", moment, LA)
    # October starts at local midnight in PDT (-7) and ends at local midnight in PDT too: the
    # change back to PST happens on 1 November at 02:00 local, after the month ended.
    assert (start, end) == (utc(2026, 10, 1, 7), utc(2026, 11, 1, 7))
    assert start <= moment < end
    assert period_label("month", start, LA) == "2026-10"
    # In UTC the same instant is November's.
    assert period_bounds("month", moment)[0] == utc(2026, 11, 1)


def test_la_november_ends_in_pst_and_quarters_and_years_follow_the_zone() -> None:
    assert period_bounds("month", utc(2026, 11, 15), LA) == (
        utc(2026, 11, 1, 7),
        utc(2026, 12, 1, 8),
    )
    q4 = period_bounds("quarter", datetime(2026, 10, 31, 20, tzinfo=LA), LA)
    assert q4 == (utc(2026, 10, 1, 7), utc(2027, 1, 1, 8))
    assert period_label("quarter", q4[0], LA) == "2026-Q4"
    # New Year's Eve 20:00 in LA is 1 January 04:00 UTC: still 2026 there.
    year = period_bounds("year", utc(2027, 1, 1, 4), LA)
    assert year == (utc(2026, 1, 1, 8), utc(2027, 1, 1, 8))
    assert period_label("year", year[0], LA) == "2026"


def test_dst_days_have_25_and_23_hours() -> None:
    assert day_hours(date(2026, 11, 1), LA) == 25  # PDT midnight 07:00 UTC -> PST midnight 08:00
    assert day_start(date(2026, 11, 1), LA) == utc(2026, 11, 1, 7)
    assert day_start(date(2026, 11, 2), LA) == utc(2026, 11, 2, 8)
    assert day_hours(date(2026, 3, 8), LA) == 23  # PST midnight 08:00 UTC -> PDT midnight 07:00
    assert day_hours(date(2026, 3, 9), LA) == 24
    assert day_hours(date(2026, 3, 8)) == 24  # UTC


def test_kolkata_day_boundary_is_floored_to_the_utc_hour() -> None:
    # Local midnight of 5 May is 4 May 18:30 UTC; the day starts at the hour holding it, 18:00.
    assert day_start(date(2026, 5, 5), KOLKATA) == utc(2026, 5, 4, 18)
    assert day_hours(date(2026, 5, 5), KOLKATA) == 24
    # 4 May 23:40 local (18:10 UTC) is in that hour: it counts on 5 May (30 minutes shift).
    assert day_of(utc(2026, 5, 4, 18, 10), KOLKATA) == date(2026, 5, 5)
    # 23:20 local (17:50 UTC) is still 4 May.
    assert day_of(utc(2026, 5, 4, 17, 50), KOLKATA) == date(2026, 5, 4)
    # Nepal (+5:45): midnight is 18:15 UTC, floored to 18:00: 15 minutes shift.
    assert day_start(date(2026, 5, 5), NEPAL) == utc(2026, 5, 4, 18)
    assert day_floor(utc(2026, 5, 4, 18, 5), NEPAL) == utc(2026, 5, 4, 18)


def test_page_ranges_are_local_days() -> None:
    now = utc(2026, 11, 3, 5)  # 2 November 21:00 in LA
    week = period_from_query({"range": "7d"}, now=now, tz=LA)
    assert (week.start, week.end) == (utc(2026, 10, 27, 7), utc(2026, 11, 3, 8))
    assert week.days == (date(2026, 10, 27), date(2026, 11, 3))
    assert week.hours == 7 * 24 + 1  # the 25-hour day is in it
    explicit = period_from_query({"from": "2026-11-01", "to": "2026-11-01"}, now=now, tz=LA)
    assert (explicit.start, explicit.end, explicit.hours) == (
        utc(2026, 11, 1, 7),
        utc(2026, 11, 2, 8),
        25,
    )
    assert explicit.query() == {"from": "2026-11-01", "to": "2026-11-01"}
    assert explicit.zone_name == "America/Los_Angeles"
    hours = period_from_query({"range": "24h"}, now=now, tz=LA)
    assert hours.days is None and hours.hours == 24
    with pytest.raises(BadPeriod):
        period_from_query({"from": "2026-11-02", "to": "2026-11-01"}, now=now, tz=LA)


def test_months_and_previous_periods_in_the_zone() -> None:
    october = month_period("2026-10", now=utc(2026, 12, 1), tz=LA)
    assert (october.start, october.end) == (utc(2026, 10, 1, 7), utc(2026, 11, 1, 7))
    assert is_calendar_months(october)
    september = previous_period(october)
    assert (september.start, september.end) == (utc(2026, 9, 1, 7), utc(2026, 10, 1, 7))
    # Default: the last full local month. 1 December 05:00 UTC is still 30 November in LA.
    assert month_period(None, now=utc(2026, 12, 1, 5), tz=LA).start == utc(2026, 10, 1, 7)
    # Equal-length whole days before a DST change stay on local midnights.
    days = Period(utc(2026, 11, 1, 7), utc(2026, 11, 3, 8), "", LA)  # 1-2 Nov, 49 hours
    before = previous_period(days)
    assert (before.start, before.end) == (utc(2026, 10, 30, 7), utc(2026, 11, 1, 7))
    with pytest.raises(BadPeriod, match="not started"):
        month_period("2026-12", now=utc(2026, 12, 1, 5), tz=LA)
