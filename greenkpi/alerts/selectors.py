"""Reads for pages, the admin and rule evaluation: budget status (consumption, forecast, crossing
dates, completeness) and open alerts, always scoped to one organisation and the caller's teams.

The dashboard calls these with its Scope's primitives (organisation id, visible team ids,
org-wide or not), so alerts never import the dashboard.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

import pandas as pd
from django.db.models import F, QuerySet
from django.utils import timezone

from greenkpi.alerts import consumption, forecast
from greenkpi.alerts.lifecycle import State
from greenkpi.alerts.models import Alert, Budget, BudgetScope, Metric
from greenkpi.inventory.models import Host
from greenkpi.kpis.models import RollupWindow
from greenkpi.kpis.read import freshness
from greenkpi.kpis.read import sums as read
from greenkpi.kpis.read.hosts import hosts_with_rows
from greenkpi.lib.periods import (
    DAY,
    day_floor,
    day_of,
    day_start,
    hour_floor,
    period_bounds,
    period_label,
)

# A host that contributed to a budget and has been silent this long makes its status incomplete.
SILENT_AFTER = timedelta(minutes=15)
METRIC_COLUMN = {  # hourly_totals' column of each metric (the burn-up chart)
    Metric.ENERGY_KWH: "energy_kwh",
    Metric.CO2E_KG: "co2e_kg",
    Metric.SCOPE2_LOCATION: "s2_location_kg",
    Metric.SCOPE2_MARKET: "s2_market_kg",
    Metric.GPU_HOURS: "allocated_gpu_h",
    Metric.COST: "cost",
}


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """Where a budget stands now. Amounts are in ``unit``; shares are fractions (1.0 = 100 %).

    ``complete`` is False when the figures may be too low: a host that fed this budget is silent
    (``silent_hosts``, since ``incomplete_since``), hours of the period still await recompute
    (``pending_recompute_hours``) or, for cost, energy had no price (``uncosted_energy_kwh``).
    """

    budget: Budget
    unit: str
    period_label: str
    forecast: forecast.BudgetForecast
    silent_hosts: tuple[str, ...]
    incomplete_since: datetime | None
    pending_recompute_hours: int
    uncosted_energy_kwh: float
    # Buckets (whole UTC days, today's hours) with rollups in
    # [min(period start, day(as_of) - 7 d), as_of); 0: no data.
    data_hours: int = 1
    # The consumption buckets behind the figures, [start, end) -> amount, sorted: whole UTC days
    # then today's hours (the burn-up chart plots them without reading rollups again).
    buckets: tuple[forecast.Bucket, ...] = ()

    @property
    def consumed(self) -> float:
        return self.forecast.consumed

    @property
    def consumed_share(self) -> float:
        return self.forecast.consumed_share

    @property
    def forecast_total(self) -> float:
        return self.forecast.forecast

    @property
    def forecast_share(self) -> float:
        return self.forecast.forecast_share

    @property
    def has_data(self) -> bool:
        """Any rollup of this scope in the period or the trailing 7 days (else: no data, which is
        not "under budget")."""
        return self.data_hours > 0

    @property
    def forecast_method(self) -> str:
        """``recent_rate`` or ``weekday_profile``: which method produced this forecast."""
        return self.forecast.method

    @property
    def crossing_at(self) -> datetime | None:
        """When 100 % was or will be reached (None: not within this period at today's rate)."""
        crossing = self.forecast.crossing(100)
        return crossing.at if crossing else None

    @property
    def thresholds_reached(self) -> tuple[int, ...]:
        wanted = set(self.budget.thresholds_pct)
        return tuple(
            c.threshold_pct
            for c in self.forecast.crossings
            if c.reached and c.threshold_pct in wanted
        )

    @property
    def complete(self) -> bool:
        return not (
            self.silent_hosts or self.pending_recompute_hours or self.uncosted_energy_kwh > 0
        )


def budget_status(*, budget: Budget, now: datetime | None = None) -> BudgetStatus:
    """Consumption to the last whole hour, forecast to the period end, crossing dates, gaps.

    The batched path of one budget (``statuses_of``), so a page, an alert and a digest agree.
    """
    return statuses_of([budget], now=now)[0]


def statuses_of(budgets: Sequence[Budget], *, now: datetime | None = None) -> list[BudgetStatus]:
    """The status of each budget, in order, in a bounded number of queries per organisation.

    Consumption of every scope key comes from ``consumption.scope_series`` (daily tables for whole
    local days of the organisation's zone, hourly rows only for today and stale days); completeness is one query for pending
    windows and one or two for silent hosts, whatever the number of budgets.
    """
    now = now or timezone.now()
    as_of = hour_floor(now)
    by_org: dict[int, list[Budget]] = {}
    for budget in budgets:
        by_org.setdefault(budget.organisation_id, []).append(budget)
    found: dict[int, BudgetStatus] = {}
    for organisation_id, group in by_org.items():
        for budget, status in zip(
            group, _org_statuses(organisation_id, group, now=now, as_of=as_of), strict=True
        ):
            found[id(budget)] = status
    return [found[id(b)] for b in budgets]


def _org_statuses(
    organisation_id: int, budgets: list[Budget], *, now: datetime, as_of: datetime
) -> list[BudgetStatus]:
    tz = freshness.zone_of(organisation_id)  # months, quarters and years are the organisation's
    bounds = [period_bounds(b.period, now, tz) for b in budgets]
    windows = [consumption.window_start(ps, as_of, tz) for ps, _ in bounds]
    keys = [consumption.scope_key(b) for b in budgets]
    starts: dict[consumption.ScopeKey, datetime] = {}
    for key, window in zip(keys, windows, strict=True):
        starts[key] = min(window, starts.get(key, window))
    since = as_of - forecast.RATE_WINDOW
    with freshness.batch():
        # One freshness query for every read below (the consumption's [window, as_of) and the
        # silent hosts' [since, after now)): the batch serves any range inside one it has read.
        freshness.stale_days(
            organisation_id=organisation_id,
            first=day_of(min(windows), tz),
            end=day_of(_after_now(now), tz) + DAY,
        )
        series = consumption.scope_series(
            organisation_id=organisation_id,
            keys=keys,
            start=min(windows),
            as_of=as_of,
            starts=starts,
        )
        silent = _silent_by_scope(organisation_id, set(keys), since=since, now=now, tz=tz)
    dirty = list(
        RollupWindow.objects.filter(
            organisation_id=organisation_id,
            hour__gte=min(ps for ps, _ in bounds),
            hour__lt=as_of,
            version__gt=F("computed_version"),
        )
        .values_list("hour", flat=True)
        .order_by()  # the model's ordering would join the organisation
    )
    out = []
    for budget, key, window, (period_start, period_end) in zip(
        budgets, keys, windows, bounds, strict=True
    ):
        scope = series[key]
        currency = budget.currency if budget.metric == Metric.COST else ""
        # Only the buckets this budget's period and forecast history look at (the scope's series
        # may reach further back for another budget of the same key kind).
        daily, hourly = scope.metric(budget.metric, currency, since=window)
        method = forecast.choose_method(
            budget.forecast_method, as_of=as_of, first_data=scope.first_data
        )
        result = forecast.budget_forecast(
            hourly,
            daily=daily,
            amount=budget.amount,
            period_start=period_start,
            period_end=period_end,
            as_of=as_of,
            thresholds_pct=sorted({*budget.thresholds_pct, 100}),  # the crossing date is 100 %'s
            first_data=scope.first_data,
            method=method,
            tz=tz,
        )
        hosts = silent.get(key, [])
        data_start = min(period_start, day_start(day_of(as_of, tz) - forecast.RATE_WINDOW, tz))
        out.append(
            BudgetStatus(
                budget=budget,
                unit=budget.unit,
                period_label=period_label(budget.period, period_start, tz),
                forecast=result,
                silent_hosts=tuple(h for h, _ in hosts),
                incomplete_since=min((seen for _, seen in hosts), default=None),
                pending_recompute_hours=sum(1 for h in dirty if period_start <= h < as_of),
                uncosted_energy_kwh=(
                    scope.uncosted(currency, period_start, as_of, tz)
                    if budget.metric == Metric.COST
                    else 0.0
                ),
                data_hours=scope.buckets_with_data(data_start, as_of, tz),
                buckets=tuple(forecast.buckets(hourly, daily, tz)),
            )
        )
    return out


def _silent_by_scope(
    organisation_id: int,
    keys: set[consumption.ScopeKey],
    *,
    since: datetime,
    now: datetime,
    silent_after: timedelta = SILENT_AFTER,
    tz: tzinfo = UTC,
) -> dict[consumption.ScopeKey, list[tuple[str, datetime]]]:
    """Per scope key, the silent hosts (hostname, last_seen) that fed it since ``since``: one
    query for the organisation's silent hosts and, only if there are any, what they fed, asked
    as narrowly as the keys allow: the organisation's key by one index probe per host, team keys
    on the team index, organisation-wide model keys filtered on the model (grouping every silent
    host's week by host, team and model took ~1.6 s with 250 hosts silent; bench/dashboard.py).
    ``tz``: the organisation's zone (whole local days of the model lookup)."""
    silent = {
        pk: (hostname, seen)
        for pk, hostname, seen in Host.objects.filter(
            organisation_id=organisation_id, last_seen__lt=now - silent_after
        ).values_list("pk", "hostname", "last_seen")
    }
    if not silent:
        return {}
    end = _after_now(now)
    found: dict[consumption.ScopeKey, set[int]] = {}
    if (None, None) in keys:
        fed_any = hosts_with_rows(
            organisation_id=organisation_id, host_ids=silent, start=since, end=end
        )
        if fed_any:
            found[(None, None)] = fed_any
    team_ids = sorted({t for t, _ in keys if t is not None})
    models = sorted({m for t, m in keys if t is None and m is not None})
    reads: list[dict[str, list[object]]] = []
    if team_ids:  # team and team-model keys: the (organisation, team, hour) index
        reads.append({"team_id": list(team_ids)})
    if models:
        # Organisation-wide model keys: the teams that used those models in the window first
        # (whole days from DailyRollup's model index), then their hours on the team index. The
        # hourly table has no model index: filtering a week on the model scanned all of it.
        # The lookup starts at the local midnight before ``since``: a team that used the model
        # that morning only is one team too many for the exact read below, which filters the
        # hours again, while the first partial day read from the hours filtered the whole
        # fleet's rows on the model (~40 k rows at 2,000 GPUs; bench/dashboard.py).
        teams = read.sums(
            organisation_id=organisation_id,
            start=day_floor(since, tz),
            end=end,
            columns=["samples"],
            by=["team_id"],
            where={"model_key": list(models)},
        )["team_id"].tolist()
        # The team keys' read already has every row of its teams (the loop below gives them to
        # the model keys too): only the other teams' rows of those models are left to read.
        covered = set(team_ids)
        used = [t for t in (None if pd.isna(t) else int(t) for t in teams) if t not in covered]
        if used:
            reads.append({"team_id": used, "model_key": list(models)})
    for where in reads:
        # By host, team and model over the hourly rows (a host key); the silent hosts are
        # picked here: an IN list of every host of the fleet sent PostgreSQL to a full scan.
        fed = read.sums(
            organisation_id=organisation_id,
            start=since,
            end=end,
            columns=["samples"],  # any column: a group exists where the host fed the key
            by=["host_id", "team_id", "model_key"],
            where=where,
        )
        for host_id, team_id, model_key in zip(
            fed["host_id"].tolist(),
            fed["team_id"].tolist(),
            fed["model_key"].tolist(),
            strict=True,
        ):
            if pd.isna(host_id) or int(host_id) not in silent:
                continue
            team = None if pd.isna(team_id) else int(team_id)
            for key in ((team, None), (None, model_key), (team, model_key)):
                if key in keys:
                    found.setdefault(key, set()).add(int(host_id))
    return {
        key: sorted((silent[pk] for pk in pks), key=lambda hs: hs[0]) for key, pks in found.items()
    }


def _after_now(now: datetime) -> datetime:
    """The end of a read of "every row since": the end of the hour in progress, with a day's room
    for a host whose clock runs ahead."""
    return hour_floor(now) + timedelta(days=1)


def silent_hosts(
    *,
    organisation_id: int,
    since: datetime,
    now: datetime,
    silent_after: timedelta = SILENT_AFTER,
    team_id: int | None = None,
    model_key: str | None = None,
) -> list[tuple[str, datetime]]:
    """(hostname, last_seen) of hosts that fed this scope's rollups since ``since`` and have been
    silent longer than ``silent_after``: their missing hours make the figures incomplete."""
    where: dict[str, list[object]] = {}
    if team_id is not None:
        where["team_id"] = [team_id]
    if model_key is not None:
        where["model_key"] = [model_key]
    fed = read.sums(
        organisation_id=organisation_id,
        start=since,
        end=_after_now(now),
        columns=["samples"],  # any column: a group exists where the host fed the scope
        by=["host_id"],
        where=where,
    )
    return list(
        Host.objects.filter(
            organisation_id=organisation_id,
            pk__in=[int(h) for h in fed["host_id"].dropna().tolist()],
            last_seen__lt=now - silent_after,
        )
        .order_by("hostname")
        .values_list("hostname", "last_seen")
    )


def budgets_visible(
    *, organisation_id: int, team_ids: Collection[int], org_wide: bool
) -> QuerySet[Budget]:
    """Budgets a user may see: all of the organisation when org-wide, else their teams' budgets,
    team-wide or on one of the team's models (organisation and organisation-wide model budgets
    include other teams' use, so team members do not see them)."""
    budgets = Budget.objects.filter(organisation_id=organisation_id).select_related("team")
    if not org_wide:
        budgets = budgets.filter(
            scope__in=[BudgetScope.TEAM, BudgetScope.MODEL], team_id__in=list(team_ids)
        )
    return budgets.order_by("name", "pk")


def budget_statuses(
    *,
    organisation_id: int,
    team_ids: Collection[int],
    org_wide: bool,
    now: datetime | None = None,
) -> list[BudgetStatus]:
    """The status of every visible budget, batched (``statuses_of``: a bounded query count)."""
    visible = budgets_visible(organisation_id=organisation_id, team_ids=team_ids, org_wide=org_wide)
    return statuses_of(list(visible), now=now)


def alerts_open(
    *, organisation_id: int, team_ids: Collection[int], org_wide: bool
) -> QuerySet[Alert]:
    """Pending, firing and no-data alerts the user may see, firing first, newest first.

    Alerts without a team (organisation budgets, hosts without a default team) are org-wide only.
    """
    alerts = Alert.objects.filter(
        organisation_id=organisation_id, state__in=[State.PENDING, State.FIRING, State.NODATA]
    ).select_related("rule", "team", "acknowledged_by")
    if not org_wide:
        alerts = alerts.filter(team_id__in=list(team_ids))
    return alerts.order_by("state", "-active_since", "pk")  # "firing" sorts before "pending"
