"""The door of the recompute queue: producers (ingest, carbon) mark (organisation, hour) windows
dirty here; kpis claims and recomputes them (services.windows_recompute_dirty).

This is the one place a lower app calls into kpis. The queue is kpis' own bookkeeping of each
window (RollupWindow: version, claim lease, last result), so it stays in kpis; producers only
bump a window's ``version`` in their own transaction, and never read or compute rollups.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db import connection
from django.utils import timezone

from greenkpi.kpis.models import HourlyRollup, RollupWindow
from greenkpi.lib.periods import hour_floor


def windows_mark_dirty(
    *, organisation_id: int, window_starts: Iterable[datetime], now: datetime | None = None
) -> int:
    """Mark the hours of these sample windows dirty for recompute; one statement per call.

    Called by ingest inside its transaction, so the mark commits with the samples. Bumping
    ``version`` (rather than setting a flag) tells a recompute that started earlier that its
    result is already stale. Hours are locked in sorted order so concurrent batches never deadlock.
    """
    statement = mark_dirty_statement(
        organisation_id=organisation_id, window_starts=window_starts, now=now
    )
    if statement is None:
        return 0
    sql, params, hours = statement
    with connection.cursor() as cur:
        cur.execute(sql, params)
    return hours


def mark_dirty_statement(
    *, organisation_id: int, window_starts: Iterable[datetime], now: datetime | None = None
) -> tuple[str, list[object], int] | None:
    """The upsert ``windows_mark_dirty`` runs (SQL, its parameters, the number of hours), or None
    when there is no window: for a producer that sends it in one query string with statements of
    its own (ingest: with its batch row's answer and the COMMIT, one round trip)."""
    hours = sorted({hour_floor(start) for start in set(window_starts)})
    if not hours:
        return None
    now = now or timezone.now()
    adapt = connection.ops.adapt_datetimefield_value
    table = RollupWindow._meta.db_table
    values = ", ".join(["(%s, %s, 1, 0, %s, '', 0, 0, 0, '')"] * len(hours))
    params: list[object] = []
    for hour in hours:
        params += [organisation_id, adapt(hour), adapt(now)]
    sql = (
        f"INSERT INTO {table} (organisation_id, hour, version, computed_version, marked_at, "
        f"claimed_by, rows, duration_ms, failures, last_error) VALUES {values} "
        f"ON CONFLICT (organisation_id, hour) DO UPDATE SET "
        f"version = {table}.version + 1, marked_at = excluded.marked_at"
    )
    return sql, params, len(hours)


def _mark_hours_dirty(found: Iterable[tuple[int, datetime]]) -> int:
    """Mark dirty the windows of (organisation, hour) pairs, one call per organisation."""
    by_org: dict[int, list[datetime]] = {}
    for organisation_id, hour in found:
        by_org.setdefault(organisation_id, []).append(hour)
    return sum(
        windows_mark_dirty(organisation_id=organisation_id, window_starts=hours)
        for organisation_id, hours in by_org.items()
    )


def windows_mark_dirty_for_zones(*, zones: Iterable[str], start: datetime, end: datetime) -> int:
    """After new grid data for ``zones`` in [start, end] (inclusive hours): mark dirty the windows
    whose rollups used a site in those zones, so their carbon is recomputed."""
    found = (
        HourlyRollup.objects.filter(
            site__grid_zone__in=[z.upper() for z in zones], hour__gte=start, hour__lte=end
        )
        .values_list("organisation_id", "hour")
        .distinct()
    )
    return _mark_hours_dirty(found)


def windows_mark_dirty_for_sites(*, site_ids: Iterable[int], start: datetime, end: datetime) -> int:
    """After a site's contractual instrument or tariff changed for [start, end): mark dirty the
    windows whose rollups used the site then, so their market-based figures and cost are redone."""
    found = (
        HourlyRollup.objects.filter(site_id__in=list(site_ids), hour__gte=start, hour__lt=end)
        .values_list("organisation_id", "hour")
        .distinct()
    )
    return _mark_hours_dirty(found)
