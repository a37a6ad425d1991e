"""Daily rollups: HourlyRollup summed per organisation x local day x owner x site x device kind.

A day is the organisation's (``Organisation.time_zone``, lib.periods): the UTC hours from its
local midnight to the next, 23 or 25 of them on the days the clocks change; where local midnight
is not on a whole UTC hour the boundary is floored to the hour (lib.periods.day_start). Changing
the zone resets the organisation's daily tables in the same transaction (reads fall back to the
hours at once) and ``rebuild_organisation_days`` rebuilds them (``daily_tables_reset``).

Decoupled from the hourly recompute: a day is rebuilt (replaced, never incremented) from its
hourly rows whenever one of its hourly windows was recomputed after the day's last refresh
(``stale_days``). On PostgreSQL a refresh is one INSERT ... SELECT per run of consecutive days;
elsewhere (SQLite, the fast test layer) the same sums come through the ORM, and a test holds the two
paths equal. Readers go through ``kpis.read``, which takes fresh whole days from these tables and
the rest from the hours (docs/kpis.md, "The read layer").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from celery import shared_task
from django.db import connection, transaction
from django.db.models import Count, Exists, F, FloatField, Max, Min, OuterRef, Q, Sum, Value
from django.utils import timezone

from greenkpi.carbon.methodology import IntensitySource
from greenkpi.inventory.models import Organisation
from greenkpi.kpis.models import (
    DailyHostTeam,
    DailyRollup,
    DailyTeamRollup,
    DailyWindow,
    HourlyRollup,
    RecomputeRun,
    RollupWindow,
    RunStatus,
)
from greenkpi.kpis.read.sql import LocalDay
from greenkpi.lib import periods
from greenkpi.lib.retry import retrying_task

log = logging.getLogger(__name__)

RUN_KIND = "daily"
REBUILD_KIND = "daily-rebuild"
# How long a web process keeps an organisation's zone (kpis.read.freshness.zone_of), and how long
# after a zone change its daily tables are left empty (every day read from the hours) before they
# are rebuilt: longer, so no process reads the new zone's days with the old zone's boundaries.
ZONE_TTL_S = 30.0
REBUILD_DELAY_S = ZONE_TTL_S + 10.0
# Before any collector could report: a rebuild reads every hour from here.
BEGINNING = datetime(2000, 1, 1, tzinfo=UTC)
# A window recomputed this shortly before a day's refresh may have committed after the refresh
# read its snapshot; such a day counts as stale once more (one extra, cheap refresh).
SETTLE = timedelta(seconds=120)
# Days per INSERT ... SELECT: bounds one transaction's size during a year-long backfill.
DAYS_PER_STATEMENT = 31
# First key of the advisory lock that serialises the refreshes of one organisation.
LOCK_NAMESPACE = 0x6B9D

KEY_COLUMNS = ("team_id", "model_key", "run_key", "site_id", "device_kind", "currency")
SUMMED_COLUMNS = (
    "samples",
    "covered_s",
    "energy_kwh",
    "estimated_energy_kwh",
    "facility_energy_kwh",
    "allocated_gpu_h",
    "busy_gpu_h",
    "util_known_gpu_h",
    "idle_gpu_h",
    "idle_energy_kwh",
    "sm_active_gpu_h",
    "sm_known_gpu_h",
    "operational_location_kgco2e",
    "operational_market_kgco2e",
    "embodied_kgco2e",
    "unmapped_energy_kwh",
    "upstream_kgco2e",
)
# What the carbon pages show beside the sums (dashboard/carbon/days.py): facility kWh per intensity
# source, the idle time's location-based kgCO2e (a row-wise product, so summed here, never
# re-derived from sums) and the range of methodology versions.
SOURCE_COLUMNS = {
    IntensitySource.HOURLY: "facility_kwh_hourly_intensity",
    IntensitySource.ANNUAL: "facility_kwh_annual_intensity",
    IntensitySource.DEFAULT: "facility_kwh_default_intensity",
}
CARBON_COLUMNS = (
    "idle_location_kgco2e",
    *SOURCE_COLUMNS.values(),
    "methodology_version_min",
    "methodology_version_max",
)
VALUE_COLUMNS = (
    "hours",
    "devices",
    *SUMMED_COLUMNS,
    "renewable_kwh",
    "renewable_known_kwh",
    "cost",
    *CARBON_COLUMNS,
)
DAILY_COLUMNS = ("day", *KEY_COLUMNS, *VALUE_COLUMNS)
# DailyTeamRollup: the additive columns (distinct counts are not) per day x team x site x currency.
TEAM_KEY_COLUMNS = ("team_id", "site_id", "currency")
TEAM_VALUE_COLUMNS = (
    *SUMMED_COLUMNS,
    "renewable_kwh",
    "renewable_known_kwh",
    "cost",
    *CARBON_COLUMNS,
)


def zone_name(organisation_id: int) -> str:
    """The organisation's IANA zone (what its days are)."""
    return str(
        Organisation.objects.filter(pk=organisation_id).values_list("time_zone", flat=True).get()
    )


