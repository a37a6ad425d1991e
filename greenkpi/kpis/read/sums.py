"""Sums of rollup columns for one organisation, some keys and a range [start, end): the one read
under every page, chart, CSV, report, budget and alert (docs/kpis.md, "The read layer").

``plan`` is the only function that decides which table answers: whole days the daily tables may
answer for (``freshness``) come from DailyTeamRollup when the keys and filters are only team,
site and currency (~20x fewer rows), else from DailyRollup; partial and stale days, and keys the
daily tables do not carry (host, device, scheduler job), come from HourlyRollup, summed to the
same columns; so do the columns only hourly rows answer (HOURLY_COLUMNS: a job's idle allocation,
a group's count of hours with rows).
``sums`` runs the plan (one freshness query, then one GROUP BY per table used) and returns a
frame: the keys, the time bucket when asked for, and the summed columns (units in their names).
No view logic here: callers rename, pivot and format.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from functools import reduce
from operator import or_
from typing import Literal

import pandas as pd
from django.db.models import (
    Aggregate,
    Count,
    ExpressionWrapper,
    F,
    FloatField,
    IntegerField,
    Max,
    Min,
    Q,
    QuerySet,
    Sum,
    Value,
)

from greenkpi.kpis.daily import SOURCE_COLUMNS, SUMMED_COLUMNS
from greenkpi.kpis.models import DailyRollup, DailySums, DailyTeamRollup, HourlyRollup
from greenkpi.kpis.read import cache, freshness
from greenkpi.kpis.read.freshness import Span
from greenkpi.kpis.read.sql import EpochDays, EpochSeconds, LocalDay, fetch_rows
from greenkpi.lib.periods import day_hours, day_start, naive_utc, zone_label
from greenkpi.lib.replica import read_alias

# Keys a read may group or filter by, and the tables that carry them.
TEAM_KEYS = frozenset({"team_id", "site_id", "currency"})
DAILY_KEYS = TEAM_KEYS | {"model_key", "run_key", "device_kind"}
# A device's and host's labels, joined to group by them with the device (a run's page lists its
# devices by name in the same query).
LABEL_KEYS = frozenset({"device__uuid", "device__kind", "device__model_name", "host__hostname"})
HOURLY_KEYS = DAILY_KEYS | {"host_id", "device_id", "scheduler_job_id"} | LABEL_KEYS
# Summed columns every table answers for (sums of row-wise products included: renewable kWh, idle
# kgCO2e, facility kWh per intensity source), and the range of methodology versions.
SUMMABLE = (
    *SUMMED_COLUMNS,
    "renewable_kwh",
    "renewable_known_kwh",
    "cost",
    "idle_location_kgco2e",
    *SOURCE_COLUMNS.values(),
)
# The start of "every rollup" (whole-life totals of a run): before any collector could report.
BEGINNING = datetime(2000, 1, 1, tzinfo=UTC)
VERSIONS = ("methodology_version_min", "methodology_version_max")
# What only the hourly rows answer (a read asking for one reads HourlyRollup only): the scheduler
# jobs' allocated-but-idle GPU time, its energy and location-based kgCO2e; ``hours_with_rows``, the number
# of distinct hours with rows in the group (a host's completeness); its first and last hour.
HOURLY_COLUMNS = (
    "allocated_idle_gpu_h",
    "allocated_idle_energy_kwh",
    "allocated_idle_location_kgco2e",
    "hours_with_rows",
    "first_hour_s",  # the group's first and last hour, as epoch seconds
    "last_hour_s",
)
COLUMNS = frozenset((*SUMMABLE, *VERSIONS, *HOURLY_COLUMNS))

# The time bucket of the frame: none (sums over the range), the organisation's local day (its date
# at midnight), the UTC hour (read from HourlyRollup only), or "native" (days from the daily
# tables, as the UTC instant the local day starts and ``bucket_h`` its 23, 24 or 25 hours; hours
# from HourlyRollup with ``bucket_h`` 1: what the budget forecasts need).
Grain = Literal["day", "hour", "native"] | None
# Each fetched row's last value: which part of a read it belongs to (only the daily part is cached).
DAILY_PART, HOURLY_PART = 0, 1
Where = Mapping[str, Collection[object]]  # key -> allowed values (None in them: IS NULL)


class BadRead(ValueError):
    """A key or column the rollups do not carry (a programming error, never user input)."""


@dataclass(frozen=True)
class Plan:
    """What one read reads: ``table`` for the whole days [days[0], days[1]) but ``skip``, and
    HourlyRollup for ``spans``."""

    table: type[DailySums] | None
    days: tuple[date, date] | None
    skip: frozenset[date]
    spans: tuple[Span, ...]
    version: str = ""  # of the days' daily rows (freshness.DayStates.version; kpis/read/cache.py)


def plan(
    *,
    organisation_id: int,
    start: datetime,
    end: datetime,
    keys: Collection[str],
    grain: Grain,
    columns: Collection[str] = (),
) -> Plan:
    """THE choice between DailyTeamRollup, DailyRollup and HourlyRollup (module docstring)."""
    if start.tzinfo is None or end.tzinfo is None:
        raise BadRead("start and end must be aware datetimes")
    unknown = set(keys) - HOURLY_KEYS
    if unknown:
        raise BadRead(f"rollups have no key {sorted(unknown)}")
    tz = freshness.zone_of(organisation_id)
    days = freshness.whole_days(start, end, tz)
    if end <= start:
        return Plan(None, None, frozenset(), ())
    hourly_only = bool(set(columns) & set(HOURLY_COLUMNS))
    if days is None or grain == "hour" or not set(keys) <= DAILY_KEYS or hourly_only:
        return Plan(None, None, frozenset(), ((start, end),))
    states = freshness.day_states(organisation_id=organisation_id, first=days[0], end=days[1])
    stale = states.stale
    ends = [(start, freshness.midnight(days[0], tz)), (freshness.midnight(days[1], tz), end)]
    spans = _merged([s for s in ends if s[0] < s[1]] + freshness.day_spans(stale, tz))
    if len(stale) == (days[1] - days[0]).days:  # nothing left for the daily tables
        return Plan(None, None, frozenset(), tuple(spans))
    table = DailyTeamRollup if set(keys) <= TEAM_KEYS else DailyRollup
    return Plan(table, days, frozenset(stale), tuple(spans), states.version)


def _merged(spans: list[Span]) -> list[Span]:
    out: list[Span] = []
    for a, b in sorted(spans):
        if out and out[-1][1] >= a:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _where_q(where: Where) -> Q:
    q = Q()
    for key, values in where.items():
        wanted = [v for v in values if v is not None]
        part = Q(**{f"{key}__in": sorted(wanted, key=str)})
        if len(wanted) < len(list(values)):
            part |= Q(**{f"{key}__isnull": True})
        q &= part
    return q


def _daily_aggregates(columns: Sequence[str]) -> dict[str, Aggregate]:
    out: dict[str, Aggregate] = {}
    for c in columns:
        if c == "methodology_version_min":
            out[f"s_{c}"] = Min(c)
        elif c == "methodology_version_max":
            out[f"s_{c}"] = Max(c)
        else:
            out[f"s_{c}"] = Sum(c)
    return out


def _hourly_aggregates(columns: Sequence[str]) -> dict[str, Aggregate]:
    """The same sums kpis.daily writes, from the hourly rows."""
    known = Q(renewable_share__isnull=False)
    by_source = {column: source for source, column in SOURCE_COLUMNS.items()}
    out: dict[str, Aggregate] = {}
    for c in columns:
        name = f"s_{c}"  # "s_": an annotation named like a column would shadow it
        if c == "renewable_kwh":
            out[name] = Sum(
                F("facility_energy_kwh") * F("renewable_share"),
                output_field=FloatField(),
                default=0.0,
            )
        elif c == "renewable_known_kwh":
            out[name] = Sum("facility_energy_kwh", filter=known, default=0.0)
        elif c == "idle_location_kgco2e":  # g, divided by 1000 after summing as kpis.daily does
            grams = Sum(
                F("idle_energy_kwh") * F("pue") * F("intensity_g_per_kwh"),
                output_field=FloatField(),
                default=0.0,
            )
            out[name] = ExpressionWrapper(grams / 1000.0, output_field=FloatField())
        elif c in by_source:
            out[name] = Sum(
                "facility_energy_kwh", filter=Q(intensity_source=by_source[c]), default=0.0
            )
        elif c == "allocated_idle_location_kgco2e":  # g -> kg after summing, as idle's
            grams = Sum(
                F("allocated_idle_energy_kwh") * F("pue") * F("intensity_g_per_kwh"),
                output_field=FloatField(),
                default=0.0,
            )
            out[name] = ExpressionWrapper(grams / 1000.0, output_field=FloatField())
        elif c == "hours_with_rows":
            out[name] = Count("hour", distinct=True)
        elif c == "first_hour_s":
            out[name] = Min(EpochSeconds("hour"))
        elif c == "last_hour_s":
            out[name] = Max(EpochSeconds("hour"))
        elif c == "methodology_version_min":
            out[name] = Min("methodology_version")
        elif c == "methodology_version_max":
            out[name] = Max("methodology_version")
        else:
            out[name] = Sum(c)
    return out


def sums(
    *,
    organisation_id: int,
    start: datetime,
    end: datetime,
    columns: Sequence[str],
    by: Sequence[str] = (),
    where: Where | None = None,
    grain: Grain = None,
) -> pd.DataFrame:
    """Columns summed per ``by`` (and per time bucket for a ``grain``) over the organisation's
    rollups in [start, end), rows filtered by ``where``.

    Frame columns: ``bucket_utc`` (naive datetime: the local date for "day", else UTC; with
    ``bucket_h`` for "native") when a grain
    is asked for, then ``by``, then ``columns`` as float64 (``cost`` keeps NaN where nothing was
    priced; versions are text). One row per group, groups with no rows absent."""
    where = dict(where or {})
    missing = [c for c in columns if c not in COLUMNS]
    if missing:
        raise BadRead(f"rollups have no summed column {missing}")
    keys = list(dict.fromkeys([*by, *where]))
    the_plan = plan(
        organisation_id=organisation_id,
        start=start,
        end=end,
        keys=keys,
        grain=grain,
        columns=columns,
    )
    time_columns = ["bucket_utc", "bucket_h"] if grain == "native" else ["bucket_utc"]
    out_columns = [*(time_columns if grain else []), *by, *columns]
    filters = _where_q(where)
    # Every part groups by the organisation (one value: it stands for "no key" too), its bucket
    # (epoch days, or epoch seconds for hours) and ``by``; ``bucket_h`` says which unit.
    group = ["organisation_id", *(["bucket"] if grain else []), *by]
    db = read_alias()  # the replica for a web request's reads (lib/replica.py), else default
    daily: QuerySet | None = None
    hourly: QuerySet | None = None
    if the_plan.table is not None and the_plan.days is not None:
        rows = the_plan.table.objects.using(db).filter(
            filters,
            organisation_id=organisation_id,
            day__gte=the_plan.days[0],
            day__lt=the_plan.days[1],
        )
        if the_plan.skip:
            rows = rows.exclude(day__in=sorted(the_plan.skip))
        if grain:
            rows = rows.annotate(bucket=EpochDays("day"))
        daily = _grouped(rows, group, _daily_aggregates(columns), hours=24, part=DAILY_PART)
    if the_plan.spans:
        within = reduce(or_, (Q(hour__gte=a, hour__lt=b) for a, b in the_plan.spans))
        rows = HourlyRollup.objects.using(db).filter(
            within, filters, organisation_id=organisation_id
        )
        if grain == "day":
            zone = Value(zone_label(freshness.zone_of(organisation_id)))
            rows = rows.annotate(bucket=EpochDays(LocalDay("hour", zone)))
        elif grain in ("hour", "native"):
            rows = rows.annotate(bucket=EpochSeconds("hour"))
        hours = 24 if grain == "day" else 1
        hourly = _grouped(rows, group, _hourly_aggregates(columns), hours=hours, part=HOURLY_PART)
    parts = [p for p in (daily, hourly) if p is not None]
    if not parts:
        return _typed(pd.DataFrame(columns=out_columns), columns)
    frame = pd.DataFrame.from_records(
        _rows(daily, hourly, the_plan.version), columns=[*group, *columns, "bucket_h"]
    )
    if grain:
        days = frame["bucket_h"] == 24
        times = pd.to_datetime(frame["bucket"].where(days, 0), unit="D")
        seconds = pd.to_datetime(frame["bucket"].where(~days, 0), unit="s")
        frame["bucket_utc"] = times.where(days, seconds)
        if grain == "native" and days.any():
            _native_days(frame, days, freshness.zone_of(organisation_id))
    frame = _typed(frame[out_columns], columns)
    if len(parts) > 1 and not grain:
        # Over the whole range a group gets rows from both tables (its fresh days and its stale
        # or partial ones): add them up. With a time bucket the two never share a bucket.
        frame = _combine(frame, list(by), columns)
    return frame


def _rows(daily: QuerySet | None, hourly: QuerySet | None, version: str) -> cache.Rows:
    """The parts' rows in one round trip (the daily part UNION ALL the hourly part, each row
    marked with its part), the daily part from the cache when its days have not been refreshed
    since it was read (kpis/read/cache.py)."""
    key = cache.key_of(daily, version) if daily is not None and cache.enabled() else None
    found = cache.get(key) if key else None
    if found is not None:
        return found + ([r[:-1] for r in fetch_rows(hourly)] if hourly is not None else [])
    parts = [p for p in (daily, hourly) if p is not None]
    rows = fetch_rows(parts[0].union(parts[1], all=True) if len(parts) > 1 else parts[0])
    if key:
        cache.put(key, [r[:-1] for r in rows if r[-1] == DAILY_PART])
    return [r[:-1] for r in rows]


def _native_days(frame: pd.DataFrame, days: pd.Series, tz: tzinfo) -> None:
    """A day bucket of grain "native" as what it is in time: the UTC instant its local day starts
    and its length (23, 24 or 25 hours), so a forecast's daily rate divides by the hours it had."""
    if zone_label(tz) == "UTC":
        return
    found = frame.loc[days, "bucket_utc"].dt.date
    start = {d: naive_utc(day_start(d, tz)) for d in set(found)}
    hours = {d: day_hours(d, tz) for d in start}
    frame.loc[days, "bucket_utc"] = pd.to_datetime(found.map(start))
    frame.loc[days, "bucket_h"] = found.map(hours).astype("int64")


