"""Reads behind the budget and alert pages: visible budgets with their status, the burn-up frame of
one budget, alert rules, open / recently resolved alerts and active silences, all through a Scope.

The numbers themselves come from ``greenkpi.alerts.selectors`` (budget_status: consumption,
forecast, crossings, completeness), so a page, an alert and its notification never disagree.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import accumulate

import pandas as pd
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone

from greenkpi.alerts import forecast
from greenkpi.alerts import selectors as alert_selectors
from greenkpi.alerts.models import Alert, Budget
from greenkpi.inventory.access import Scope
from greenkpi.lib.periods import DAY
from greenkpi.lib.periods import naive_utc as _naive


@dataclass(frozen=True)
class BudgetRow:
    """One budget as the list and detail pages show it."""

    status: alert_selectors.BudgetStatus
    colour: str  # "ok", "warn" (forecast over the amount) or "over" (amount already used)
    method: str  # how the forecast was made, in words
    manageable: bool

    @property
    def budget(self) -> Budget:
        return self.status.budget

    @property
    def consumed_pct(self) -> float:
        return self.status.consumed_share * 100

    @property
    def forecast_pct(self) -> float:
        return self.status.forecast_share * 100

    @property
    def crossing_reached(self) -> bool:
        crossing = self.status.forecast.crossing(100)
        return bool(crossing and crossing.reached)


def can_manage_budget(scope: Scope, budget: Budget) -> bool:
    """Org managers manage every budget; team managers their teams' budgets (no query)."""
    return scope.manages_org or (
        budget.team_id is not None and budget.team_id in scope.managed_team_ids
    )


def can_manage_team(scope: Scope, team_id: int | None) -> bool:
    """Whether the user may act on something owned by ``team_id`` (None: the organisation)."""
    return scope.manages_org or (team_id is not None and team_id in scope.managed_team_ids)


def status_colour(status: alert_selectors.BudgetStatus) -> str:
    """Red once the amount is used, amber when the forecast passes it, green otherwise."""
    if status.consumed_share >= 1.0:
        return "over"
    if status.forecast.exceeds:
        return "warn"
    return "ok"


WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def forecast_method(status: alert_selectors.BudgetStatus) -> str:
    """The method that produced the forecast, with the numbers it used, in one line."""
    fc = status.forecast
    if fc.method == forecast.Method.WEEKDAY_PROFILE and fc.weekday_profile:
        days = ", ".join(
            f"{day} {value:.3g}" for day, value in zip(WEEKDAYS, fc.weekday_profile, strict=False)
        )
        return f"weekday profile (4-week mean): {days} {status.unit}/day"
    return f"recent rate: trailing {fc.rate_window_h:g} h, {fc.rate_per_day:.4g} {status.unit}/day"


def budgets_visible(scope: Scope) -> QuerySet[Budget]:
    return alert_selectors.budgets_visible(
        organisation_id=scope.organisation.pk, team_ids=scope.team_ids, org_wide=scope.org_wide
    )


MODEL_KEYS_SEEN = timedelta(days=90)


def team_model_keys(scope: Scope, now: datetime | None = None) -> dict[int, list[str]]:
    """Model keys a team manager may budget, per team they manage: the team's registered models
    (workloads MLModel) and the keys seen in its daily rollups of the last 90 days. Two queries."""
    from greenkpi.kpis.models import DailyRollup
    from greenkpi.workloads.models import MLModel

    team_ids = sorted(scope.managed_team_ids)
    if not team_ids:
        return {}
    now = now or timezone.now()
    keys: dict[int, set[str]] = {t: set() for t in team_ids}
    for team_id, key in MLModel.objects.filter(team_id__in=team_ids).values_list("team_id", "key"):
        keys[team_id].add(key)
    seen = (
        DailyRollup.objects.filter(
            organisation_id=scope.organisation.pk,
            team_id__in=team_ids,
            day__gte=(now - MODEL_KEYS_SEEN).date(),
        )
        .exclude(model_key="")
        .values_list("team_id", "model_key")
        .distinct()
        .order_by()
    )
    for team_id, key in seen:
        keys[team_id].add(key)
    return {t: sorted(k) for t, k in keys.items()}


def budget_for(scope: Scope, budget_id: int) -> Budget:
    """A budget the user may see, else 404 (another team's or tenant's looks like none at all)."""
    budget = budgets_visible(scope).filter(pk=budget_id).first()
    if budget is None:
        raise Http404("no such budget")
    return budget


def _row(scope: Scope, status: alert_selectors.BudgetStatus) -> BudgetRow:
    return BudgetRow(
        status=status,
        colour=status_colour(status),
        method=forecast_method(status),
        manageable=can_manage_budget(scope, status.budget),
    )


def budget_row(scope: Scope, budget: Budget, now: datetime | None = None) -> BudgetRow:
    return _row(scope, alert_selectors.budget_status(budget=budget, now=now))


def budget_rows(
    scope: Scope, now: datetime | None = None, *, team_ids: Collection[int] | None = None
) -> list[BudgetRow]:
    """Every visible budget with its status, batched: the same few queries for 1 or 100 budgets.
    With ``team_ids``, only the budgets of those teams (team and team-model budgets): the team
    pages need no organisation budget, whose year of days is the costliest read."""
    budgets = budgets_visible(scope)
    if team_ids is not None:
        budgets = budgets.filter(team_id__in=sorted(team_ids))
    statuses = alert_selectors.statuses_of(list(budgets), now=now)
    return [_row(scope, status) for status in statuses]


