"""Carbon: CO2e (location and market), embodied, renewable share, cost, month over month per
team; grid intensity by hour and best hours. (The monthly ESG report is in reports/.)

Thin, like every page: scope -> selectors (carbon/selectors, days, grid, tiles) -> render /
figure / CSV.
"""

from __future__ import annotations

import pandas as pd
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import URLPattern, path
from django.utils.http import urlencode

from greenkpi.dashboard.carbon import figures as figures_carbon
from greenkpi.dashboard.carbon import grid, tiles
from greenkpi.dashboard.carbon import selectors as sc
from greenkpi.dashboard.common.charts import (
    csv_response,
    figure_response,
    local_day_range,
    local_days_as_utc,
)
from greenkpi.dashboard.common.pages import chart_query, dashboard_view, page_context, teams_filter
from greenkpi.inventory.access import Scope, scope_for
from greenkpi.inventory.models import Team
from greenkpi.lib.periods import Period, period_from_query, previous_period

RUN_COLUMNS = (
    "team",
    "model",
    "run",
    "site",
    "start_hour_utc",
    "energy_kwh",
    "current_kgco2e",
    "best_hour_here_utc",
    "best_hour_here_kgco2e",
    "best_site",
    "best_site_hour_utc",
    "best_anywhere_kgco2e",
)


def _inputs(
    request: HttpRequest, *, by_day: bool = False
) -> tuple[Scope, Period, list[Team], pd.DataFrame]:
    """The scope, period, picked teams and their carbon frame (per day only for the chart)."""
    scope = scope_for(request.user, request.GET.get("org"))
    period = period_from_query(request.GET, default="30d", tz=scope.organisation.tz)
    teams = teams_filter(request, scope)
    picked = [t.pk for t in teams] or None
    frame = sc.carbon_frame(scope, period.start, period.end, picked, by_day=by_day)
    return scope, period, teams, frame


@dashboard_view
def carbon(request: HttpRequest) -> HttpResponse:
    scope, period, teams, frame = _inputs(request)
    previous = previous_period(period)
    picked = [t.pk for t in teams] or None
    before = sc.carbon_frame(scope, previous.start, previous.end, picked, by_day=False)
    context = page_context(
        request,
        scope,
        period,
        summary=tiles.summary(scope, frame, before, previous, picked=bool(teams)),
        rows=tiles.display_rows(sc.team_table(scope, frame)),
        caption=tiles.caption(frame),
        grain=sc.series_grain(period),
        selected_teams={t.pk for t in teams},
        all_teams_href=f"?{urlencode({'org': scope.organisation.slug, **period.query()})}",
        chart_query=chart_query(scope, period, teams),
    )
    return render(request, "dashboard/carbon.html", context)


@dashboard_view
def carbon_co2e_chart(request: HttpRequest, fmt: str) -> HttpResponse:
    scope, period, _, frame = _inputs(request, by_day=True)
    series = sc.co2e_series(scope, frame, period)
    if fmt == "csv":
        name = f"co2e-by-team-{scope.organisation.slug}.csv"
        series = local_days_as_utc(series, ("period_utc",), period.tz)
        return csv_response(series, tuple(sc.SERIES_COLUMNS), name)
    figure = figures_carbon.co2e_by_team(
        series,
        x_range=local_day_range(period),
        grain=sc.series_grain(period),
        caption=tiles.caption(frame),
        zone=period.zone_name,
    )
    return figure_response(figure)


@dashboard_view
def carbon_teams_csv(request: HttpRequest) -> HttpResponse:
    scope, _, _, frame = _inputs(request)
    table = sc.team_table(scope, frame)
    return csv_response(
        table, tuple(sc.TEAM_COLUMNS), f"carbon-by-team-{scope.organisation.slug}.csv"
    )


@dashboard_view
def carbon_grid(request: HttpRequest) -> HttpResponse:
    scope = scope_for(request.user, request.GET.get("org"))
    period = period_from_query(request.GET, default="30d", tz=scope.organisation.tz)
    teams = teams_filter(request, scope)
    profiles = grid.site_profiles(scope, period)
    savings = grid.flexible_savings(scope, period, profiles, [t.pk for t in teams] or None)
    context = page_context(
        request,
        scope,
        period,
        profiles=profiles,
        savings=savings,
        assumptions=grid.ASSUMPTIONS,
        chart_query=chart_query(scope, period, teams),
    )
    return render(request, "dashboard/carbon_grid.html", context)


@dashboard_view
def carbon_grid_site(request: HttpRequest, site_id: int, fmt: str) -> HttpResponse:
    scope = scope_for(request.user, request.GET.get("org"))
    period = period_from_query(request.GET, default="30d", tz=scope.organisation.tz)
    profile = next((p for p in grid.site_profiles(scope, period) if p.site.pk == site_id), None)
    if profile is None:
        raise Http404("no such site")
    frame = grid.profile_frame(profile)
    if fmt == "csv":
        name = f"grid-by-hour-{scope.organisation.slug}-{profile.site.name}.csv"
        return csv_response(frame, tuple(grid.PROFILE_COLUMNS), name)
    return figure_response(figures_carbon.grid_profile(frame, caption=profile.detail))


@dashboard_view
def carbon_grid_runs_csv(request: HttpRequest) -> HttpResponse:
    scope = scope_for(request.user, request.GET.get("org"))
    period = period_from_query(request.GET, default="30d", tz=scope.organisation.tz)
    teams = teams_filter(request, scope)
    profiles = grid.site_profiles(scope, period)
    savings = grid.flexible_savings(scope, period, profiles, [t.pk for t in teams] or None)
    frame = grid.shifts_frame(savings)
    return csv_response(frame, RUN_COLUMNS, f"flexible-runs-{scope.organisation.slug}.csv")


urlpatterns: list[URLPattern] = [
    path("carbon/", carbon, name="carbon"),
    # Formats spelled out: this module is imported before urls.py registers its converters.
    path("carbon/co2e-by-team.json", carbon_co2e_chart, {"fmt": "json"}, name="carbon-co2e-json"),
    path("carbon/co2e-by-team.csv", carbon_co2e_chart, {"fmt": "csv"}, name="carbon-co2e-csv"),
    path("carbon/teams.csv", carbon_teams_csv, name="carbon-teams-csv"),
    path("carbon/grid/", carbon_grid, name="carbon-grid"),
    path(
        "carbon/grid/sites/<int:site_id>.json",
        carbon_grid_site,
        {"fmt": "json"},
        name="carbon-grid-site-json",
    ),
    path(
        "carbon/grid/sites/<int:site_id>.csv",
        carbon_grid_site,
        {"fmt": "csv"},
        name="carbon-grid-site-csv",
    ),
    path("carbon/grid/runs.csv", carbon_grid_runs_csv, name="carbon-grid-runs-csv"),
]
