"""Budget maths against hand-worked figures (docs/alerts.md, "Forecast: worked example")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from greenkpi.alerts.forecast import budget_forecast, trailing_rate_per_h
from greenkpi.alerts.periods import period_bounds, period_label

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
