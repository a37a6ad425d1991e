"""The date range of a page, read from and written to its URL (so every view can be shared)."""

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
# A year of raw windows is the most one page may ask for until pages read rollups.
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

    def query(self) -> dict[str, str]:
        """URL parameters that recreate this period."""
        if self.preset:
            return {"range": self.preset}
        last_day = (self.end - timedelta(days=1)).date()
        return {"from": self.start.date().isoformat(), "to": last_day.isoformat()}


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
    return Period(start=now - PRESETS[preset], end=now, preset=preset)
