"""KPI series for the read API: sums per organisation, team, model, run or host, per hour, day or
month, read through ``kpis.read`` (the one read layer under every page: the same figures).

Days and months are the organisation's (``Organisation.time_zone``, lib.periods): a day bucket is
[local midnight, next local midnight) as UTC instants (23 or 25 hours on DST days), a month bucket
the same from the 1st to the 1st. Bounded by design: a range is whole buckets of its resolution and at most ``MAX_BUCKETS`` of them
(a month of hours, a year and a day of days, three years of months); the API pages the rows.
Carbon figures carry the names of ``kpis.labels``; ratios are computed from sums (kpis.formulas),
never averaged; ``estimated_energy_kwh`` says how much of the energy was estimated, not measured.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

import pandas as pd

from greenkpi.inventory.models import Host, Team
from greenkpi.kpis import labels
from greenkpi.kpis.read import sums as read
from greenkpi.lib.periods import add_month_days, day_of, day_start, months_between, zone_label

RESOLUTIONS = ("hour", "day", "month")
GROUPINGS = ("organisation", "team", "model", "run", "host")
# The most buckets one query may span, per resolution (a wider query is a 400 that says so).
MAX_BUCKETS = {"hour": 31 * 24, "day": 366, "month": 36}
KEYS_OF = {
    "organisation": [],
    "team": ["team_id"],
    "model": ["team_id", "model_key"],
    "run": ["team_id", "model_key", "run_key"],
    "host": ["host_id"],
}
# Summed columns the series carries (kWh, kgCO2e, GPU-hours; cost per currency apart).
SUMMED = (
    "energy_kwh",
    "estimated_energy_kwh",
    "facility_energy_kwh",
    labels.SCOPE2_LOCATION.column,
    labels.SCOPE2_MARKET.column,
    labels.EMBODIED.column,
    "allocated_gpu_h",
    "busy_gpu_h",
    "util_known_gpu_h",
    "idle_gpu_h",
    "idle_energy_kwh",
    "idle_location_kgco2e",
)
CARBON = {q.key: q for q in labels.QUANTITIES}


class BadSeries(ValueError):
    """A query the API refuses (400), with the parameter it is about."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class SeriesQuery:
    organisation_id: int
    by: str
    resolution: str
    start: datetime
    end: datetime
    team_ids: frozenset[int] | None  # None: every row of the organisation (org-wide callers)
    model_keys: tuple[str, ...] = ()
    run_keys: tuple[str, ...] = ()
    host_ids: tuple[int, ...] = ()
    tz: tzinfo = UTC  # the organisation's zone: its days and months


def aligned(resolution: str, moment: datetime, tz: tzinfo = UTC) -> bool:
    moment = moment.astimezone(UTC)
    if (moment.minute, moment.second, moment.microsecond) != (0, 0, 0):
        return False
    if resolution == "hour":
        return True
    day = day_of(moment, tz)
    if day_start(day, tz) != moment:
        return False
    return resolution == "day" or day.day == 1


def buckets_between(resolution: str, start: datetime, end: datetime, tz: tzinfo = UTC) -> int:
    if resolution == "month":
        return months_between(day_of(start, tz), day_of(end, tz))
    if resolution == "day":
        return (day_of(end, tz) - day_of(start, tz)).days
    return math.ceil((end - start) / timedelta(hours=1))


def check_range(resolution: str, start: datetime, end: datetime, tz: tzinfo = UTC) -> None:
    """Refuse misaligned, empty and too wide ranges (BadSeries naming ``from`` or ``to``)."""
    where = "UTC" if zone_label(tz) == "UTC" else f"local ({zone_label(tz)})"
    word = {
        "hour": "a whole UTC hour",
        "day": f"a {where} midnight",
        "month": f"a {where} month start",
    }
    for field, moment in (("from", start), ("to", end)):
        if not aligned(resolution, moment, tz):
            raise BadSeries(
                field, f"with resolution={resolution}, '{field}' must be {word[resolution]}"
            )
    if end <= start:
        raise BadSeries("to", "'to' must be after 'from'")
    if start < read.BEGINNING:
        raise BadSeries("from", "'from' must not be before 2000-01-01")
    most = MAX_BUCKETS[resolution]
    if buckets_between(resolution, start, end, tz) > most:
        raise BadSeries("to", f"with resolution={resolution} a range spans at most {most} buckets")


def _where(query: SeriesQuery) -> dict[str, list[object]]:
    where: dict[str, list[object]] = {}
    if query.team_ids is not None:
        where["team_id"] = sorted(query.team_ids)
    if query.model_keys:
        where["model_key"] = list(query.model_keys)
    if query.run_keys:
        where["run_key"] = list(query.run_keys)
    if query.host_ids:
        where["host_id"] = list(query.host_ids)
    return where


