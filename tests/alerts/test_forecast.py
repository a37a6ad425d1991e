"""Budget maths against hand-worked figures (docs/alerts.md, "Forecast: worked example")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from greenkpi.alerts.forecast import budget_forecast, trailing_rate_per_h
from greenkpi.lib.periods import period_bounds, period_label

H = timedelta(hours=1)
MAY = datetime(2026, 5, 1, tzinfo=UTC)
JUNE = datetime(2026, 6, 1, tzinfo=UTC)


def may_series() -> dict[datetime, float]:
    """May 1-3: 1 kWh every hour (72 kWh); May 4-10: 2.5 kWh every hour (420 kWh)."""
    series = {MAY + i * H: 1.0 for i in range(72)}
    series |= {MAY + (72 + i) * H: 2.5 for i in range(168)}
    return series


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 5, day, hour, minute, tzinfo=UTC)


def test_periods_are_calendar_months_quarters_and_years_in_utc():
    moment = datetime(2026, 5, 11, 13, 5, tzinfo=UTC)
    assert period_bounds("month", moment) == (MAY, JUNE)
    assert period_bounds("quarter", moment) == (
        datetime(2026, 4, 1, tzinfo=UTC),
        datetime(2026, 7, 1, tzinfo=UTC),
    )
    assert period_bounds("year", moment) == (
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    december = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
    assert period_bounds("month", december)[1] == datetime(2027, 1, 1, tzinfo=UTC)
    assert period_bounds("quarter", december)[0] == datetime(2026, 10, 1, tzinfo=UTC)
    assert period_label("quarter", datetime(2026, 10, 1, tzinfo=UTC)) == "2026-Q4"
    with pytest.raises(ValueError, match="aware"):
        period_bounds("month", datetime(2026, 5, 1))


def test_the_worked_example_consumption_rate_forecast_and_crossings():
    result = budget_forecast(
        may_series(),
        amount=1000.0,
        period_start=MAY,
        period_end=JUNE,
        as_of=at(11, 0),
        thresholds_pct=[10, 50, 80, 100],
    )
    assert result.consumed == pytest.approx(492.0)  # 72 + 420
    assert result.rate_window_h == 168  # May 4 00:00 - May 11 00:00
    assert result.rate_per_h == pytest.approx(2.5)
    assert result.rate_per_day == pytest.approx(60.0)
    assert result.forecast == pytest.approx(492 + 2.5 * 504)  # 21 days left: 1,752 kWh
    assert result.forecast_share == pytest.approx(1.752)
    assert result.exceeds
    ten, fifty, eighty, hundred = result.crossings
    # 100 kWh: 72 by May 4 00:00, then 2.5/h -> 99.5 after 11 h, 102 after 12 h: during 11:00-12:00.
    assert (ten.reached, ten.at) == (True, at(4, 12))
    assert (fifty.reached, fifty.at) == (False, at(11, 3, 12))  # 8 / 2.5 = 3.2 h
    assert eighty.at == at(16, 3, 12)  # 308 / 2.5 = 123.2 h = 5 d 3.2 h
    assert hundred.at == at(19, 11, 12)  # 508 / 2.5 = 203.2 h = 8 d 11.2 h
    assert result.crossing(100) is hundred


def test_a_budget_that_the_rate_does_not_reach_this_period_has_no_crossing_date():
    result = budget_forecast(
        may_series(), amount=5000.0, period_start=MAY, period_end=JUNE, as_of=at(11, 0)
    )
    assert not result.exceeds
    assert result.forecast == pytest.approx(1752.0)
    assert [c.at for c in result.crossings] == [None, None, None]  # 2,500 kWh needs 803 h


def test_the_rate_window_reaches_back_before_the_period_start():
    # June 3 00:00: 48 h of June at 1 kWh/h, the last 5 days of May at 4 kWh/h.
    series = {JUNE - (120 - i) * H: 4.0 for i in range(120)} | {
        JUNE + i * H: 1.0 for i in range(48)
    }
    result = budget_forecast(
        series,
        amount=2000.0,
        period_start=JUNE,
        period_end=datetime(2026, 7, 1, tzinfo=UTC),
        as_of=JUNE + 48 * H,
    )
    assert result.consumed == pytest.approx(48.0)
    assert result.rate_per_h == pytest.approx((480 + 48) / 168)  # = 3.142857 kWh/h
    assert result.forecast == pytest.approx(48 + (528 / 168) * 672)  # 2,160 kWh


def test_a_young_scope_uses_its_own_history_but_at_least_a_day():
    as_of = at(11, 0)
    two_days = {as_of - (48 - i) * H: 3.0 for i in range(48)}
    assert trailing_rate_per_h(two_days, as_of=as_of) == (pytest.approx(3.0), 48.0)
    one_hour = {as_of - H: 12.0}
    assert trailing_rate_per_h(one_hour, as_of=as_of) == (pytest.approx(0.5), 24.0)
    assert trailing_rate_per_h({}, as_of=as_of) == (0.0, 168.0)


def test_with_no_consumption_nothing_is_forecast_or_crossed():
    result = budget_forecast({}, amount=10.0, period_start=MAY, period_end=JUNE, as_of=at(11, 0))
    assert (result.consumed, result.forecast, result.exceeds) == (0.0, 0.0, False)
    assert all(c.at is None and not c.reached for c in result.crossings)
    with pytest.raises(ValueError, match="positive"):
        budget_forecast({}, amount=0, period_start=MAY, period_end=JUNE, as_of=at(11, 0))


# --- Weekday profile: docs/alerts.md, "Forecast: weekday profile, worked example" -------------


def june_series() -> dict[datetime, float]:
    """From May 1: weekdays 2 kWh/h (48 kWh/day), weekends 0.5 kWh/h (12 kWh/day); Mon-Thu
    June 22-25 busier at 3 kWh/h (72 kWh/day). Up to Fri June 26 00:00."""
    series = {}
    hour = MAY
    while hour < datetime(2026, 6, 26, tzinfo=UTC):
        busy = datetime(2026, 6, 22, tzinfo=UTC) <= hour < datetime(2026, 6, 26, tzinfo=UTC)
        series[hour] = 3.0 if busy else (2.0 if hour.weekday() < 5 else 0.5)
        hour += H
    return series


def test_the_weekday_profile_worked_example():
    from greenkpi.alerts.forecast import Method, choose_method

    july = datetime(2026, 7, 1, tzinfo=UTC)
    as_of = datetime(2026, 6, 26, tzinfo=UTC)  # a Friday
    assert choose_method("auto", as_of=as_of, first_data=MAY) is Method.WEEKDAY_PROFILE
    result = budget_forecast(
        june_series(),
        amount=1200.0,
        period_start=JUNE,
        period_end=july,
        as_of=as_of,
        thresholds_pct=[50, 80, 100, 104, 110],
        first_data=MAY,
        method="weekday_profile",
    )
    assert result.method == "weekday_profile"
    # 15 weekdays x 48 + 4 busy weekdays x 72 + 6 weekend days x 12
    assert result.consumed == pytest.approx(1080.0)
    # Mon-Thu: (48 + 48 + 48 + 72) / 4 = 54; Fri 48; Sat, Sun 12 (May 29 - June 25)
    assert result.weekday_profile == pytest.approx((54, 54, 54, 54, 48, 12, 12))
    assert result.weekday_profile_days == (4,) * 7
    # Fri 48 + Sat 12 + Sun 12 + Mon 54 + Tue 54 = 180 kWh to come
    assert result.forecast == pytest.approx(1260.0)
    # 1,200 kWh: 1,152 by Mon June 29 00:00, then 48 / 2.25 kWh/h = 21 h 20 min
    assert result.crossing(100).at == datetime(2026, 6, 29, 21, 20, tzinfo=UTC)
    assert result.crossing(80).reached and result.crossing(50).reached
    # 1,248 kWh: 1,206 by Tue June 30 00:00, then 42 / 2.25 kWh/h = 18 h 40 min; 1,320 kWh is
    # past the forecast (1,260): not crossed this period (found without walking the hours).
    assert result.crossing(104).at == datetime(2026, 6, 30, 18, 40, tzinfo=UTC)
    assert result.crossing(110).at is None and not result.crossing(110).reached

    flat = budget_forecast(
        june_series(),
        amount=1200.0,
        period_start=JUNE,
        period_end=july,
        as_of=as_of,
        first_data=MAY,
    )
    # The recent rate: (48 + 12 + 12 + 4 x 72) / 168 h = 2.142857 kWh/h over 120 h left
    assert flat.method == "recent_rate"
    assert flat.forecast == pytest.approx(1080 + 360 / 168 * 120)  # 1,337.1 kWh
    assert flat.crossing(100).at == datetime(2026, 6, 28, 8, tzinfo=UTC)  # 120 / 2.142857 = 56 h


def test_auto_uses_the_recent_rate_under_two_weeks_and_a_profile_falls_back_per_weekday():
    from greenkpi.alerts.forecast import Method, choose_method, weekday_profile

    as_of = datetime(2026, 5, 11, tzinfo=UTC)
    assert choose_method("auto", as_of=as_of, first_data=MAY) is Method.RECENT_RATE  # 10 days
    assert choose_method("auto", as_of=as_of, first_data=None) is Method.RECENT_RATE
    assert choose_method("weekday_profile", as_of=as_of, first_data=None) is (
        Method.WEEKDAY_PROFILE
    )
    # Data from Wed May 6 13:00: that day is partial and not a sample; Thu-Sun one day each,
    # Mon-Wed none (fallback to the recent rate x 24).
    series = {datetime(2026, 5, 6, 13, tzinfo=UTC) + i * H: 1.0 for i in range(107)}
    profile, days = weekday_profile(
        series, as_of=as_of, first_data=datetime(2026, 5, 6, 13, tzinfo=UTC), fallback_per_day=7.0
    )
    assert days == (0, 0, 0, 1, 1, 1, 1)
    assert profile == (7.0, 7.0, 7.0, 24.0, 24.0, 24.0, 24.0)
