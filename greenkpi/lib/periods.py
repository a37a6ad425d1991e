"""Periods and calendars: the one hour floor, the organisation's local days (time zones, DST),
naive-UTC conversion and month arithmetic, the date range of a page (read from and written to its
URL) and budget periods.

Pure: no Django, no I/O. All instants are aware and in UTC; the only naive times are the ones this
module makes on purpose for pandas and Plotly (tz-naive UTC datetime64 serialises ~130x faster
than a tz-aware index, docs/dashboard.md).

Days, weeks, months, quarters and years are the organisation's (an IANA zone, default UTC): each
boundary is computed here, in the zone with zoneinfo, and turned into a UTC instant once. Rollups
are whole UTC hours, so a local day is the UTC hours from its local midnight to the next one: 24,
or 23 and 25 on the days the clocks change. Where local midnight is not on a whole UTC hour (an
offset such as +5:30, +5:45, +9:30 or -3:30) the boundary is **floored to the UTC hour**: the hour
that holds local midnight belongs to the day that starts in it, so the last 30 (or 15) minutes of
a local day are counted in the next one (docs/kpis.md, "Time zones and periods").

Page periods are whole UTC hours (``24h``: the last 24 hours including the current one) or whole
local days (``7d``/``30d``/``90d``: the last N days including today; explicit dates), so every page
reads complete rollup rows: HourlyRollup for hours, DailyRollup for days (docs/dashboard.md).
Budget periods are calendar months, quarters and years in the organisation's zone (docs/alerts.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
_MIDNIGHT = time.min.replace(tzinfo=UTC)


# --- instants ---------------------------------------------------------------------------------


def hour_floor(moment: datetime) -> datetime:
    """The start of the UTC hour containing ``moment`` (aware, UTC)."""
    return datetime.fromtimestamp(int(moment.timestamp()) // 3600 * 3600, UTC)


# --- time zones and local days -----------------------------------------------------------------

Zone = tzinfo  # a ZoneInfo, or datetime.UTC
_ALMOST_AN_HOUR = HOUR - timedelta(microseconds=1)


class BadZone(ValueError):
    """Not an IANA time zone name this system knows (e.g. "Europe/Paris", "UTC")."""


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` ("America/Los_Angeles"); BadZone for anything else (an offset such
    as "+02:00" or an abbreviation such as "PST" is not a zone: it has no DST rules)."""
    if not name or not isinstance(name, str) or name != name.strip():
        raise BadZone(f"{name!r} is not an IANA time zone name, e.g. Europe/Paris or UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise BadZone(f"{name!r} is not an IANA time zone name, e.g. Europe/Paris or UTC") from exc


def day_start(day: date, tz: Zone = UTC) -> datetime:
    """The UTC instant local ``day`` starts at in ``tz``: its local midnight, floored to the UTC
    hour (module docstring). A midnight the clocks skip starts the day at the change."""
    return hour_floor(datetime.combine(day, time.min, tzinfo=tz))


def day_of(moment: datetime, tz: Zone = UTC) -> date:
    """The local day of ``tz`` that holds ``moment``, by the floored boundaries of ``day_start``:
    the local date on which ``moment``'s UTC hour ends."""
    return (hour_floor(moment) + _ALMOST_AN_HOUR).astimezone(tz).date()


@lru_cache(maxsize=4096)
def next_day_start(moment: datetime, tz: Zone = UTC) -> datetime:
    """The start of the local day after the one holding ``moment``: the end of that day (23, 24 or
    25 hours after its start). Cached: budget statuses ask it for each of a year's day buckets of
    every budget on a page (~17 k calls, ~60 ms a page uncached; bench/dashboard.py)."""
    return day_start(day_of(moment, tz) + timedelta(days=1), tz)


def day_floor(moment: datetime, tz: Zone = UTC) -> datetime:
    """The start (a UTC instant) of the local day of ``tz`` containing ``moment``."""
    return day_start(day_of(moment, tz), tz)


def day_hours(day: date, tz: Zone = UTC) -> int:
    """UTC hours in local ``day``: 24, or 23 / 25 on the days the clocks change."""
    return int((day_start(day + DAY, tz) - day_start(day, tz)) / HOUR)


def zone_label(tz: Zone) -> str:
    """The zone's IANA name, as pages and exports print it ("days in America/Los_Angeles")."""
    return getattr(tz, "key", None) or str(tz)


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


def month_start(day: date, tz: Zone = UTC) -> datetime:
    """The start (UTC instant) of the first local day of ``day``'s month in ``tz``."""
    return day_start(date(day.year, day.month, 1), tz)


def add_month_days(day: date, months: int) -> date:
    """The first day of the month ``months`` after (or before) ``day``'s."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def add_months(moment: datetime, months: int) -> datetime:
    """The first day of the month ``months`` after (or before) ``moment``'s, same time of day."""
    index = moment.year * 12 + moment.month - 1 + months
    return moment.replace(year=index // 12, month=index % 12 + 1, day=1)


def months_between(start: date, end: date) -> int:
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
    """A half-open interval [start, end) of UTC instants, how the URL named it and the zone its
    days are counted in (the organisation's)."""

    start: datetime
    end: datetime
    preset: str  # a PRESETS key, or "" for explicit dates
    tz: Zone = UTC

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    @property
    def hours(self) -> float:
        return self.seconds / 3600

    @property
    def days(self) -> tuple[date, date] | None:
        """[first day, end day) when the period is whole local days, else None (read hours)."""
        first, end = day_of(self.start, self.tz), day_of(self.end, self.tz)
        if day_start(first, self.tz) == self.start and day_start(end, self.tz) == self.end:
            return first, end
        return None

    @property
    def last_day(self) -> date:
        """The local day of the period's last instant (``to`` is inclusive; ``end`` is not)."""
        return day_of(self.end - timedelta(microseconds=1), self.tz)

    @property
    def first_day(self) -> date:
        return day_of(self.start, self.tz)

    @property
    def zone_name(self) -> str:
        return zone_label(self.tz)

    def query(self) -> dict[str, str]:
        """URL parameters that recreate this period."""
        if self.preset:
            return {"range": self.preset}
        return {"from": self.first_day.isoformat(), "to": self.last_day.isoformat()}


def period_from_query(
    params: Mapping[str, str],
    *,
    default: str = "7d",
    now: datetime | None = None,
    tz: Zone = UTC,
) -> Period:
    """``?range=24h|7d|30d|90d`` ending now, or ``?from=YYYY-MM-DD&to=YYYY-MM-DD`` (whole local
    days of ``tz``, the organisation's zone)."""
    now = now or datetime.now(UTC)
    start_s, end_s = params.get("from", ""), params.get("to", "")
    if start_s or end_s:
        try:
            first = date.fromisoformat(start_s)
            last = date.fromisoformat(end_s) if end_s else day_of(now, tz)
        except ValueError as exc:
            raise BadPeriod("dates must be written YYYY-MM-DD") from exc
        if last < first:
            raise BadPeriod("'to' must not be before 'from'")
        if (last - first) + DAY > MAX_SPAN:
            raise BadPeriod("a range may span at most 366 days")
        return Period(start=day_start(first, tz), end=day_start(last + DAY, tz), preset="", tz=tz)
    preset = params.get("range", "") or default
    if preset not in PRESETS:
        raise BadPeriod(f"range must be one of {', '.join(PRESETS)}")
    span = PRESETS[preset]
    if preset.endswith("h"):  # hours: up to the end of the current hour
        end = hour_floor(now) + HOUR
        return Period(start=end - span, end=end, preset=preset, tz=tz)
    # days: the last N local days up to the end of today (23- or 25-hour days included)
    today = day_of(now, tz)
    first = today - (span // DAY - 1) * DAY
    return Period(start=day_start(first, tz), end=day_start(today + DAY, tz), preset=preset, tz=tz)


def is_calendar_months(period: Period) -> bool:
    """Whether ``period`` is explicit whole calendar months (month over month comparisons)."""
    days = period.days
    return (
        days is not None
        and not period.preset
        and days[0].day == 1
        and days[1].day == 1
        and days[1] > days[0]
    )


def previous_period(period: Period) -> Period:
    """The period compared against: the previous calendar month(s) when the range is whole months
    (month over month), the same number of local days just before when it is whole days (a DST
    change in either keeps both on local midnights), else the equal-length period just before."""
    tz, days = period.tz, period.days
    if days is not None and is_calendar_months(period):
        months = months_between(days[0], days[1])
        start = day_start(add_month_days(days[0], -months), tz)
        return Period(start=start, end=period.start, preset="", tz=tz)
    if days is not None:
        start = day_start(days[0] - (days[1] - days[0]), tz)
        return Period(start=start, end=period.start, preset="", tz=tz)
    start = period.start - (period.end - period.start)
    return Period(start=start, end=period.start, preset="", tz=tz)


def month_period(text: str | None, *, now: datetime | None = None, tz: Zone = UTC) -> Period:
    """``?month=YYYY-MM`` as a whole local month of ``tz``; default the last full month. Bad input
    → 400."""
    now = now or datetime.now(UTC)
    if not text:
        first = add_month_days(day_of(now, tz), -1)
    else:
        try:
            year_s, month_s = text.split("-")
            if len(year_s) != 4 or len(month_s) != 2:
                raise ValueError(text)
            first = date(int(year_s), int(month_s), 1)
        except ValueError as exc:
            raise BadPeriod("month must be written YYYY-MM, e.g. 2026-03") from exc
        if day_start(first, tz) > now:
            raise BadPeriod("that month has not started yet")
        if first.year < 2000:
            raise BadPeriod("months before 2000 hold no data")
    end = day_start(add_month_days(first, 1), tz)
    return Period(start=day_start(first, tz), end=end, preset="", tz=tz)


# --- budget periods (calendar month, quarter, year of the organisation's zone) ---------------


class PeriodKind(StrEnum):
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


def _months(kind: str) -> int:
    try:
        return {PeriodKind.MONTH: 1, PeriodKind.QUARTER: 3, PeriodKind.YEAR: 12}[PeriodKind(kind)]
    except ValueError:
        raise ValueError(f"unknown period {kind!r}") from None


def period_bounds(kind: str, moment: datetime, tz: Zone = UTC) -> tuple[datetime, datetime]:
    """[start, end) as UTC instants of the calendar period of ``kind`` (in ``tz``) that contains
    ``moment``: Los Angeles' October ends at 1 November 07:00 UTC (PDT), its November at
    1 December 08:00 UTC (PST)."""
    if moment.tzinfo is None:
        raise ValueError("moment must be timezone-aware")
    day = day_of(moment, tz)
    months = _months(kind)
    first = date(day.year, (day.month - 1) // months * months + 1, 1)
    return day_start(first, tz), day_start(add_month_days(first, months), tz)


def period_label(kind: str, start: datetime, tz: Zone = UTC) -> str:
    """ "2026-05", "2026-Q2" or "2026" for the period starting at ``start`` (a UTC instant that
    starts a local day of ``tz``)."""
    first = day_of(start, tz)
    if PeriodKind(kind) is PeriodKind.MONTH:
        return f"{first:%Y-%m}"
    if PeriodKind(kind) is PeriodKind.QUARTER:
        return f"{first.year}-Q{(first.month - 1) // 3 + 1}"
    return f"{first.year}"