def _grouped(
    rows: QuerySet, group: list[str], aggregates: dict[str, Aggregate], *, hours: int, part: int
) -> QuerySet:
    """``aggregates`` per ``group`` as a values_list, then the bucket length in hours and which
    part of the read the row comes from (``DAILY_PART`` or ``HOURLY_PART``)."""
    return (
        rows.values(*group)
        .annotate(**aggregates)
        .annotate(
            bucket_h=Value(hours, output_field=IntegerField()),
            read_part=Value(part, output_field=IntegerField()),
        )
        .values_list(*group, *aggregates, "bucket_h", "read_part")
        .order_by()
    )


def _typed(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    for c in columns:
        if c in VERSIONS:
            frame[c] = frame[c].fillna("").astype(object)
        elif c == "cost":
            frame[c] = frame[c].astype("float64")
        else:
            frame[c] = frame[c].astype("float64").fillna(0.0)
    for key in ("team_id", "site_id", "host_id", "device_id", "scheduler_job_id"):
        if key in frame:
            frame[key] = frame[key].astype("Int64")
    return frame.reset_index(drop=True)


def _combine(frame: pd.DataFrame, group_by: list[str], columns: Sequence[str]) -> pd.DataFrame:
    """Groups that both sources answered for, added up (cost stays NaN only if both were)."""
    how: dict[str, object] = {}
    for c in columns:
        if c == "methodology_version_min":
            how[c] = lambda s: min((v for v in s if v), default="")
        elif c == "methodology_version_max":
            how[c] = "max"
        elif c == "cost":
            how[c] = lambda s: s.sum(min_count=1)
        else:
            how[c] = "sum"
    keys = group_by or ["_all"]
    if not group_by:
        frame = frame.assign(_all=0)
    out = frame.groupby(keys, as_index=False, dropna=False, sort=False).agg(how)
    return _typed(out[[*group_by, *columns]], columns)
