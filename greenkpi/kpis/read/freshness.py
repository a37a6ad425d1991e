"""Which days of a range the daily tables may answer for, and which must be read from the hours.

The one freshness rule (docs/kpis.md, "The read layer"): a UTC day is read from HourlyRollup when

* it is only partly inside the range (the ends of a range that does not start or end at midnight),
* or it was never refreshed into the daily tables (no DailyWindow, so no daily rows: today
  before its first refresh, hours written by a backfill or a test without a window record),
* or one of its hourly windows was recomputed after the day's last refresh (``kpis.daily``'s
  ``SETTLE`` included: a late sample re-marked an hour and the refresh has not caught up yet).

Every other whole day is read from DailyTeamRollup or DailyRollup, whose rows are then exactly
what the hourly rows sum to. One query, whatever the length of the range.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import DateTimeField, Max, Value
from django.db.models.functions import TruncDate

from greenkpi.kpis.daily import SETTLE
from greenkpi.kpis.models import DailyWindow, RollupWindow

Span = tuple[datetime, datetime]  # [start, end), aware UTC
DAY = timedelta(days=1)


def midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def whole_days(start: datetime, end: datetime) -> tuple[date, date] | None:
    """[first, end) of the UTC days wholly inside [start, end), or None when there is none."""
    first = start.astimezone(UTC).date()
    if midnight(first) < start:
        first += DAY
    last = end.astimezone(UTC).date()
    return (first, last) if first < last else None


def fresh_days(*, organisation_id: int, first: date, end: date) -> tuple[set[date], set[date]]:
    """(fresh, stale): the days in [first, end) the daily tables answer for, and the refreshed days
    whose daily rows may differ from their hourly rows (module rule). Days in neither set were
    never refreshed: they have no daily rows and are read from the hours like the stale ones.

    One query: the refreshed days (DailyWindow) UNION the days with computed windows and their
    newest compute, so a page pays one round trip for its freshness whatever the range."""
    if end <= first:
        return set(), set()
    no_time = Value(None, output_field=DateTimeField())
    refreshed = DailyWindow.objects.filter(
        organisation_id=organisation_id, day__gte=first, day__lt=end
    ).values_list("day", "refreshed_at", no_time)
    computed = (
        RollupWindow.objects.filter(
            organisation_id=organisation_id,
            hour__gte=midnight(first),
            hour__lt=midnight(end),
            computed_at__isnull=False,
        )
        .annotate(d=TruncDate("hour", tzinfo=UTC))
        .values("d")
        .annotate(last=Max("computed_at"), none=no_time)
        .values_list("d", "none", "last")
    )
    refreshed_at: dict[date, datetime] = {}
    last_computed: dict[date, datetime] = {}
    for day, at, last in refreshed.order_by().union(computed.order_by(), all=True):
        if at is not None:
            refreshed_at[day] = at
        if last is not None:
            last_computed[day] = last
    stale = {
        day
        for day, at in refreshed_at.items()
        if day in last_computed and at <= last_computed[day] + SETTLE
    }
    return refreshed_at.keys() - stale, stale


def gaps(first: date, end: date, days: Iterable[date]) -> list[Span]:
    """[start, end) spans of the days in [first, end) that are not in ``days``."""
    spans: list[Span] = []
    cursor = first
    for day in sorted(d for d in set(days) if first <= d < end):
        if day > cursor:
            spans.append((midnight(cursor), midnight(day)))
        cursor = day + DAY
    if cursor < end:
        spans.append((midnight(cursor), midnight(end)))
    return spans
