"""Budget maths: consumption to date, forecast to the period end, and when thresholds are crossed.

Pure functions over a consumption series in the budget's unit: ``daily`` totals of whole local days
of the organisation's zone ``tz`` (day start as a UTC instant -> amount; what the batched selectors
read from the daily rollups; a day lasts 23, 24 or 25 hours, lib.periods) and ``hourly``
amounts (hour start -> amount; the current partial day, or everything for callers holding hours).
A series is a set of buckets [start, end); the two kinds never overlap. No Django, no I/O. The
method is written out with a worked example in docs/alerts.md ("Forecast"):

* ``consumed`` = sum of the buckets in [period_start, as_of), where ``as_of`` is the last whole hour
  (the current hour is still being measured, so it is left out of both consumption and rate).
  Periods start at local midnight, so whole days never straddle the period start.
* ``rate_per_h`` = sum of the trailing 7 whole days and today's whole hours
  [day(as_of) - 7 d, as_of) / the hours of that window (168 h at midnight, up to 191 h at 23:00:
  day-aligned so the daily totals serve it), the window being shortened to start at the first hour
  with data (a new team's rate is not diluted by days it did not exist), but never below 24 h (one
  busy hour is not a daily rate). The window may reach back before the period start: the rate is
  a property of the workload, not the period.
* ``forecast`` = consumed + rate_per_h x hours left until period_end (linear extrapolation).
* A threshold already reached is dated by the end of the bucket (the hour today, the UTC day
  before) in which the running sum reached it;
  one not yet reached is dated as_of + (target - consumed) / rate_per_h, or None when that falls
  after the period end (or the rate is 0).

A second method, the **weekday profile** (``method="weekday_profile"``), replaces the flat rate by
one rate per weekday, because ML work is busy Monday to Friday and quiet at weekends:

* ``profile[w]`` = the mean daily total over the complete local days of weekday ``w`` (0 = Monday) in
  the last ``PROFILE_WEEKS`` (4) weeks before as_of's day, counting only days on or after the first
  whole day of data; a weekday with no such day falls back to ``rate_per_h`` x 24.
* Every future hour h in [as_of, period_end) is expected to use ``profile[weekday(h)] / hours of
  h's day`` (24, or 23 / 25 on DST days; flat within a day: the profile knows days, not hours); the forecast is consumed + their sum and a
  crossing is dated where the running sum reaches the target, interpolated within the hour.

``choose_method`` picks the profile when the scope has at least ``PROFILE_MIN_HISTORY`` (14 days)
of history, else the recent rate; a budget may force either. Each forecast records its method.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from enum import StrEnum

from greenkpi.lib.periods import day_hours, day_of, day_start, next_day_start

HOUR = timedelta(hours=1)
RATE_WINDOW = timedelta(days=7)
MIN_RATE_WINDOW = timedelta(hours=24)
DEFAULT_THRESHOLDS_PCT = (50, 80, 100)
DAY = timedelta(days=1)
PROFILE_WEEKS = 4
PROFILE_MIN_HISTORY = timedelta(days=14)


class Method(StrEnum):
    """How a forecast extrapolates (``Budget.forecast_method`` adds ``auto``)."""

    RECENT_RATE = "recent_rate"
    WEEKDAY_PROFILE = "weekday_profile"


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
    # Added after the first release (keep defaults: callers build and read these positionally).
    method: str = Method.RECENT_RATE
    # Weekday profile only: expected kWh (unit) per day, Monday first, and the days behind each.
    weekday_profile: tuple[float, ...] = ()
    weekday_profile_days: tuple[int, ...] = ()

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


Bucket = tuple[datetime, datetime, float]  # [start, end), amount


def buckets(
    hourly: Mapping[datetime, float],
    daily: Mapping[datetime, float] | None = None,
    tz: tzinfo = UTC,
) -> list[Bucket]:
    """The series as sorted [start, end) buckets: whole local days from ``daily`` (each to the next
    local midnight), hours from ``hourly``."""
    out = [(h, h + HOUR, v) for h, v in hourly.items()]
    out += [(d, next_day_start(d, tz), v) for d, v in (daily or {}).items()]
    out.sort(key=lambda b: b[0])
    return out


def _first(series: Sequence[Bucket], first_data: datetime | None) -> datetime | None:
    return first_data if first_data is not None else (series[0][0] if series else None)


def trailing_rate_per_h(
    hourly: Mapping[datetime, float],
    *,
    as_of: datetime,
    first_data: datetime | None = None,
    daily: Mapping[datetime, float] | None = None,
    tz: tzinfo = UTC,
) -> tuple[float, float]:
    """(rate per hour, window hours) over the trailing window ending at ``as_of`` (see module)."""
    return _trailing_rate(buckets(hourly, daily, tz), as_of=as_of, first_data=first_data, tz=tz)


def _trailing_rate(
    series: Sequence[Bucket], *, as_of: datetime, first_data: datetime | None, tz: tzinfo = UTC
) -> tuple[float, float]:
    nominal = day_start(day_of(as_of, tz) - RATE_WINDOW, tz)
    window_start = nominal
    first = _first(series, first_data)
    if first is not None and first > window_start:
        window_start = first
    window_start = min(window_start, as_of - MIN_RATE_WINDOW)
    window_h = (as_of - window_start) / HOUR
    # A whole day that holds the first hour counts whole: the scope had no use before that hour.
    total = sum(v for start, end, v in series if start >= nominal and window_start < end <= as_of)
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
    method: str = Method.RECENT_RATE,
    daily: Mapping[datetime, float] | None = None,
    tz: tzinfo = UTC,
) -> BudgetForecast:
    """Consumption to ``as_of``, forecast to ``period_end`` and threshold crossings (see module).

    ``daily`` (whole local days of ``tz``) and ``hourly`` together must cover
    [min(period_start, day(as_of) - 7 d), as_of) (the weekday profile: from as_of's day - 4 weeks)
    without overlapping; buckets without data may be missing (they count as zero). ``first_data``
    is the first hour the scope ever had data (for a young scope's rate); default: the start of the
    first bucket.
    """
    if amount <= 0:
        raise ValueError("a budget amount must be positive")
    method = Method(method)
    as_of = min(max(as_of, period_start), period_end)
    series = buckets(hourly, daily, tz)
    in_period = [b for b in series if period_start <= b[0] and b[1] <= as_of]
    consumed = sum(v for _, _, v in in_period)
    rate_per_h, window_h = _trailing_rate(series, as_of=as_of, first_data=first_data, tz=tz)
    if method is Method.WEEKDAY_PROFILE:
        profile, days = _weekday_profile(
            series, as_of=as_of, first_data=first_data, fallback_per_day=rate_per_h * 24, tz=tz
        )
        return _profile_forecast(
            amount=amount,
            period_start=period_start,
            period_end=period_end,
            as_of=as_of,
            consumed=consumed,
            in_period=in_period,
            rate_per_h=rate_per_h,
            window_h=window_h,
            profile=profile,
            days=days,
            thresholds_pct=thresholds_pct,
            tz=tz,
        )
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
    in_period: Sequence[Bucket],
    consumed: float,
    rate_per_h: float,
    as_of: datetime,
    period_end: datetime,
) -> Crossing:
    if consumed >= target:
        running = 0.0
        for _, end, value in in_period:
            running += value
            if running >= target:
                return Crossing(pct, target, end, reached=True)
    if rate_per_h <= 0:
        return Crossing(pct, target, None, reached=False)
    at = as_of + timedelta(hours=(target - consumed) / rate_per_h)
    return Crossing(pct, target, at if at <= period_end else None, reached=False)


def choose_method(requested: str, *, as_of: datetime, first_data: datetime | None) -> Method:
    """``auto``: the weekday profile once the scope has 14 days of history, else the recent rate."""
    if requested != "auto":
        return Method(requested)
    if first_data is not None and as_of - first_data >= PROFILE_MIN_HISTORY:
        return Method.WEEKDAY_PROFILE
    return Method.RECENT_RATE


def weekday_profile(
    hourly: Mapping[datetime, float],
    *,
    as_of: datetime,
    first_data: datetime | None = None,
    weeks: int = PROFILE_WEEKS,
    fallback_per_day: float = 0.0,
    daily: Mapping[datetime, float] | None = None,
    tz: tzinfo = UTC,
) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """(mean daily total per weekday, Monday first; complete days behind each) over the last
    ``weeks`` weeks of whole local days before as_of's day (see module)."""
    return _weekday_profile(
        buckets(hourly, daily, tz),
        as_of=as_of,
        first_data=first_data,
        weeks=weeks,
        fallback_per_day=fallback_per_day,
        tz=tz,
    )


def _weekday_profile(
    series: Sequence[Bucket],
    *,
    as_of: datetime,
    first_data: datetime | None = None,
    weeks: int = PROFILE_WEEKS,
    fallback_per_day: float = 0.0,
    tz: tzinfo = UTC,
) -> tuple[tuple[float, ...], tuple[int, ...]]:
    end = day_of(as_of, tz)
    start = end - timedelta(weeks=weeks)
    first = _first(series, first_data)
    if first is not None:
        first_day = day_of(first, tz)
        if day_start(first_day, tz) < first:  # data began mid-day: that day is partial
            first_day += DAY
        start = max(start, first_day)
    totals: dict[date, float] = {}
    day = start
    while day < end:
        totals[day] = 0.0
        day += DAY
    # Buckets a day or more outside the weeks are skipped before the zone lookup (a year budget
    # carries ~340 days of which the profile reads 28).
    lo, hi = day_start(start, tz) - DAY, day_start(end, tz) + DAY
    for bucket_start, _, value in series:
        if bucket_start < lo or bucket_start >= hi:
            continue
        day = day_of(bucket_start, tz)
        if day in totals:
            totals[day] += value
    sums = [0.0] * 7
    counts = [0] * 7
    for day, total in totals.items():
        sums[day.weekday()] += total
        counts[day.weekday()] += 1
    profile = tuple(sums[w] / counts[w] if counts[w] else fallback_per_day for w in range(7))
    return profile, tuple(counts)


def _profile_crossing(
    segments: Sequence[tuple[datetime, int, float]], consumed: float, target: float
) -> datetime | None:
    """When the running sum from ``consumed`` reaches ``target``, interpolated within the hour."""
    running = consumed
    for first, hours, per_h in segments:
        for i in range(hours):
            if per_h > 0 and running + per_h >= target:
                return first + i * HOUR + timedelta(hours=(target - running) / per_h)
            running += per_h
    return None


def _profile_forecast(
    *,
    amount: float,
    period_start: datetime,
    period_end: datetime,
    as_of: datetime,
    consumed: float,
    in_period: Sequence[Bucket],
    rate_per_h: float,
    window_h: float,
    profile: tuple[float, ...],
    days: tuple[int, ...],
    thresholds_pct: Sequence[int],
    tz: tzinfo = UTC,
) -> BudgetForecast:
    # Expected use of every hour left, flat within its (local) day: one (first hour, hours,
    # per hour) segment per day. A day at a time (a year budget has up to 8,760 hours left; a
    # zone lookup per hour was most of a budgets page's forecast cost), and the hours' amounts
    # summed in the same order as an hour-by-hour walk, so the figures are the same.
    segments: list[tuple[datetime, int, float]] = []
    hour = as_of
    while hour < period_end:
        day = day_of(hour, tz)
        per_h = profile[day.weekday()] / day_hours(day, tz)
        day_end = min(next_day_start(hour, tz), period_end)
        hours = -(-(day_end - hour) // HOUR)  # whole hours from ``hour`` to the day's end
        segments.append((hour, hours, per_h))
        hour += hours * HOUR
    values: list[float] = []
    for _, hours, per_h in segments:
        values.extend([per_h] * hours)
    forecast = consumed + sum(values)
    # No hour's running sum passes the forecast when no hour's use is negative: a target above
    # it (with room for rounding) is not crossed, without walking the hours.
    monotone = all(v >= 0 for v in profile)
    crossings = []
    for pct in sorted(set(thresholds_pct)):
        target = amount * pct / 100
        if consumed >= target:
            crossings.append(_crossing(pct, target, in_period, consumed, 0.0, as_of, period_end))
            continue
        if monotone and forecast < target - 1e-9 * abs(target):
            crossings.append(Crossing(pct, target, None, reached=False))
            continue
        crossings.append(
            Crossing(pct, target, _profile_crossing(segments, consumed, target), False)
        )
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
        method=Method.WEEKDAY_PROFILE,
        weekday_profile=profile,
        weekday_profile_days=days,
    )
