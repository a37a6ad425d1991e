"""Teams: every visible team with its totals, and one team's page (its models and runs)."""

from __future__ import annotations

from collections.abc import Collection

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.http import urlencode

from greenkpi.dashboard.budgets import selectors as selectors_budgets
from greenkpi.dashboard.common.charts import Chart, respond
from greenkpi.dashboard.common.freshness import freshness
from greenkpi.dashboard.common.pages import chart_query, dashboard_view, page_context
from greenkpi.dashboard.teams import figures, selectors
from greenkpi.inventory.access import Scope, scope_for, team_for
from greenkpi.lib.periods import period_from_query

TEAM_MODELS = Chart(
    "models",
    figures.team_energy_by_model,
    tuple(selectors.TEAM_RUN_COLUMNS),
    time_axis=False,
    # Day buckets for periods of whole days, else hours (already UTC): selectors.team_energy_by_run.
    local_days=("first_window_utc", "last_window_utc"),
    day_grain=lambda period: period.days is not None,
)


@dashboard_view
def teams(request: HttpRequest) -> HttpResponse:
    scope = scope_for(request.user, request.GET.get("org"))
    period = period_from_query(request.GET, default="30d", tz=scope.organisation.tz)
    context = page_context(
        request,
        scope,
        period,
        totals=selectors.team_totals(scope, period),
        budgets_by_team=_budgets_by_team(scope, scope.team_ids),
        freshness=freshness(scope),
        period_query=urlencode(period.query()),
    )
    return render(request, "dashboard/teams.html", context)


@dashboard_view
def team(request: HttpRequest, team_id: int) -> HttpResponse:
    scope, team_obj = team_for(request.user, team_id)
    period = period_from_query(request.GET, default="30d", tz=scope.organisation.tz)
    runs = selectors.team_energy_by_run(team_obj, period)
    total = next(t for t in selectors.team_totals(scope, period) if t.team.pk == team_obj.pk)
    context = page_context(
        request,
        scope,
        period,
        team=team_obj,
        total=total,
        budgets=_budgets_by_team(scope, [team_obj.pk]).get(team_obj.pk, []),
        runs=runs.head(100).itertuples(index=False),
        run_count=len(runs),
        chart_query=urlencode(period.query()),
        energy_query=chart_query(scope, period, [team_obj]),
    )
    return render(request, "dashboard/team.html", context)


def _budgets_by_team(
    scope: Scope, team_ids: Collection[int]
) -> dict[int, list[selectors_budgets.BudgetRow]]:
    """The visible budgets of these teams (team and team-model budgets), with their status now.
    Only theirs are computed: organisation budgets are not shown here."""
    out: dict[int, list[selectors_budgets.BudgetRow]] = {}
    for row in selectors_budgets.budget_rows(scope, team_ids=team_ids):
        if row.budget.team_id is not None:
            out.setdefault(row.budget.team_id, []).append(row)
    return out


@dashboard_view
def team_models_chart(request: HttpRequest, team_id: int, fmt: str) -> HttpResponse:
    scope, team_obj = team_for(request.user, team_id)
    period = period_from_query(request.GET, default="30d", tz=scope.organisation.tz)
    frame = selectors.team_energy_by_run(team_obj, period)
    return respond(
        TEAM_MODELS, frame, fmt, f"models-{scope.organisation.slug}-{team_obj.slug}", period
    )
