"""Periods and calendars in UTC: the one hour floor, day floor, naive-UTC conversion and month
arithmetic, the date range of a page (read from and written to its URL) and budget periods.

Pure: no Django, no I/O. All times are aware and in UTC; the only naive times are the ones this
module makes on purpose for pandas and Plotly (tz-naive UTC datetime64 serialises ~130x faster
than a tz-aware index, docs/dashboard.md).

Page periods are whole UTC hours (``24h``: the last 24 hours including the current one) or whole UTC
days (``7d``/``30d``/``90d``: the last N days including today; explicit dates), so every page reads
complete rollup rows: HourlyRollup for hours, DailyRollup for days (docs/dashboard.md). Budget
periods are calendar months, quarters and years in UTC (docs/alerts.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

import pandas as pd

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
_MIDNIGHT = time.min.replace(tzinfo=UTC)


# --- instants ---------------------------------------------------------------------------------


def hour_floor(moment: datetime) -> datetime:
    """The start of the UTC hour containing ``moment`` (aware, UTC)."""
    return datetime.fromtimestamp(int(moment.timestamp()) // 3600 * 3600, UTC)


def day_floor(moment: datetime) -> datetime:
    """Midnight UTC of the UTC day containing ``moment`` (aware, UTC)."""
    return datetime.combine(moment.astimezone(UTC).date(), time.min, tzinfo=UTC)


def day_start(day: date) -> datetime:
    """Midnight UTC at the start of ``day`` (aware)."""
    return datetime.combine(day, time.min, tzinfo=UTC)


def naive_utc(moment: datetime) -> datetime:
    """``moment`` in UTC without its tzinfo: what pandas frames and Plotly axes carry."""
    return moment.astimezone(UTC).replace(tzinfo=None)


def naive_utc_series(values: pd.Series) -> pd.Series:
    """Times (aware, or naive meaning UTC) as tz-naive UTC datetime64."""
    return pd.to_datetime(values, utc=True).dt.tz_localize(None)


def naive_utc_stamp(value: object) -> object:
    """One time as a tz-naive UTC Timestamp, or NaT for a missing one."""
    if value is None or value is pd.NaT:
        return pd.NaT
    return pd.Timestamp(value).tz_convert("UTC").tz_localize(None)


# --- months -----------------------------------------------------------------------------------


def month_start(day: date) -> datetime:
    """Midnight UTC of the first day of ``day``'s month."""
    return datetime(day.year, day.month, 1, tzinfo=UTC)


def add_months(moment: datetime, months: int) -> datetime:
    """The first day of the month ``months`` after (or before) ``moment``'s, same time of day."""
    index = moment.year * 12 + moment.month - 1 + months
    return moment.replace(year=index // 12, month=index % 12 + 1, day=1)


def months_between(start: datetime, end: datetime) -> int:
    """Calendar months from ``start``'s month to ``end``'s month."""
    return (end.year - start.year) * 12 + end.month - start.month


# --- page periods (the URL's range) -----------------------------------------------------------

PRESETS: dict[str, timedelta] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
}
# A year is the most one page may ask for.
MAX_SPAN = timedelta(days=366)


class BadPeriod(ValueError):
    """The URL asked for a range we cannot show (answered with 400 and the reason)."""


@dataclass(frozen=True)
class Period:
    """A half-open UTC interval [start, end) and how the URL named it."""

    start: datetime
    end: datetime
    preset: str  # a PRESETS key, or "" for explicit dates

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    @property
    def hours(self) -> float:
        return self.seconds / 3600

    @property
    def days(self) -> tuple[date, date] | None:
        """[first day, end day) when the period is whole UTC days, else None (read hours)."""
        if self.start.timetz() == _MIDNIGHT and self.end.timetz() == _MIDNIGHT:
            return self.start.date(), self.end.date()
        return None

    @property
    def last_day(self) -> date:
        """The UTC day of the period's last instant (``to`` is inclusive; ``end`` is not)."""
        return (self.end - timedelta(microseconds=1)).date()

    def query(self) -> dict[str, str]:
        """URL parameters that recreate this period."""
        if self.preset:
            return {"range": self.preset}
        return {"from": self.start.date().isoformat(), "to": self.last_day.isoformat()}


