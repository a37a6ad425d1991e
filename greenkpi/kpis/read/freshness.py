"""Which days of a range the daily tables may answer for, and which must be read from the hours.

Days are the organisation's local days (``Organisation.time_zone``; lib.periods.day_start: the
UTC hours from local midnight to the next, 23 or 25 on DST days, boundaries floored to the UTC hour
for offsets that are not whole hours), as the daily tables hold them.

The one freshness rule (docs/kpis.md, "The read layer"): a local day is read from HourlyRollup when

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

import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

from django.db.models import DateTimeField, Max, Value

from greenkpi.inventory.models import Organisation
from greenkpi.kpis.daily import SETTLE, ZONE_TTL_S
from greenkpi.kpis.models import DailyWindow, RollupWindow
from greenkpi.kpis.read.sql import LocalDay
from greenkpi.lib import periods
from greenkpi.lib.replica import read_alias

Span = tuple[datetime, datetime]  # [start, end), aware UTC
DAY = timedelta(days=1)


def midnight(day: date, tz: tzinfo = UTC) -> datetime:
    """The UTC instant local ``day`` starts at (lib.periods.day_start)."""
    return periods.day_start(day, tz)


def whole_days(start: datetime, end: datetime, tz: tzinfo = UTC) -> tuple[date, date] | None:
    """[first, end) of the local days wholly inside [start, end), or None when there is none."""
    first = periods.day_of(start, tz)
    if midnight(first, tz) < start:
        first += DAY
    last = periods.day_of(end, tz)
    if midnight(last, tz) > end:
        last -= DAY
    return (first, last) if first < last else None


@dataclass(frozen=True)
class DayStates:
    """What the freshness query says of the local days [first, end): the ``stale`` ones (module
    rule) and each refresh record's time (``refreshed``, days the daily tables were written for)."""

    first: date
    end: date
    stale: frozenset[date]
    refreshed: Mapping[date, datetime]

    def within(self, first: date, end: date) -> DayStates:
        return DayStates(
            first,
            end,
            frozenset(d for d in self.stale if first <= d < end),
            {d: at for d, at in self.refreshed.items() if first <= d < end},
        )

    @property
    def version(self) -> str:
        """Changes whenever the daily rows of these days may have (kpis/read/cache.py): each
        refresh stamps its days with a newer time, a zone change deletes the records."""
        newest = max(self.refreshed.values(), default=None)
        return f"{len(self.refreshed)}:{newest.isoformat() if newest else ''}"


_BATCH: ContextVar[dict[tuple[int, date, date], DayStates] | None] = ContextVar(
    "kpis_read_freshness_batch", default=None
)
# The organisations' zones, per process: read once, kept ZONE_TTL_S. A save of the organisation in
# this process replaces its entry at once (kpis.signals); another process sees a new zone within
# ZONE_TTL_S, and a zone change reads every day from the hourly rows until the daily tables are
# rebuilt, ZONE_TTL_S later (kpis.daily.REBUILD_DELAY_S;
# the periodic refresh leaves the organisation alone until then): no process can read the new zone's
# daily rows with the old zone's day boundaries.
_ZONES: dict[int, tuple[float, tzinfo]] = {}


def zone_of(organisation_id: int) -> tzinfo:
    """The organisation's zone (one primary-key query at most every ZONE_TTL_S per process)."""
    now = time.monotonic()
    found = _ZONES.get(organisation_id)
    if found is not None and now - found[0] < ZONE_TTL_S:
        return found[1]
    name = (
        Organisation.objects.using(read_alias())
        .filter(pk=organisation_id)
        .values_list("time_zone", flat=True)
        .first()
    )
    return remember_zone(organisation_id, name or "UTC")


def remember_zone(organisation_id: int, name: str) -> tzinfo:
    tz = periods.zone(name)
    _ZONES[organisation_id] = (time.monotonic(), tz)
    return tz


def forget_zone(organisation_id: int) -> None:
    _ZONES.pop(organisation_id, None)


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
    return set(day_states(organisation_id=organisation_id, first=first, end=end).stale)


def day_states(*, organisation_id: int, first: date, end: date) -> DayStates:
    """The stale days and refresh records of [first, end): one query, or none inside a
    ``batch()`` that already read a range holding this one."""
    memo = _BATCH.get()
    if memo is None:
        return _day_states(organisation_id=organisation_id, first=first, end=end)
    for (org, a, b), states in memo.items():  # a range already read that holds this one
        if org == organisation_id and a <= first and end <= b:
            return states.within(first, end)
    found = _day_states(organisation_id=organisation_id, first=first, end=end)
    memo[(organisation_id, first, end)] = found
    return found


def _day_states(*, organisation_id: int, first: date, end: date) -> DayStates:
    """The days in [first, end) the daily tables may not answer for (module rule), and the days'
    refresh records.

    One query of ~2 rows a day: the days with computed windows and their newest compute UNION ALL
    the days' refreshes. (A correlated probe of DailyWindow per day made Django group by the hour,
    not the day: 24x the rows.)"""
    if end <= first:
        return DayStates(first, end, frozenset(), {})
    tz = zone_of(organisation_id)
    no_time = Value(None, output_field=DateTimeField())
    computed = (
        RollupWindow.objects.using(read_alias())
        .filter(
            organisation_id=organisation_id,
            hour__gte=midnight(first, tz),
            hour__lt=midnight(end, tz),
            computed_at__isnull=False,
        )
        .annotate(d=LocalDay("hour", Value(periods.zone_label(tz))))
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
    stale = frozenset(
        day
        for day, last in last_computed.items()
        if day not in refreshed_at or refreshed_at[day] <= last + SETTLE
    )
    return DayStates(first, end, stale, refreshed_at)


def day_spans(days: Iterable[date], tz: tzinfo = UTC) -> list[Span]:
    """Sorted local days as [start, end) spans of consecutive days."""
    spans: list[Span] = []
    for day in sorted(set(days)):
        moment, end = midnight(day, tz), midnight(day + DAY, tz)
        if spans and spans[-1][1] == moment:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((moment, end))
    return spans