def day_start(day: date, zone: str = "UTC") -> datetime:
    """The UTC instant local ``day`` of ``zone`` starts at (lib.periods.day_start)."""
    return periods.day_start(day, periods.zone(zone))


def _runs(days: Iterable[date]) -> list[tuple[date, date]]:
    """Sorted days as [first, last] runs of consecutive days, each at most DAYS_PER_STATEMENT long."""
    runs: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if runs and day - runs[-1][1] == timedelta(days=1):
            first = runs[-1][0]
            if (day - first).days < DAYS_PER_STATEMENT:
                runs[-1] = (first, day)
                continue
        runs.append((day, day))
    return runs


def _insert_pg(organisation_id: int, first: date, last: date, zone: str) -> int:
    daily, hourly = DailyRollup._meta.db_table, HourlyRollup._meta.db_table
    hosts = DailyHostTeam._meta.db_table
    sums = ", ".join(f"SUM({c})" for c in SUMMED_COLUMNS)
    by_source = ", ".join(
        f"COALESCE(SUM(facility_energy_kwh) FILTER (WHERE intensity_source = '{source}'), 0)"
        for source in SOURCE_COLUMNS
    )
    # The local day of an hour: lib.periods.day_of (kpis.read.sql.LocalDay), the zone a parameter.
    local_day = "((hour + interval '3599 seconds') AT TIME ZONE %s)::date"
    params = [
        zone,
        organisation_id,
        day_start(first, zone),
        day_start(last + timedelta(days=1), zone),
    ]
    with connection.cursor() as cur:
        cur.execute(
            f"""
INSERT INTO {daily} (organisation_id, day, {", ".join(KEY_COLUMNS)}, {", ".join(VALUE_COLUMNS)})
SELECT organisation_id, {local_day}, {", ".join(KEY_COLUMNS)},
       COUNT(DISTINCT hour), COUNT(DISTINCT device_id), {sums},
       COALESCE(SUM(renewable_share * facility_energy_kwh), 0),
       COALESCE(SUM(CASE WHEN renewable_share IS NOT NULL THEN facility_energy_kwh END), 0),
       SUM(cost),
       COALESCE(SUM(idle_energy_kwh * pue * intensity_g_per_kwh), 0) / 1000.0, {by_source},
       MIN(methodology_version), MAX(methodology_version)
FROM {hourly}
WHERE organisation_id = %s AND hour >= %s AND hour < %s
GROUP BY organisation_id, 2, {", ".join(KEY_COLUMNS)}""",
            params,
        )
        rows = cur.rowcount
        cur.execute(
            f"""
INSERT INTO {hosts} (organisation_id, day, host_id, team_id)
SELECT DISTINCT organisation_id, {local_day}, host_id, team_id
FROM {hourly}
WHERE organisation_id = %s AND hour >= %s AND hour < %s AND team_id IS NOT NULL""",
            params,
        )
    return rows