def period_from_query(
    params: Mapping[str, str], *, default: str = "7d", now: datetime | None = None
) -> Period:
    """``?range=24h|7d|30d|90d`` ending now, or ``?from=YYYY-MM-DD&to=YYYY-MM-DD`` (whole UTC days)."""
    now = now or datetime.now(UTC)
    start_s, end_s = params.get("from", ""), params.get("to", "")
    if start_s or end_s:
        try:
            first = date.fromisoformat(start_s)
            last = date.fromisoformat(end_s) if end_s else now.date()
        except ValueError as exc:
            raise BadPeriod("dates must be written YYYY-MM-DD") from exc
        start = day_start(first)
        end = day_start(last + DAY)
        if end <= start:
            raise BadPeriod("'to' must not be before 'from'")
        if end - start > MAX_SPAN:
            raise BadPeriod("a range may span at most 366 days")
        return Period(start=start, end=end, preset="")
    preset = params.get("range", "") or default
    if preset not in PRESETS:
        raise BadPeriod(f"range must be one of {', '.join(PRESETS)}")
    span = PRESETS[preset]
    # hours: up to the end of the current hour; days: up to the end of today (UTC)
    end = hour_floor(now) + HOUR if preset.endswith("h") else day_floor(now) + DAY
    return Period(start=end - span, end=end, preset=preset)


def is_calendar_months(period: Period) -> bool:
    """Whether ``period`` is explicit whole calendar months (month over month comparisons)."""
    start, end = period.start, period.end
    return (
        start == month_start(start.date())
        and end == month_start(end.date())
        and end > start
        and not period.preset
    )


def previous_period(period: Period) -> Period:
    """The period compared against: the previous calendar month(s) when the range is whole months
    (month over month), else the equal-length period just before."""
    if is_calendar_months(period):
        months = months_between(period.start, period.end)
        return Period(start=add_months(period.start, -months), end=period.start, preset="")
    return Period(start=period.start - (period.end - period.start), end=period.start, preset="")


def month_period(text: str | None, *, now: datetime | None = None) -> Period:
    """``?month=YYYY-MM`` as a whole UTC month; default the last full month. Bad input → 400."""
    now = now or datetime.now(UTC)
    if not text:
        start = add_months(month_start(now.date()), -1)
    else:
        try:
            year_s, month_s = text.split("-")
            if len(year_s) != 4 or len(month_s) != 2:
                raise ValueError(text)
            start = datetime(int(year_s), int(month_s), 1, tzinfo=UTC)
        except ValueError as exc:
            raise BadPeriod("month must be written YYYY-MM, e.g. 2026-03") from exc
        if start > now:
            raise BadPeriod("that month has not started yet")
        if start.year < 2000:
            raise BadPeriod("months before 2000 hold no data")
    return Period(start=start, end=add_months(start, 1), preset="")


# --- budget periods (calendar month, quarter, year in UTC) -----------------------------------


class PeriodKind(StrEnum):
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


def _months(kind: str) -> int:
    try:
        return {PeriodKind.MONTH: 1, PeriodKind.QUARTER: 3, PeriodKind.YEAR: 12}[PeriodKind(kind)]
    except ValueError:
        raise ValueError(f"unknown period {kind!r}") from None


def period_bounds(kind: str, moment: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the calendar period of ``kind`` that contains ``moment``, in UTC."""
    if moment.tzinfo is None:
        raise ValueError("moment must be timezone-aware")
    moment = moment.astimezone(UTC)
    months = _months(kind)
    first_month = (moment.month - 1) // months * months + 1
    start = datetime(moment.year, first_month, 1, tzinfo=UTC)
    return start, add_months(start, months)


def period_label(kind: str, start: datetime) -> str:
    """ "2026-05", "2026-Q2" or "2026" for the period starting at ``start``."""
    if PeriodKind(kind) is PeriodKind.MONTH:
        return f"{start:%Y-%m}"
    if PeriodKind(kind) is PeriodKind.QUARTER:
        return f"{start.year}-Q{(start.month - 1) // 3 + 1}"
    return f"{start.year}"
