"""Batched consumption of many budgets: a few GROUP BYs by scope key, whatever the budget count.

A budget's scope key is (team_id, model_key), None meaning "any": organisation (None, None), team
(t, None), organisation-wide model (None, k), a team's model (t, k). Every read is one organisation
over [start, as_of), where ``start`` covers every budget's period and forecast history:

* whole UTC days come from the daily tables: DailyTeamRollup (day x team x currency) for the
  organisation and team keys, DailyRollup filtered on the budgets' model keys for model keys;
* HourlyRollup is read only for today's partial day [day(as_of), as_of) and for days whose daily
  rows are stale (never refreshed, or an hourly window recomputed after the day's last refresh:
  ``kpis.daily.stale_days_between``), so the sums always equal the hourly ones.

Each source is grouped by its bucket (day or hour), the key columns it needs and ``currency`` (a
cost budget counts only its currency; the rest is uncosted energy). Queries: two for stale days,
then one per source kind present (at most 2 daily + 2 hourly), and one for the first hour of
scopes whose history starts inside the window (the rate and profile of a young scope).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Min, Q, QuerySet, Sum

from greenkpi.alerts.choices import BudgetScope, Metric
from greenkpi.alerts.forecast import DAY, PROFILE_WEEKS, RATE_WINDOW
from greenkpi.kpis import daily
from greenkpi.kpis.models import (
    DailyRollup,
    DailyTeamRollup,
    HourlyRollup,
)
from greenkpi.lib.periods import day_floor

ScopeKey = tuple[int | None, str | None]  # (team_id, model_key); None: any
# Per bucket and currency: the summed columns, in this order.
COLUMNS = ("energy_kwh", "co2e_kg", "allocated_gpu_h", "facility_energy_kwh", "cost")
METRIC_INDEX = {Metric.ENERGY_KWH: 0, Metric.CO2E_KG: 1, Metric.GPU_HOURS: 2, Metric.COST: 4}
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


def window_start(period_start: datetime, as_of: datetime) -> datetime:
    """The first bucket one budget needs: its period or its forecast history, whichever is older."""
    return min(period_start, day_floor(as_of) - HISTORY)


Sums = dict[str, list[float]]  # currency -> COLUMNS


@dataclass
class ScopeSeries:
    """Buckets of one scope key: whole days (day start, aware UTC) and hours, per currency."""

    daily: dict[datetime, Sums] = field(default_factory=dict)
    hourly: dict[datetime, Sums] = field(default_factory=dict)
    first_data: datetime | None = None

    def metric(
        self, metric: str, currency: str
    ) -> tuple[dict[datetime, float], dict[datetime, float]]:
        """(daily, hourly) amounts of one metric (cost: only ``currency``'s)."""
        index = METRIC_INDEX[Metric(metric)]

        def value(sums: Sums) -> float:
            if metric == Metric.COST:
                return sums[currency][4] if currency in sums else 0.0
            return sum(v[index] for v in sums.values())

        return (
            {d: value(s) for d, s in self.daily.items()},
            {h: value(s) for h, s in self.hourly.items()},
        )

    def uncosted(self, currency: str, start: datetime, end: datetime) -> float:
        """Facility kWh in [start, end) not priced in ``currency``."""
        total = 0.0
        for length, series in ((DAY, self.daily), (timedelta(hours=1), self.hourly)):
            for moment, sums in series.items():
                if start <= moment and moment + length <= end:
                    total += sum(v[3] for c, v in sums.items() if c != currency)
        return total

    def buckets_with_data(self, start: datetime, end: datetime) -> int:
        days = sum(1 for d in self.daily if start <= d and d + DAY <= end)
        return days + sum(1 for h in self.hourly if start <= h < end)


def _add(target: dict[datetime, Sums], moment: datetime, currency: str, row: Iterable) -> None:
    sums = target.setdefault(moment, {})
    values = [float(v or 0.0) for v in row]
    if currency in sums:
        sums[currency] = [a + b for a, b in zip(sums[currency], values, strict=True)]
    else:
        sums[currency] = values


def _day_moment(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _day_ranges(days: Iterable[date]) -> list[tuple[datetime, datetime]]:
    """Sorted days as [start, end) runs of consecutive days."""
    runs: list[tuple[datetime, datetime]] = []
    for day in sorted(days):
        moment = _day_moment(day)
        if runs and runs[-1][1] == moment:
            runs[-1] = (runs[-1][0], moment + DAY)
        else:
            runs.append((moment, moment + DAY))
    return runs


def _sum_kwargs() -> dict[str, Sum]:
    return {
        "s_energy": Sum("energy_kwh"),
        "s_op": Sum("operational_location_kgco2e"),
        "s_emb": Sum("embodied_kgco2e"),
        "s_alloc": Sum("allocated_gpu_h"),
        "s_facility": Sum("facility_energy_kwh"),
        "s_cost": Sum("cost"),
    }


def _row_values(r: dict) -> tuple[float, ...]:
    return (
        r["s_energy"],
        (r["s_op"] or 0.0) + (r["s_emb"] or 0.0),
        r["s_alloc"],
        r["s_facility"],
        r["s_cost"],
    )


def scope_series(
    *,
    organisation_id: int,
    keys: Iterable[ScopeKey],
    start: datetime,
    as_of: datetime,
) -> dict[ScopeKey, ScopeSeries]:
    """Consumption buckets of every scope key in [start, as_of) (see module); ``start`` is a day
    start (budget periods and histories always are)."""
    keys = set(keys)
    out = {k: ScopeSeries() for k in keys}
    if not keys:
        return out
    today = day_floor(as_of)
    stale = daily.stale_days_between(
        organisation_id=organisation_id,
        start=start.date(),
        end=today.date(),
        unrefreshed_are_stale=True,
    )
    org_wide = (None, None) in keys
    team_ids = sorted({t for t, m in keys if t is not None and m is None})
    model_keys = sorted({m for _, m in keys if m is not None})

    def to_keys(team_id: int | None, model_key: str | None) -> list[ScopeKey]:
        """The budget keys a (team, model) group counts towards."""
        found: list[ScopeKey] = []
        if model_key is None:  # a team-level source row (DailyTeamRollup / hourly by team)
            if org_wide:
                found.append((None, None))
            if team_id is not None and (team_id, None) in keys:
                found.append((team_id, None))
        else:
            if (None, model_key) in keys:
                found.append((None, model_key))
            if team_id is not None and (team_id, model_key) in keys:
                found.append((team_id, model_key))
        return found

    # Whole days from the daily tables (stale days excluded: they are read hourly below).
    day_range = {"organisation_id": organisation_id, "day__gte": start.date(), "day__lt": today}
    sums = _sum_kwargs()
    if org_wide or team_ids:
        rows = DailyTeamRollup.objects.filter(**day_range).exclude(day__in=stale)
        if not org_wide:
            rows = rows.filter(team_id__in=team_ids)
        group = ["day", "currency"] + (["team_id"] if team_ids else [])
        for r in rows.values(*group).annotate(**sums).order_by():
            for k in to_keys(r.get("team_id"), None):
                _add(out[k].daily, _day_moment(r["day"]), r["currency"], _row_values(r))
    if model_keys:
        rows = DailyRollup.objects.filter(**day_range, model_key__in=model_keys).exclude(
            day__in=stale
        )
        group = ["day", "team_id", "model_key", "currency"]
        for r in rows.values(*group).annotate(**sums).order_by():
            for k in to_keys(r["team_id"], r["model_key"]):
                _add(out[k].daily, _day_moment(r["day"]), r["currency"], _row_values(r))

    # Hours: today's partial day and the stale days.
    hours = Q(hour__gte=today, hour__lt=as_of)
    for first, end in _day_ranges(stale):
        hours |= Q(hour__gte=first, hour__lt=end)
    hourly = HourlyRollup.objects.filter(hours, organisation_id=organisation_id)
    if org_wide or team_ids:
        rows = hourly if org_wide else hourly.filter(team_id__in=team_ids)
        group = ["hour", "currency"] + (["team_id"] if team_ids else [])
        for r in rows.values(*group).annotate(**sums).order_by():
            for k in to_keys(r.get("team_id"), None):
                _add(out[k].hourly, r["hour"], r["currency"], _row_values(r))
    if model_keys:
        rows = hourly.filter(model_key__in=model_keys)
        group = ["hour", "team_id", "model_key", "currency"]
        for r in rows.values(*group).annotate(**sums).order_by():
            for k in to_keys(r["team_id"], r["model_key"]):
                _add(out[k].hourly, r["hour"], r["currency"], _row_values(r))

    _first_hours(organisation_id, out, start)
    return out


def _first_hours(organisation_id: int, out: dict[ScopeKey, ScopeSeries], start: datetime) -> None:
    """Each scope's first hour with data. A scope with data on the window's first day is older
    than any forecast looks (HISTORY), so ``start`` stands for it; one without data has None; for
    the others, whose history began inside the window, one query finds the exact hour."""
    young: dict[ScopeKey, datetime] = {}
    for key, series in out.items():
        starts = [*series.daily, *series.hourly]
        if not starts:
            continue
        first = min(starts)
        if first <= start:
            series.first_data = start
        elif first in series.hourly:  # already an hour
            series.first_data = first
        else:
            young[key] = first
    if not young:
        return
    firsts: dict[ScopeKey, datetime] = {}
    day_of = {key: Q(hour__gte=day, hour__lt=day + DAY) for key, day in young.items()}
    rows = HourlyRollup.objects.filter(organisation_id=organisation_id)
    if (None, None) in young:  # the organisation: the (organisation, hour) index, one row
        first = rows.filter(day_of[(None, None)]).order_by("hour").values_list("hour", flat=True)
        hour = first.first()
        if hour is not None:
            firsts[(None, None)] = hour
    # Teams and models: one GROUP BY each over their first days only.
    for kind, fields in (("team", ("team_id",)), ("model", ("team_id", "model_key"))):
        keys = [k for k in young if k != (None, None) and (k[1] is None) == (kind == "team")]
        if not keys:
            continue
        condition = Q()
        for key in keys:
            q = day_of[key]
            if key[0] is not None:
                q &= Q(team_id=key[0])
            if key[1] is not None:
                q &= Q(model_key=key[1])
            condition |= q
        found: QuerySet = (
            rows.filter(condition).values(*fields).annotate(first=Min("hour")).order_by()
        )
        for r in found:
            for key in keys:
                team_id, model_key = key
                if team_id is not None and r["team_id"] != team_id:
                    continue
                if model_key is not None and r["model_key"] != model_key:
                    continue
                firsts[key] = min(firsts.get(key, r["first"]), r["first"])
    for key, day in young.items():
        out[key].first_data = firsts.get(key, day)
