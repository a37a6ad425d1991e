"""Batched consumption of many budgets: a few GROUP BYs by scope key, whatever the budget count.

A budget's scope key is (team_id, model_key), None meaning "any": organisation (None, None), team
(t, None), organisation-wide model (None, k), a team's model (t, k). Every read is one organisation
over [start, as_of), where ``start`` covers every budget's period and forecast history:

Every read goes through ``kpis.read.sums`` (grain "native"): whole local days of the organisation's
zone from the daily tables
(DailyTeamRollup for the organisation and team keys, DailyRollup filtered on the budgets' model keys
for model keys), HourlyRollup for today's partial day [day(as_of), as_of) and for stale days (the
read layer's one freshness rule), so the sums always equal the hourly ones.

Each read is grouped by its bucket (day or hour), the key columns it needs and ``currency`` (a
cost budget counts only its currency; the rest is uncosted energy). Queries: one freshness query
and at most two data queries per key kind (teams, models), and one for the first hour of scopes
whose history starts inside the window (the rate and profile of a young scope).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

import numpy as np
import pandas as pd

from greenkpi.alerts.choices import BudgetScope, Metric
from greenkpi.alerts.forecast import DAY, PROFILE_WEEKS, RATE_WINDOW
from greenkpi.kpis.read import freshness
from greenkpi.kpis.read import sums as read
from greenkpi.kpis.read.first import first_hours
from greenkpi.lib.periods import day_of, day_start, next_day_start

ScopeKey = tuple[int | None, str | None]  # (team_id, model_key); None: any
# Per bucket and currency: the summed columns, in this order.
COLUMNS = (
    "energy_kwh",
    "co2e_kg",
    "allocated_gpu_h",
    "facility_energy_kwh",
    "cost",
    "operational_location_kgco2e",
    "operational_market_kgco2e",
)
# What the budgets read, per bucket and group (co2e_kg = operational location-based + embodied).
READ_COLUMNS = (
    "energy_kwh",
    "operational_location_kgco2e",
    "operational_market_kgco2e",
    "embodied_kgco2e",
    "allocated_gpu_h",
    "facility_energy_kwh",
    "cost",
)
METRIC_INDEX = {
    Metric.ENERGY_KWH: 0,
    Metric.CO2E_KG: 1,
    Metric.GPU_HOURS: 2,
    Metric.COST: 4,
    Metric.SCOPE2_LOCATION: 5,
    Metric.SCOPE2_MARKET: 6,
}
# History read before the period: the profile's 4 weeks + a day, so a scope whose first bucket is
# the window's first day is old enough that its exact first hour changes nothing.
HISTORY = timedelta(weeks=PROFILE_WEEKS) + DAY
assert HISTORY > RATE_WINDOW


def scope_key(budget: object) -> ScopeKey:
    scope = budget.scope  # type: ignore[attr-defined]
    if scope == BudgetScope.TEAM:
        return (budget.team_id, None)  # type: ignore[attr-defined]
    if scope == BudgetScope.MODEL:
        return (budget.team_id, budget.model_key)  # type: ignore[attr-defined]
    return (None, None)


def window_start(period_start: datetime, as_of: datetime, tz: tzinfo = UTC) -> datetime:
    """The first bucket one budget needs: its period or its forecast history, whichever is older
    (a local midnight of ``tz``)."""
    return min(period_start, day_start(day_of(as_of, tz) - HISTORY, tz))


def _day_end(moment: datetime, tz: tzinfo) -> datetime:
    """The end of the local day starting at ``moment`` (23, 24 or 25 hours later)."""
    return next_day_start(moment, tz)


Sums = dict[str, list[float]]  # currency -> COLUMNS


@dataclass
class ScopeSeries:
    """Buckets of one scope key: whole local days (day start, aware UTC) and hours, per currency."""

    daily: dict[datetime, Sums] = field(default_factory=dict)
    hourly: dict[datetime, Sums] = field(default_factory=dict)
    first_data: datetime | None = None

    def metric(
        self, metric: str, currency: str, since: datetime | None = None
    ) -> tuple[dict[datetime, float], dict[datetime, float]]:
        """(daily, hourly) amounts of one metric (cost: only ``currency``'s), of the buckets
        starting at or after ``since`` (default: all)."""
        index = METRIC_INDEX[Metric(metric)]

        def value(sums: Sums) -> float:
            if metric == Metric.COST:
                return sums[currency][4] if currency in sums else 0.0
            return sum(v[index] for v in sums.values())

        def wanted(series: dict[datetime, Sums]) -> dict[datetime, float]:
            if since is None:
                return {d: value(s) for d, s in series.items()}
            return {d: value(s) for d, s in series.items() if d >= since}

        return wanted(self.daily), wanted(self.hourly)

    def uncosted(self, currency: str, start: datetime, end: datetime, tz: tzinfo = UTC) -> float:
        """Facility kWh in [start, end) not priced in ``currency``."""
        total = 0.0
        for daily, series in ((True, self.daily), (False, self.hourly)):
            for moment, sums in series.items():
                bucket_end = _day_end(moment, tz) if daily else moment + timedelta(hours=1)
                if start <= moment and bucket_end <= end:
                    total += sum(v[3] for c, v in sums.items() if c != currency)
        return total

    def buckets_with_data(self, start: datetime, end: datetime, tz: tzinfo = UTC) -> int:
        days = sum(1 for d in self.daily if start <= d and _day_end(d, tz) <= end)
        return days + sum(1 for h in self.hourly if start <= h < end)


def _add(target: dict[datetime, Sums], moment: datetime, currency: str, values: list) -> None:
    """Add a row's COLUMNS (floats, no NaN) to the bucket. The list may be shared between scope
    keys: sums make new lists, never add in place."""
    sums = target.get(moment)
    if sums is None:
        target[moment] = {currency: values}
        return
    current = sums.get(currency)
    if current is None:
        sums[currency] = values
    else:
        sums[currency] = [a + b for a, b in zip(current, values, strict=True)]


def scope_series(
    *,
    organisation_id: int,
    keys: Iterable[ScopeKey],
    start: datetime,
    as_of: datetime,
    starts: Mapping[ScopeKey, datetime] | None = None,
) -> dict[ScopeKey, ScopeSeries]:
    """Consumption buckets of every scope key in [start, as_of) (see module); ``start`` is a day
    start (budget periods and histories always are).

    ``starts`` (optional): the first bucket each key needs (``window_start`` of its budgets), each
    a day start at or after ``start``. Each key kind (organisation, teams, models) is then read
    from the earliest start of its own keys: a year budget of the organisation no longer makes
    the month and quarter budgets of teams read a year of days (bench/dashboard.py: the team read
    went from 1,950 rows and a scan of the whole DailyTeamRollup to ~400 rows on its day index).
    A key's series then starts at its kind's start (still a day start at or before every one of
    its budgets' windows, which is all ``_first_hours`` needs)."""
    keys = set(keys)
    out = {k: ScopeSeries() for k in keys}
    if not keys:
        return out
    org_wide = (None, None) in keys
    team_ids = sorted({t for t, m in keys if t is not None and m is None})
    model_keys = sorted({m for _, m in keys if m is not None})

    def to_keys(team_id: int | None, model_key: str) -> list[ScopeKey]:
        """The model budget keys a (team, model) group counts towards."""
        found: list[ScopeKey] = []
        if (None, model_key) in keys:
            found.append((None, model_key))
        if team_id is not None and (team_id, model_key) in keys:
            found.append((team_id, model_key))
        return found

    # One read per key kind through kpis.read (one freshness query for all of them): whole fresh
    # days from the daily tables (the organisation and teams: DailyTeamRollup; models:
    # DailyRollup), today's hours and stale days from the hours. The organisation is read apart
    # from its teams: grouping every team of a year (~37 k rows at 50 teams) to sum the
    # organisation cost more than a second read of ~730 rows.
    def kind_start(of_kind: Iterable[ScopeKey]) -> datetime:
        if starts is None:
            return start
        return max(start, min(starts.get(k, start) for k in of_kind))

    reads: list[tuple[datetime, str, list[str], dict[str, list[object]]]] = []
    if org_wide:
        reads.append((kind_start([(None, None)]), "org", ["currency"], {}))
    if team_ids:
        team_keys = [(t, None) for t in team_ids]
        where: dict[str, list[object]] = {"team_id": list(team_ids)}
        reads.append((kind_start(team_keys), "team", ["team_id", "currency"], where))
    if model_keys:
        by = ["team_id", "model_key", "currency"]
        where = {"model_key": list(model_keys)}
        reads.append((kind_start([k for k in keys if k[1] is not None]), "model", by, where))
    # The earliest read first: its freshness query (freshness.batch) then serves the later ones.
    reads.sort(key=lambda r: r[0])
    with freshness.batch():
        frames = [
            (
                kind,
                read.sums(
                    organisation_id=organisation_id,
                    start=kind_from,
                    end=as_of,
                    columns=READ_COLUMNS,
                    by=by,
                    where=where,
                    grain="native",
                ),
            )
            for kind_from, kind, by, where in reads
        ]
    read_from = {kind: kind_from for kind_from, kind, _, _ in reads}
    for kind, frame in frames:
        if frame.empty:
            continue
        # Plain lists, not pandas: the loop below touches every row (~2 k in the bench), and
        # iterating pandas columns cost a pandas call per value.
        moments = [m.replace(tzinfo=UTC) for m in _naive_datetimes(frame["bucket_utc"])]
        n = len(frame)
        teams = (
            [_int_or_none(t) for t in frame["team_id"].tolist()]
            if "team_id" in frame
            else [None] * n
        )
        models = frame["model_key"].tolist() if "model_key" in frame else [None] * n
        values = _columns(frame)
        for moment, hours, team, model_key, currency, row in zip(
            moments,
            frame["bucket_h"].tolist(),
            teams,
            models,
            frame["currency"].tolist(),
            values,
            strict=True,
        ):
            if kind == "org":
                found: list[ScopeKey] = [(None, None)]
            elif kind == "team":
                found = [(team, None)] if (team, None) in keys else []
            else:
                found = to_keys(team, model_key)
            for k in found:
                target = out[k].daily if hours > 1 else out[k].hourly  # a day: 23-25 h
                _add(target, moment, currency, row)

    def key_start(key: ScopeKey) -> datetime:
        kind = "org" if key == (None, None) else "team" if key[1] is None else "model"
        return read_from.get(kind, start)

    _first_hours(organisation_id, out, key_start)
    return out


def _naive_datetimes(values: pd.Series) -> list[datetime]:
    """A naive datetime64 column as naive datetimes (microseconds: what the buckets carry)."""
    return values.to_numpy(dtype="datetime64[us]").tolist()


def _int_or_none(value: object) -> int | None:
    return None if value is None or value is pd.NA or value != value else int(value)  # type: ignore[call-overload]


def _columns(frame: pd.DataFrame) -> list[list[float]]:
    """Each row's COLUMNS, missing values 0 (unpriced cost): co2e_kg = operational
    location-based + embodied."""
    data = {c: frame[c].to_numpy(dtype=float) for c in READ_COLUMNS}
    data["co2e_kg"] = data["operational_location_kgco2e"] + data["embodied_kgco2e"]
    rows = np.column_stack([data[c] for c in COLUMNS])
    rows[np.isnan(rows)] = 0.0
    return rows.tolist()


def _first_hours(
    organisation_id: int,
    out: dict[ScopeKey, ScopeSeries],
    start_of: Callable[[ScopeKey], datetime],
) -> None:
    """Each scope's first hour with data. A scope with data on its read's first day is older
    than any forecast looks (HISTORY), so that day's start stands for it; one without data has
    None; for the others, whose history began inside the window, one query finds the exact hour."""
    young: dict[ScopeKey, datetime] = {}
    for key, series in out.items():
        buckets = [*series.daily, *series.hourly]
        if not buckets:
            continue
        first = min(buckets)
        start = start_of(key)
        if first <= start:
            series.first_data = start
        elif first in series.hourly:  # already an hour
            series.first_data = first
        else:
            young[key] = first
    if not young:
        return
    # The exact hour, from those days' hourly rows (kpis.read.first: index probes, not a read).
    firsts = first_hours(organisation_id=organisation_id, days=young)
    for key, day in young.items():
        out[key].first_data = firsts.get(key, day)
