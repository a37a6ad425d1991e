"""Reads for pages, the admin and rule evaluation: budget status (consumption, forecast, crossing
dates, completeness) and open alerts, always scoped to one organisation and the caller's teams.

The dashboard calls these with its Scope's primitives (organisation id, visible team ids,
org-wide or not), so alerts never import the dashboard.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import F, QuerySet
from django.utils import timezone

from greenkpi.alerts import forecast
from greenkpi.alerts.lifecycle import State
from greenkpi.alerts.models import Alert, Budget, BudgetScope, Metric
from greenkpi.alerts.periods import hour_floor, period_bounds, period_label
from greenkpi.inventory.models import Host
from greenkpi.kpis.models import HourlyRollup, RollupWindow
from greenkpi.kpis.selectors import first_rollup_hour, hourly_totals

# A host that contributed to a budget and has been silent this long makes its status incomplete.
SILENT_AFTER = timedelta(minutes=15)
METRIC_COLUMN = {
    Metric.ENERGY_KWH: "energy_kwh",
    Metric.CO2E_KG: "co2e_kg",
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
    data_hours: int = 1  # hours with rollups in [min(period start, as_of - 7 d), as_of)

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


def _scope_filter(budget: Budget) -> dict[str, object]:
    if budget.scope == BudgetScope.TEAM:
        return {"team_id": budget.team_id}
    if budget.scope == BudgetScope.MODEL:
        return {"model_key": budget.model_key}
    return {}


def budget_status(*, budget: Budget, now: datetime | None = None) -> BudgetStatus:
    """Consumption to the last whole hour, forecast to the period end, crossing dates, gaps.

    Three small queries: hourly totals, the first rollup hour, and completeness (see BudgetStatus).
    """
    now = now or timezone.now()
    period_start, period_end = period_bounds(budget.period, now)
    as_of = hour_floor(now)
    scope = _scope_filter(budget)
    first_data = first_rollup_hour(organisation_id=budget.organisation_id, **scope)
    method = forecast.choose_method(budget.forecast_method, as_of=as_of, first_data=first_data)
    rate_start = min(period_start, as_of - forecast.RATE_WINDOW)
    if method is forecast.Method.WEEKDAY_PROFILE:
        rate_start = min(
            rate_start, forecast.day_floor(as_of) - timedelta(weeks=forecast.PROFILE_WEEKS)
        )
    frame = hourly_totals(
        organisation_id=budget.organisation_id,
        start=rate_start,
        end=as_of,
        currency=budget.currency if budget.metric == Metric.COST else "",
        **scope,
    )
    column = METRIC_COLUMN[Metric(budget.metric)]
    hours = [h.to_pydatetime() for h in frame["hour"]]
    hourly = dict(zip(hours, frame[column].tolist(), strict=True))
    result = forecast.budget_forecast(
        hourly,
        amount=budget.amount,
        period_start=period_start,
        period_end=period_end,
        as_of=as_of,
        thresholds_pct=sorted({*budget.thresholds_pct, 100}),  # the crossing date is 100 %'s
        first_data=first_data,
        method=method,
    )
    in_period = frame[frame["hour"] >= period_start]
    uncosted = (
        float(in_period["uncosted_energy_kwh"].sum()) if budget.metric == Metric.COST else 0.0
    )
    silent = silent_hosts(
        organisation_id=budget.organisation_id, since=as_of - forecast.RATE_WINDOW, now=now, **scope
    )
    pending = RollupWindow.objects.filter(
        organisation_id=budget.organisation_id,
        hour__gte=period_start,
        hour__lt=as_of,
        version__gt=F("computed_version"),
    ).count()
    return BudgetStatus(
        budget=budget,
        unit=budget.unit,
        period_label=period_label(budget.period, period_start),
        forecast=result,
        silent_hosts=tuple(h for h, _ in silent),
        incomplete_since=min((seen for _, seen in silent), default=None),
        pending_recompute_hours=pending,
        uncosted_energy_kwh=uncosted,
        data_hours=int((frame["hour"] >= min(period_start, as_of - forecast.RATE_WINDOW)).sum()),
    )


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
    fed = HourlyRollup.objects.filter(organisation_id=organisation_id, hour__gte=since)
    if team_id is not None:
        fed = fed.filter(team_id=team_id)
    if model_key is not None:
        fed = fed.filter(model_key=model_key)
    return list(
        Host.objects.filter(
            organisation_id=organisation_id,
            pk__in=fed.values("host_id").distinct(),
            last_seen__lt=now - silent_after,
        )
        .order_by("hostname")
        .values_list("hostname", "last_seen")
    )


def budgets_visible(
    *, organisation_id: int, team_ids: Collection[int], org_wide: bool
) -> QuerySet[Budget]:
    """Budgets a user may see: all of the organisation when org-wide, else their teams' budgets
    (organisation and model budgets include other teams' use, so team members do not see them)."""
    budgets = Budget.objects.filter(organisation_id=organisation_id).select_related("team")
    if not org_wide:
        budgets = budgets.filter(scope=BudgetScope.TEAM, team_id__in=list(team_ids))
    return budgets.order_by("name", "pk")


def budget_statuses(
    *,
    organisation_id: int,
    team_ids: Collection[int],
    org_wide: bool,
    now: datetime | None = None,
) -> list[BudgetStatus]:
    """The status of every visible budget (three queries per budget)."""
    now = now or timezone.now()
    return [
        budget_status(budget=b, now=now)
        for b in budgets_visible(
            organisation_id=organisation_id, team_ids=team_ids, org_wide=org_wide
        )
    ]


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
