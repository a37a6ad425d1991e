"""The overview page: resolve the scope, call selectors, render. No computation lives here (as in
every area: views are thin, selectors read, figures draw)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.http import urlencode

from greenkpi.dashboard.common.charts import Chart, respond
from greenkpi.dashboard.common.forms import TokenCreateForm
from greenkpi.dashboard.common.freshness import freshness
from greenkpi.dashboard.common.onboarding import collector_commands
from greenkpi.dashboard.common.pages import chart_query, dashboard_view, page_context, teams_filter
from greenkpi.dashboard.overview import figures, selectors
from greenkpi.inventory.access import scope_for
from greenkpi.lib.periods import period_from_query
from greenkpi.recommendations.selectors import quarter_start, saved_since

ENERGY_BY_TEAM = Chart(
    "energy-by-team",
    figures.energy_by_team_daily,
    tuple(selectors.TEAM_DAILY_COLUMNS),
    local_days=("day",),
)


@dashboard_view
def overview(request: HttpRequest) -> HttpResponse:
    scope = scope_for(request.user, request.GET.get("org"))
    period = period_from_query(request.GET, default="30d", tz=scope.organisation.tz)
    teams = teams_filter(request, scope)
    context = page_context(
        request,
        scope,
        period,
        tiles=selectors.overview(scope, period, [t.pk for t in teams] or None),
        freshness=freshness(scope),
        selected_teams={t.pk for t in teams},
        all_teams_href=f"?{urlencode({'org': scope.organisation.slug, **period.query()})}",
        chart_query=chart_query(scope, period, teams),
        commands=collector_commands(settings.SITE_URL),
        token_form=TokenCreateForm(scope=scope) if scope.can_manage_tokens else None,
        # The savings ledger (measured, docs/advice.md): one aggregate, whatever the range.
        saved=saved_since(
            organisation_id=scope.organisation.pk,
            team_ids=None if scope.org_wide else scope.team_ids,
            since=quarter_start(period.end),
        ),
    )
    return render(request, "dashboard/overview.html", context)


@dashboard_view
def energy_by_team_chart(request: HttpRequest, fmt: str) -> HttpResponse:
    scope = scope_for(request.user, request.GET.get("org"))
    period = period_from_query(request.GET, default="30d", tz=scope.organisation.tz)
    teams = teams_filter(request, scope)
    energy = selectors.team_energy_daily(scope, period, [t.pk for t in teams] or None)
    return respond(ENERGY_BY_TEAM, energy, fmt, f"energy-by-team-{scope.organisation.slug}", period)
