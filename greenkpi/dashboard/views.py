"""Dashboard views: resolve the scope, call selectors, render. No computation lives here."""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from greenkpi.dashboard import figures, selectors, selectors_budgets
from greenkpi.dashboard.charts import Chart, respond
from greenkpi.dashboard.forms import TokenCreateForm
from greenkpi.dashboard.onboarding import collector_commands
from greenkpi.dashboard.pages import chart_query, dashboard_view, page_context, teams_filter
from greenkpi.inventory.access import Scope, scope_for, team_for
from greenkpi.inventory.services import token_create
from greenkpi.kpis.read.hosts import host_for
from greenkpi.lib.periods import period_from_query

ENERGY_BY_TEAM = Chart(
    "energy-by-team", figures.energy_by_team_daily, tuple(selectors.TEAM_DAILY_COLUMNS)
)
HOST_POWER = Chart(
    "power",
    figures.host_power,
    ("time_utc", "device_id", "device", "kind", "power_w", "power_peak_w", "windows"),
)
HOST_UTILIZATION = Chart(
    "utilization",
    figures.host_utilization,
    ("time_utc", "device_id", "device", "kind", "util_pct", "windows"),
)
TEAM_MODELS = Chart(
    "models", figures.team_energy_by_model, tuple(selectors.TEAM_RUN_COLUMNS), time_axis=False
)
HOST_CHARTS = {chart.key: chart for chart in (HOST_POWER, HOST_UTILIZATION)}


@dashboard_view
def overview(request: HttpRequest) -> HttpResponse:
    scope = scope_for(request.user, request.GET.get("org"))
    period = period_from_query(request.GET, default="30d")
    teams = teams_filter(request, scope)
    context = page_context(
        request,
        scope,
        period,
        tiles=selectors.overview(scope, period, [t.pk for t in teams] or None),
        freshness=selectors.freshness(scope),
        selected_teams={t.pk for t in teams},
        all_teams_href=f"?{urlencode({'org': scope.organisation.slug, **period.query()})}",
        chart_query=chart_query(scope, period, teams),
        commands=collector_commands(settings.SITE_URL),
        token_form=TokenCreateForm(scope=scope) if scope.can_manage_tokens else None,
    )
    return render(request, "dashboard/overview.html", context)


@dashboard_view
def energy_by_team_chart(request: HttpRequest, fmt: str) -> HttpResponse:
    scope = scope_for(request.user, request.GET.get("org"))
    period = period_from_query(request.GET, default="30d")
    teams = teams_filter(request, scope)
    energy = selectors.team_energy_daily(scope, period, [t.pk for t in teams] or None)
    return respond(ENERGY_BY_TEAM, energy, fmt, f"energy-by-team-{scope.organisation.slug}", period)


@dashboard_view
def fleet(request: HttpRequest) -> HttpResponse:
    scope = scope_for(request.user, request.GET.get("org"))
    context = page_context(
        request,
        scope,
        None,
        fleet=selectors.fleet(scope, request.GET.get("page")),
        commands=collector_commands(settings.SITE_URL),
        token_form=TokenCreateForm(scope=scope) if scope.can_manage_tokens else None,
    )
    return render(request, "dashboard/fleet.html", context)


@dashboard_view
def host(request: HttpRequest, host_id: int) -> HttpResponse:
    scope, host_obj = host_for(request.user, host_id)
    period = period_from_query(request.GET, default="24h")
    context = page_context(
        request,
        scope,
        period,
        health=selectors.host_detail(host_obj),
        chart_query=urlencode(period.query()),
    )
    return render(request, "dashboard/host.html", context)


@dashboard_view
def host_chart(request: HttpRequest, host_id: int, chart: str, fmt: str) -> HttpResponse:
    if chart not in HOST_CHARTS:
        raise Http404("no such chart")
    _, host_obj = host_for(request.user, host_id)
    period = period_from_query(request.GET, default="24h")
    frame = selectors.host_series(host_obj, period)
    return respond(HOST_CHARTS[chart], frame, fmt, f"{chart}-{host_obj.hostname}", period)


@dashboard_view
def teams(request: HttpRequest) -> HttpResponse:
    scope = scope_for(request.user, request.GET.get("org"))
    period = period_from_query(request.GET, default="30d")
    context = page_context(
        request,
        scope,
        period,
        totals=selectors.team_totals(scope, period),
        budgets_by_team=_budgets_by_team(scope),
        freshness=selectors.freshness(scope),
        period_query=urlencode(period.query()),
    )
    return render(request, "dashboard/teams.html", context)


@dashboard_view
def team(request: HttpRequest, team_id: int) -> HttpResponse:
    scope, team_obj = team_for(request.user, team_id)
    period = period_from_query(request.GET, default="30d")
    runs = selectors.team_energy_by_run(team_obj, period)
    total = next(t for t in selectors.team_totals(scope, period) if t.team.pk == team_obj.pk)
    context = page_context(
        request,
        scope,
        period,
        team=team_obj,
        total=total,
        budgets=_budgets_by_team(scope).get(team_obj.pk, []),
        runs=runs.head(100).itertuples(index=False),
        run_count=len(runs),
        chart_query=urlencode(period.query()),
        energy_query=chart_query(scope, period, [team_obj]),
    )
    return render(request, "dashboard/team.html", context)


def _budgets_by_team(scope: Scope) -> dict[int, list[selectors_budgets.BudgetRow]]:
    """The visible budgets of each team (team and model budgets), with their status now."""
    out: dict[int, list[selectors_budgets.BudgetRow]] = {}
    for row in selectors_budgets.budget_rows(scope):
        if row.budget.team_id is not None:
            out.setdefault(row.budget.team_id, []).append(row)
    return out


@dashboard_view
def team_models_chart(request: HttpRequest, team_id: int, fmt: str) -> HttpResponse:
    scope, team_obj = team_for(request.user, team_id)
    period = period_from_query(request.GET, default="30d")
    frame = selectors.team_energy_by_run(team_obj, period)
    return respond(
        TEAM_MODELS, frame, fmt, f"models-{scope.organisation.slug}-{team_obj.slug}", period
    )


@never_cache  # the page may carry a secret shown once
@require_http_methods(["GET", "POST"])
@dashboard_view
def tokens(request: HttpRequest) -> HttpResponse:
    scope = scope_for(request.user, request.GET.get("org") or request.POST.get("org"))
    if not scope.can_manage_tokens:
        raise Http404("no such page")  # viewers: as if it did not exist
    created = secret = None
    form = TokenCreateForm(request.POST or None, scope=scope)
    if request.method == "POST" and form.is_valid():
        created, secret = token_create(
            organisation=scope.organisation,
            name=form.cleaned_data["name"],
            default_team=form.team(),
            created_by=request.user,
        )
        form = TokenCreateForm(scope=scope)
    context = page_context(
        request,
        scope,
        None,
        form=form,
        created=created,
        secret=secret,
        tokens=selectors.tokens_visible(scope),
        commands=collector_commands(settings.SITE_URL),
    )
    return render(request, "dashboard/tokens.html", context)
