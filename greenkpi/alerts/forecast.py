"""Budget maths: consumption to date, forecast to the period end, and when thresholds are crossed.

Pure functions over an hourly consumption series (hour start -> amount in the budget's unit); no
Django, no I/O. The method is written out with a worked example in docs/alerts.md ("Forecast"):

* ``consumed`` = sum of the hours in [period_start, as_of), where ``as_of`` is the last whole hour
  (the current hour is still being measured, so it is left out of both consumption and rate).
* ``rate_per_h`` = sum of the trailing 7 days [as_of - 7 d, as_of) / the hours of that window,
  the window being shortened to start at the first hour with data (a new team's rate is not diluted
  by days it did not exist), but never below 24 h (one busy hour is not a daily rate). The window
  may reach back before the period start: the rate is a property of the workload, not the period.
* ``forecast`` = consumed + rate_per_h x hours left until period_end (linear extrapolation).
* A threshold already reached is dated by the end of the hour in which the running sum reached it;
  one not yet reached is dated as_of + (target - consumed) / rate_per_h, or None when that falls
  after the period end (or the rate is 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

HOUR = timedelta(hours=1)
RATE_WINDOW = timedelta(days=7)
MIN_RATE_WINDOW = timedelta(hours=24)
DEFAULT_THRESHOLDS_PCT = (50, 80, 100)


@dataclass(frozen=True, slots=True)
class Crossing:
    """When a threshold (percent of the budget) was or will be reached."""

    threshold_pct: int
    target: float  # amount x pct / 100, in the budget's unit
    at: datetime | None  # None: not reached within the period at the current rate
    reached: bool  # True: already reached (``at`` is in the past)


@dataclass(frozen=True, slots=True)
class BudgetForecast:
    """Consumption, rate and forecast of one budget period, in the budget's unit."""

    amount: float
    period_start: datetime
    period_end: datetime
    as_of: datetime
    consumed: float
    rate_window_h: float
    rate_per_h: float
    forecast: float
    crossings: tuple[Crossing, ...]

    @property
    def rate_per_day(self) -> float:
        return self.rate_per_h * 24

    @property
    def consumed_share(self) -> float:
        return self.consumed / self.amount

    @property
    def forecast_share(self) -> float:
        return self.forecast / self.amount

    @property
    def exceeds(self) -> bool:
        """The forecast says the budget will be exceeded by the period end."""
        return self.forecast > self.amount

    def crossing(self, threshold_pct: int = 100) -> Crossing | None:
        return next((c for c in self.crossings if c.threshold_pct == threshold_pct), None)


def trailing_rate_per_h(
    hourly: Mapping[datetime, float], *, as_of: datetime, first_data: datetime | None = None
) -> tuple[float, float]:
    """(rate per hour, window hours) over the trailing window ending at ``as_of`` (see module)."""
    window_start = as_of - RATE_WINDOW
    first = first_data if first_data is not None else min(hourly, default=None)
    if first is not None and first > window_start:
        window_start = max(first, as_of - RATE_WINDOW)
    window_start = min(window_start, as_of - MIN_RATE_WINDOW)
    window_h = (as_of - window_start) / HOUR
    total = sum(v for hour, v in hourly.items() if window_start <= hour < as_of)
    return total / window_h, window_h


def budget_forecast(
    hourly: Mapping[datetime, float],
    *,
    amount: float,
    period_start: datetime,
    period_end: datetime,
    as_of: datetime,
    thresholds_pct: Sequence[int] = DEFAULT_THRESHOLDS_PCT,
    first_data: datetime | None = None,
) -> BudgetForecast:
    """Consumption to ``as_of``, forecast to ``period_end`` and threshold crossings (see module).

    ``hourly`` must cover [min(period_start, as_of - 7 d), as_of); hours without data may be
    missing (they count as zero). ``first_data`` is the first hour the scope ever had data (for a
    young scope's rate); default: the first hour in ``hourly``.
    """
    if amount <= 0:
        raise ValueError("a budget amount must be positive")
    as_of = min(max(as_of, period_start), period_end)
    in_period = sorted((h, v) for h, v in hourly.items() if period_start <= h < as_of)
    consumed = sum(v for _, v in in_period)
    rate_per_h, window_h = trailing_rate_per_h(hourly, as_of=as_of, first_data=first_data)
    hours_left = (period_end - as_of) / HOUR
    forecast = consumed + rate_per_h * hours_left
    crossings = []
    for pct in sorted(set(thresholds_pct)):
        target = amount * pct / 100
        crossings.append(_crossing(pct, target, in_period, consumed, rate_per_h, as_of, period_end))
    return BudgetForecast(
        amount=amount,
        period_start=period_start,
        period_end=period_end,
        as_of=as_of,
        consumed=consumed,
        rate_window_h=window_h,
        rate_per_h=rate_per_h,
        forecast=forecast,
        crossings=tuple(crossings),
    )


def _crossing(
    pct: int,
    target: float,
    in_period: Sequence[tuple[datetime, float]],
    consumed: float,
    rate_per_h: float,
    as_of: datetime,
    period_end: datetime,
) -> Crossing:
    if consumed >= target:
        running = 0.0
        for hour, value in in_period:
            running += value
            if running >= target:
                return Crossing(pct, target, hour + HOUR, reached=True)
    if rate_per_h <= 0:
        return Crossing(pct, target, None, reached=False)
    at = as_of + timedelta(hours=(target - consumed) / rate_per_h)
    return Crossing(pct, target, at if at <= period_end else None, reached=False)