def _insert_orm(organisation_id: int, first: date, last: date, zone: str) -> int:
    hourly = HourlyRollup.objects.filter(
        organisation_id=organisation_id,
        hour__gte=day_start(first, zone),
        hour__lt=day_start(last + timedelta(days=1), zone),
    ).annotate(d=LocalDay("hour", Value(zone)))
    known = Q(renewable_share__isnull=False)
    # Annotations get an "s_" prefix: a name equal to a model field is refused by the ORM.
    groups = (
        hourly.values("d", *KEY_COLUMNS)
        .annotate(
            s_hours=Count("hour", distinct=True),
            s_devices=Count("device_id", distinct=True),
            **{f"s_{c}": Sum(c) for c in SUMMED_COLUMNS},
            s_renewable_kwh=Sum(
                F("renewable_share") * F("facility_energy_kwh"), filter=known, default=0.0
            ),
            s_renewable_known_kwh=Sum("facility_energy_kwh", filter=known, default=0.0),
            s_cost=Sum("cost"),
            s_idle_location_kgco2e=Sum(
                F("idle_energy_kwh") * F("pue") * F("intensity_g_per_kwh"),
                output_field=FloatField(),
                default=0.0,
            )
            / 1000.0,
            **{
                f"s_{column}": Sum(
                    "facility_energy_kwh", filter=Q(intensity_source=source), default=0.0
                )
                for source, column in SOURCE_COLUMNS.items()
            },
            s_methodology_version_min=Min("methodology_version"),
            s_methodology_version_max=Max("methodology_version"),
        )
        .order_by()
    )
    rows = [
        DailyRollup(
            organisation_id=organisation_id,
            day=g["d"],
            **{c: g[c] for c in KEY_COLUMNS},
            **{c: g[f"s_{c}"] for c in VALUE_COLUMNS},
        )
        for g in groups
    ]
    DailyRollup.objects.bulk_create(rows, batch_size=2000)
    pairs = hourly.filter(team_id__isnull=False).values_list("d", "host_id", "team_id").distinct()
    DailyHostTeam.objects.bulk_create(
        [
            DailyHostTeam(organisation_id=organisation_id, day=d, host_id=h, team_id=t)
            for d, h, t in pairs.order_by()
        ],
        batch_size=2000,
    )
    return len(rows)


def _insert_team_days(organisation_id: int, first: date, last: date) -> None:
    """DailyTeamRollup of the days from the DailyRollup rows just written (portable SQL: dates
    are passed as ISO text, which both PostgreSQL and SQLite's stored dates compare with)."""
    team, daily = DailyTeamRollup._meta.db_table, DailyRollup._meta.db_table
    sums = ", ".join(
        f"MIN({c})" if c.endswith("_min") else f"MAX({c})" if c.endswith("_max") else f"SUM({c})"
        for c in TEAM_VALUE_COLUMNS
    )
    keys = ", ".join(TEAM_KEY_COLUMNS)
    with connection.cursor() as cur:
        cur.execute(
            f"""
INSERT INTO {team} (organisation_id, day, {keys}, {", ".join(TEAM_VALUE_COLUMNS)})
SELECT organisation_id, day, {keys}, {sums}
FROM {daily}
WHERE organisation_id = %s AND day >= %s AND day <= %s
GROUP BY organisation_id, day, {keys}""",
            [organisation_id, first.isoformat(), last.isoformat()],
        )


