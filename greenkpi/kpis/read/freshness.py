"""Which days of a range the daily tables may answer for, and which must be read from the hours.

The one freshness rule (docs/kpis.md, "The read layer"): a UTC day is read from HourlyRollup when

* it is only partly inside the range (the ends of a range that does not start or end at midnight),
* or one of its hourly windows was computed after the day's last refresh, or the day was never
  refreshed (``kpis.daily``'s rule for what its refresh job picks up, ``SETTLE`` included: a late
  sample re-marked an hour and the refresh has not caught up yet; today before its first refresh).

Every other whole day is read from DailyTeamRollup or DailyRollup, whose rows are then exactly
what the hourly rows sum to. A day without computed windows has no hourly rows (only a window's
recompute writes them), so whatever daily rows it has are all there is. One query, whatever the
length of the range.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import DateTimeField, Max, Value
from django.db.models.functions import TruncDate

from greenkpi.kpis.daily import SETTLE
from greenkpi.kpis.models import DailyWindow, RollupWindow
from greenkpi.lib.replica import read_alias

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


_BATCH: ContextVar[dict[tuple[int, date, date], set[date]] | None] = ContextVar(
    "kpis_read_freshness_batch", default=None
)


@contextmanager
def batch() -> Iterator[None]:
    """Several reads answered by one freshness query: inside the block the stale days of an
    (organisation, first, end) are read once and serve every range inside it too (a budget batch
    reads teams, the organisation and models over the same window; a dashboard request is one
    block). The rule is the same; only its query is shared. Nested blocks share the outer one."""
    if _BATCH.get() is not None:
        yield
        return
    token = _BATCH.set({})
    try:
        yield
    finally:
        _BATCH.reset(token)


def stale_days(*, organisation_id: int, first: date, end: date) -> set[date]:
    """The days in [first, end) the daily tables may not answer for (module rule)."""
    memo = _BATCH.get()
    if memo is None:
        return _stale_days(organisation_id=organisation_id, first=first, end=end)
    for (org, a, b), days in memo.items():  # a range already read that holds this one
        if org == organisation_id and a <= first and end <= b:
            return {d for d in days if first <= d < end}
    found = _stale_days(organisation_id=organisation_id, first=first, end=end)
    memo[(organisation_id, first, end)] = found
    return found


def _stale_days(*, organisation_id: int, first: date, end: date) -> set[date]:
    """The days in [first, end) the daily tables may not answer for (module rule).

    One query of ~2 rows a day: the days with computed windows and their newest compute UNION ALL
    the days' refreshes. (A correlated probe of DailyWindow per day made Django group by the hour,
    not the day: 24x the rows.)"""
    if end <= first:
        return set()
    no_time = Value(None, output_field=DateTimeField())
    computed = (
        RollupWindow.objects.using(read_alias())
        .filter(
            organisation_id=organisation_id,
            hour__gte=midnight(first),
            hour__lt=midnight(end),
            computed_at__isnull=False,
        )
        .annotate(d=TruncDate("hour", tzinfo=UTC))
        .values("d")
        .annotate(last=Max("computed_at"), none=no_time)
        .values_list("d", "last", "none")
        .order_by()
    )
    refreshed = (
        DailyWindow.objects.using(read_alias())
        .filter(organisation_id=organisation_id, day__gte=first, day__lt=end)
        .values_list("day", no_time, "refreshed_at")
        .order_by()  # the model's ordering would join the organisation for its name
    )
    last_computed: dict[date, datetime] = {}
    refreshed_at: dict[date, datetime] = {}
    for day, last, at in computed.union(refreshed, all=True):
        if last is not None:
            last_computed[day] = last
        if at is not None:
            refreshed_at[day] = at
    return {
        day
        for day, last in last_computed.items()
        if day not in refreshed_at or refreshed_at[day] <= last + SETTLE
    }


def day_spans(days: Iterable[date]) -> list[Span]:
    """Sorted days as [start, end) spans of consecutive days."""
    spans: list[Span] = []
    for day in sorted(set(days)):
        moment = midnight(day)
        if spans and spans[-1][1] == moment:
            spans[-1] = (spans[-1][0], moment + DAY)
        else:
            spans.append((moment, moment + DAY))
    return spans
