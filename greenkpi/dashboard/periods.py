"""The date range of a page, read from and written to its URL (so every view can be shared).

Periods are whole UTC hours (``24h``: the last 24 hours including the current one) or whole UTC
days (``7d``/``30d``/``90d``: the last N days including today; explicit dates), so every page reads
complete rollup rows: HourlyRollup for hours, DailyRollup for days (docs/dashboard.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.http import QueryDict

PRESETS: dict[str, timedelta] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
}
# A year is the most one page may ask for.
MAX_SPAN = timedelta(days=366)
_MIDNIGHT = time.min.replace(tzinfo=UTC)


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
    params: QueryDict | dict[str, str], *, default: str = "7d", now: datetime | None = None
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
        start = datetime.combine(first, time.min, tzinfo=UTC)
        end = datetime.combine(last + timedelta(days=1), time.min, tzinfo=UTC)
        if end <= start:
            raise BadPeriod("'to' must not be before 'from'")
        if end - start > MAX_SPAN:
            raise BadPeriod("a range may span at most 366 days")
        return Period(start=start, end=end, preset="")
    preset = params.get("range", "") or default
    if preset not in PRESETS:
        raise BadPeriod(f"range must be one of {', '.join(PRESETS)}")
    span = PRESETS[preset]
    if preset.endswith("h"):  # hours: up to the end of the current hour
        end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    else:  # days: up to the end of today (UTC)
        end = datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), time.min, tzinfo=UTC)
    return Period(start=end - span, end=end, preset=preset)