def _lock_organisation(organisation_id: int) -> None:
    """Serialise refreshes of one organisation until the transaction ends. Without it, two
    overlapping refreshes of a day (the beat and a backfill) would each delete only the rows
    committed before they started and both insert: the day counted twice. SQLite serialises
    writing transactions by itself."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, organisation_id])


def days_refresh(*, organisation_id: int, days: Iterable[date], use_sql: bool | None = None) -> int:
    """Rebuild the DailyRollup rows of these (organisation, local day) units from HourlyRollup.

    Each run of consecutive days is replaced in one transaction (delete + insert), and the days'
    DailyWindow records when: the refresh time is taken before reading, so a window recomputed
    while we read stays newer than it and keeps its day stale. ``use_sql`` picks the path
    (default: INSERT ... SELECT on PostgreSQL, ORM elsewhere). Returns the rows written.
    """
    if use_sql is None:
        use_sql = connection.vendor == "postgresql"
    insert = _insert_pg if use_sql else _insert_orm
    total = 0
    for first, last in _runs(days):
        refreshed_at = timezone.now()
        t0 = time.monotonic()
        with transaction.atomic():
            _lock_organisation(organisation_id)
            # Read under the lock: a zone change (daily_tables_reset) takes it too, so a refresh
            # never writes the old zone's days after the reset committed.
            zone = zone_name(organisation_id)
            span = {"organisation_id": organisation_id, "day__gte": first, "day__lte": last}
            DailyRollup.objects.filter(**span).delete()
            DailyHostTeam.objects.filter(**span).delete()
            DailyTeamRollup.objects.filter(**span).delete()
            rows = insert(organisation_id, first, last, zone)
            _insert_team_days(organisation_id, first, last)
            # Rows per day, for the admin (one GROUP BY over what was just written).
            per_day = dict(
                DailyRollup.objects.filter(**span)
                .values("day")
                .annotate(n=Count("pk"))
                .values_list("day", "n")
                .order_by()
            )
            count = (last - first).days + 1
            elapsed_ms = int((time.monotonic() - t0) * 1000)
            DailyWindow.objects.bulk_create(
                [
                    DailyWindow(
                        organisation_id=organisation_id,
                        day=day,
                        refreshed_at=refreshed_at,
                        rows=per_day.get(day, 0),
                        duration_ms=elapsed_ms // count,
                    )
                    for day in (first + timedelta(days=i) for i in range(count))
                ],
                update_conflicts=True,
                unique_fields=["organisation", "day"],
                update_fields=["refreshed_at", "rows", "duration_ms"],
            )
        total += rows
    return total


def rollup_days(*, organisation_id: int, start: datetime, end: datetime) -> list[date]:
    """Local days of the hours in [start, end) that have hourly rows, and the days in
    [start's day, end's day) with daily rows (a backfill refreshes these)."""
    zone = zone_name(organisation_id)
    tz = periods.zone(zone)
    hourly = (
        HourlyRollup.objects.filter(organisation_id=organisation_id, hour__gte=start, hour__lt=end)
        .annotate(d=LocalDay("hour", Value(zone)))
        .values_list("d", flat=True)
        .distinct()
        .order_by()
    )
    daily = (
        DailyRollup.objects.filter(
            organisation_id=organisation_id,
            day__gte=periods.day_of(start, tz),
            day__lt=periods.day_of(end, tz),
        )
        .values_list("day", flat=True)
        .distinct()
        .order_by()
    )
    return sorted(set(hourly) | set(daily))


def stale_days(*, limit: int = 400) -> list[tuple[int, date]]:
    """(organisation, day) units with an hourly window recomputed after the day's last refresh
    (or never refreshed), oldest first. Days are each organisation's local days."""
    day = LocalDay("hour", F("organisation__time_zone"))
    fresh = DailyWindow.objects.filter(
        organisation_id=OuterRef("organisation_id"),
        day=OuterRef("d"),
        refreshed_at__gt=OuterRef("computed_at") + SETTLE,
    )
    # An organisation whose zone just changed waits for its rebuild (REBUILD_DELAY_S).
    changed = timezone.now() - timedelta(seconds=REBUILD_DELAY_S)
    found = (
        RollupWindow.objects.filter(computed_at__isnull=False)
        .exclude(organisation__time_zone_changed_at__gt=changed)
        .annotate(d=day)
        .filter(~Exists(fresh))
        .values_list("organisation_id", "d")
        .distinct()
        .order_by("d", "organisation_id")
    )
    return list(found[:limit])