def _read(query: SeriesQuery, columns: Sequence[str], extra_by: Sequence[str] = ()) -> pd.DataFrame:
    grain: read.Grain = "hour" if query.resolution == "hour" else "day"
    by = [*KEYS_OF[query.by], *extra_by]
    frame = read.sums(
        organisation_id=query.organisation_id,
        start=query.start,
        end=query.end,
        columns=columns,
        by=by,
        where=_where(query),
        grain=grain,
    )
    if query.resolution == "month":  # local dates -> the local month's first day
        frame["bucket_utc"] = frame["bucket_utc"].dt.to_period("M").dt.to_timestamp()
        summed = [c for c in columns if c != "cost"]
        how: dict[str, Any] = dict.fromkeys(summed, "sum")
        if "cost" in columns:
            how["cost"] = lambda s: s.sum(min_count=1)
        frame = frame.groupby(["bucket_utc", *by], as_index=False, dropna=False, sort=False).agg(
            how
        )
    return frame


def _label(value: object) -> object:
    return None if value is None or pd.isna(value) else value  # type: ignore[arg-type]


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def series_rows(query: SeriesQuery) -> list[dict[str, Any]]:
    """One row per bucket and key, sorted by (bucket, key): its figures, named for people."""
    frame = _read(query, SUMMED)
    costs = _read(query, ("cost",), extra_by=("currency",))
    keys = KEYS_OF[query.by]
    cost_of: dict[tuple[object, ...], dict[str, float]] = {}
    for row in costs.itertuples(index=False):
        data = row._asdict()
        amount = data["cost"]
        if amount is None or (isinstance(amount, float) and math.isnan(amount)):
            continue
        key = (data["bucket_utc"], *(_label(data[k]) for k in keys))
        cost_of.setdefault(key, {})[data["currency"] or "?"] = float(amount)
    teams = dict(
        Team.objects.filter(organisation_id=query.organisation_id).values_list("pk", "slug")
    )
    hosts = {}
    if "host_id" in keys:
        hosts = dict(
            Host.objects.filter(organisation_id=query.organisation_id).values_list("pk", "hostname")
        )
    out = []
    for row in frame.itertuples(index=False):
        data = row._asdict()
        bucket, bucket_end = _bucket(query, pd.Timestamp(data["bucket_utc"]).to_pydatetime())
        key_values = tuple(_label(data[k]) for k in keys)
        item: dict[str, Any] = {"start": bucket, "end": bucket_end}
        for k, value in zip(keys, key_values, strict=True):
            if k == "team_id":
                item["team"] = None if value is None else teams.get(int(value))  # type: ignore[call-overload]
            elif k == "host_id":
                item["host"] = None if value is None else hosts.get(int(value), "")  # type: ignore[call-overload]
            else:
                item[k.removesuffix("_key")] = value or ""
        figures = {c: float(data[c]) for c in SUMMED}
        item.update(
            energy_kwh=figures["energy_kwh"],
            estimated_energy_kwh=figures["estimated_energy_kwh"],
            facility_energy_kwh=figures["facility_energy_kwh"],
            co2e_kg={
                "scope2_location": figures[labels.SCOPE2_LOCATION.column],
                "scope2_market": figures[labels.SCOPE2_MARKET.column],
                "embodied": figures[labels.EMBODIED.column],
                "total": figures[labels.SCOPE2_LOCATION.column] + figures[labels.EMBODIED.column],
            },
            cost=cost_of.get((data["bucket_utc"], *key_values), {}),
            gpu_hours={
                "allocated": figures["allocated_gpu_h"],
                "busy": figures["busy_gpu_h"],
                "idle": figures["idle_gpu_h"],
            },
            utilization=_ratio(figures["busy_gpu_h"], figures["util_known_gpu_h"]),
            idle_waste={
                "gpu_hours": figures["idle_gpu_h"],
                "energy_kwh": figures["idle_energy_kwh"],
                "co2e_kg": figures["idle_location_kgco2e"],
            },
        )
        out.append(item)
    out.sort(key=sort_key)
    return out


def sort_key(item: dict[str, Any]) -> tuple[str, ...]:
    """The row's place in the series: its bucket, then its key (text, None first)."""
    parts = [item["start"].isoformat()]
    for name in ("team", "model", "run", "host"):
        if name in item:
            parts.append("" if item[name] is None else f"~{item[name]}")
    return tuple(parts)


def _bucket(query: SeriesQuery, value: datetime) -> tuple[datetime, datetime]:
    """[start, end) of a frame's bucket as UTC instants: an hour (naive UTC), or a local day or
    month of the organisation (its date at midnight)."""
    if query.resolution == "hour":
        start = value.replace(tzinfo=UTC)
        return start, start + timedelta(hours=1)
    day = date(value.year, value.month, value.day)
    if query.resolution == "day":
        return day_start(day, query.tz), day_start(day + timedelta(days=1), query.tz)
    return day_start(day, query.tz), day_start(add_month_days(day, 1), query.tz)