# --- The burn-up chart of one budget ---------------------------------------------------------


def budget_burn(row: BudgetRow, now: datetime | None = None) -> pd.DataFrame:
    """Cumulative consumption at each UTC day's end of the current period, then the forecast.

    Rows: the period start (0), each day end up to ``as_of`` (the last whole hour, as the status),
    ``as_of`` itself, and the period end (forecast only). Columns (CSV order): ``time_utc`` (naive
    UTC), ``day_consumed`` (the day's use, measured rows only), ``cumulative`` (measured),
    ``forecast_cumulative`` (from ``as_of`` to the period end), ``budget``, one
    ``threshold_<p>pct`` per threshold, and ``unit``. Figure extras go in ``frame.attrs``: unit,
    amount, thresholds, the 100 % crossing, the method and the alert intervals to shade.
    One query (the budget's alerts that fired in the period): the consumption is the status's.
    """
    budget, status = row.budget, row.status
    fc = status.forecast
    now = now or timezone.now()
    period_start, period_end, as_of = fc.period_start, fc.period_end, fc.as_of
    # Day ends (naive UTC) from the period start to as_of: the use of [day, day + 1) is plotted
    # at day + 1. Plain Python over at most a year of days: pandas and numpy calls on such small
    # inputs cost more than the loop (bench/dashboard.py, the organisation's year budget).
    start_n, as_of_n = _naive(period_start), _naive(as_of)
    ends: list[datetime] = []
    end = start_n + DAY
    while end <= as_of_n:
        ends.append(end)
        end += DAY
    if not ends or ends[-1] != as_of_n:
        ends.append(as_of_n)
    # The status's own buckets (whole days, today's hours): each counts towards the first day end
    # at or after its end. Several buckets of one day end (today's hours) are summed by pandas'
    # grouped sum, as before (its compensated sum is the figure the chart and CSV have shown).
    slots: list[int] = []
    values: list[float] = []
    for bucket_start, bucket_end, v in status.buckets:
        if period_start <= bucket_start and bucket_end <= as_of:
            slots.append(bisect_left(ends, _naive(bucket_end)))
            values.append(v)
    per_end: dict[int, float] = {}
    if len(set(slots)) == len(slots):  # one bucket per day end: the sum is 0.0 + it (NaN: 0)
        per_end = {s: 0.0 if v != v else 0.0 + v for s, v in zip(slots, values, strict=True)}
    elif slots:
        per_end = pd.Series(values, index=slots).groupby(level=0).sum().to_dict()
    day_values = [float(per_end.get(i, 0.0)) for i in range(len(ends))]
    cumulative = list(accumulate(day_values))
    nan = float("nan")
    times = [start_n, *ends, _naive(period_end)]
    columns: dict[str, object] = {
        "time_utc": pd.to_datetime(times),
        "day_consumed": [nan, *day_values, nan],
        "cumulative": [0.0, *cumulative, nan],
        "forecast_cumulative": [nan] * (len(times) - 2) + [fc.consumed, fc.forecast],
        "budget": budget.amount,
    }
    thresholds = sorted(set(budget.thresholds_pct))
    for pct in thresholds:
        columns[f"threshold_{pct}pct"] = budget.amount * pct / 100
    columns["unit"] = status.unit
    frame = pd.DataFrame(columns)
    crossing = fc.crossing(100)
    frame.attrs.update(
        unit=status.unit,
        amount=budget.amount,
        thresholds=thresholds,
        period=(_naive(period_start), _naive(period_end)),
        as_of=_naive(as_of),
        crossing_at=_naive(crossing.at) if crossing and crossing.at else None,
        crossing_reached=bool(crossing and crossing.reached),
        method=row.method,
        method_key=str(fc.method),
        alert_intervals=alert_intervals(budget, period_start, period_end, now),
    )
    return frame


def burn_csv_columns(frame: pd.DataFrame) -> tuple[str, ...]:
    return tuple(frame.columns)


def alert_intervals(
    budget: Budget, start: datetime, end: datetime, now: datetime
) -> list[tuple[datetime, datetime, str]]:
    """(fired, resolved or now, summary) of the budget's alerts that fired inside [start, end)."""
    alerts = (
        Alert.objects.filter(rule__budget=budget, fired_at__isnull=False, fired_at__lt=end)
        .filter(Q(resolved_at__isnull=True) | Q(resolved_at__gte=start))
        .order_by("fired_at", "pk")
        .values_list("fired_at", "resolved_at", "summary", "labels")
    )
    out = []
    for fired, resolved, summary, labels in alerts:
        what = f"{labels.get('threshold')} %" if labels.get("threshold") else "forecast"
        out.append((_naive(max(fired, start)), _naive(resolved or now), summary or what))
    return out


def budget_alerts(budget: Budget, limit: int = 20) -> list[Alert]:
    """The budget's most recent alerts (open and resolved), newest first."""
    return list(
        Alert.objects.filter(rule__budget=budget)
        .select_related("rule", "acknowledged_by")
        .order_by("-active_since", "-pk")[:limit]
    )