def days_refresh_stale(*, limit: int = 400, kind: str = RUN_KIND) -> RecomputeRun:
    """The periodic job (and the end of a backfill): refresh every stale day, recording the run."""
    run = RecomputeRun.objects.create(kind=kind, started_at=timezone.now())
    done = rows = 0
    try:
        by_org: dict[int, list[date]] = {}
        for organisation_id, day in stale_days(limit=limit):
            by_org.setdefault(organisation_id, []).append(day)
        for organisation_id, days in by_org.items():
            rows += days_refresh(organisation_id=organisation_id, days=days)
            done += len(days)
        run.status = RunStatus.OK
    except Exception as exc:
        log.exception("daily rollup refresh failed")
        run.status, run.error = RunStatus.FAILED, repr(exc)[:5000]
        raise
    finally:
        run.finished_at = timezone.now()
        run.duration_s = (run.finished_at - run.started_at).total_seconds()
        run.windows_done, run.rows_written = done, rows
        run.save()
    return run


@shared_task(**retrying_task())
def refresh_stale_days(limit: int = 400) -> int:
    """Periodic: rebuild the daily rollups of stale days (idempotent: a day is replaced whole)."""
    return days_refresh_stale(limit=limit).pk


# --- a change of the organisation's zone ------------------------------------------------------


def daily_tables_reset(*, organisation_id: int) -> None:
    """Drop the organisation's daily rows and their refresh records: they are days of the old zone.

    Called in the transaction that changes ``Organisation.time_zone`` (kpis.signals), under the
    refresh lock, so no refresh of the old zone commits after it. From then on every day with
    hourly rows is "never refreshed", so kpis.read answers from the hourly rows (the same sums,
    slower) until ``rebuild_organisation_days`` has rebuilt the days in the new zone; the periodic
    refresh would also pick them up, 400 days a run."""
    with transaction.atomic():
        _lock_organisation(organisation_id)
        for model in (DailyRollup, DailyTeamRollup, DailyHostTeam, DailyWindow):
            model.objects.filter(organisation_id=organisation_id).delete()


def organisation_days_rebuild(*, organisation_id: int) -> RecomputeRun:
    """Rebuild every local day of the organisation that has hourly rows (after a zone change)."""
    run = RecomputeRun.objects.create(kind=REBUILD_KIND, started_at=timezone.now())
    days: list[date] = []
    rows = 0
    try:
        end = timezone.now() + timedelta(days=2)
        days = rollup_days(organisation_id=organisation_id, start=BEGINNING, end=end)
        rows = days_refresh(organisation_id=organisation_id, days=days)
        run.status = RunStatus.OK
    except Exception as exc:
        log.exception("daily rollup rebuild of organisation %s failed", organisation_id)
        run.status, run.error = RunStatus.FAILED, repr(exc)[:5000]
        raise
    finally:
        run.finished_at = timezone.now()
        run.duration_s = (run.finished_at - run.started_at).total_seconds()
        run.windows_done, run.rows_written = len(days), rows
        run.save()
    return run


def days_pending(*, organisation_id: int) -> int:
    """Local days of the organisation with hourly rows and no daily rows yet (a rebuild under way
    while this is above zero after a zone change)."""
    fresh = DailyWindow.objects.filter(organisation_id=organisation_id, day=OuterRef("d"))
    return (
        RollupWindow.objects.filter(organisation_id=organisation_id, computed_at__isnull=False)
        .annotate(d=LocalDay("hour", F("organisation__time_zone")))
        .filter(~Exists(fresh))
        .values("d")
        .distinct()
        .order_by()
        .count()
    )


@shared_task(**retrying_task())
def rebuild_organisation_days(organisation_id: int) -> int:
    """After a zone change: rebuild the organisation's daily tables (idempotent: days replaced)."""
    return organisation_days_rebuild(organisation_id=organisation_id).pk
