"""Retention of raw windows: which days may go, and which hours' rollups are the record now
(docs/scaling.md). The periodic job that applies it is ``kpis.raw_storage``.

Raw windows older than RAW_RETENTION_DAYS go only when every (organisation, hour) they start in
has been rolled up, is not dirty, and its rollup rows are at the current methodology version: a
day with one such hour missing is kept (and named in the run record) until the recompute catches
up. Rollups are kept for ever. After the drop, a recompute of those hours would find no samples,
so ``hours_frozen`` tells the recompute to leave them alone (their rollups are the record now).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import F
from django.db.models.functions import TruncHour

from greenkpi.carbon.methodology import METHODOLOGY_VERSION
from greenkpi.ingest.models import Sample
from greenkpi.kpis.models import HourlyRollup, RollupWindow


def raw_horizon(now: datetime) -> datetime:
    """Raw windows starting before this UTC midnight are past retention."""
    day = (now - timedelta(days=settings.RAW_RETENTION_DAYS)).astimezone(UTC).date()
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def unrolled_hours(*, start: datetime, end: datetime) -> list[tuple[int, datetime]]:
    """(organisation, hour) windows with samples starting in [start, end) that are not rolled up
    at the current methodology version (never recomputed, dirty, or older rows)."""
    found = set(
        Sample.objects.filter(window_start__gte=start, window_start__lt=end)
        .annotate(h=TruncHour("window_start"))
        .values_list("device__host__organisation_id", "h")
        .distinct()
    )
    if not found:
        return []
    windows = RollupWindow.objects.filter(hour__gte=start, hour__lt=end)
    clean = set(
        windows.filter(version__lte=F("computed_version"), computed_version__gt=0).values_list(
            "organisation_id", "hour"
        )
    )
    outdated = set(
        HourlyRollup.objects.filter(hour__gte=start, hour__lt=end)
        .exclude(methodology_version=METHODOLOGY_VERSION)
        .values_list("organisation_id", "hour")
        .distinct()
    )
    return sorted((found - clean) | (found & outdated), key=lambda w: (w[1], w[0]))


def hours_frozen(
    *, organisation_id: int, hours: Iterable[datetime], now: datetime
) -> set[datetime]:
    """The hours past retention whose raw windows are gone: a recompute must keep their rollups."""
    horizon = raw_horizon(now)
    old = [h for h in hours if h < horizon]
    if not old:
        return set()
    kept = set(
        Sample.objects.filter(
            device__host__organisation_id=organisation_id,
            window_start__gte=min(old),
            window_start__lt=max(old) + timedelta(hours=1),
        )
        .annotate(h=TruncHour("window_start"))
        .values_list("h", flat=True)
        .distinct()
    )
    return {h for h in old if h not in kept}
