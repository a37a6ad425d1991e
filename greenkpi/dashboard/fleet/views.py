"""Fleet: the hosts list, one host's health and charts, and the collector tokens page."""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from greenkpi.dashboard.common.charts import Chart, respond
from greenkpi.dashboard.common.forms import TokenCreateForm
from greenkpi.dashboard.common.onboarding import collector_commands
from greenkpi.dashboard.common.pages import dashboard_view, page_context
from greenkpi.dashboard.fleet import figures, selectors
from greenkpi.inventory.access import scope_for
from greenkpi.inventory.services import token_create
from greenkpi.kpis.read.hosts import host_for
from greenkpi.lib.periods import period_from_query

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
HOST_CHARTS = {chart.key: chart for chart in (HOST_POWER, HOST_UTILIZATION)}


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
    period = period_from_query(request.GET, default="24h", tz=scope.organisation.tz)
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
    scope, host_obj = host_for(request.user, host_id)
    period = period_from_query(request.GET, default="24h", tz=scope.organisation.tz)
    frame = selectors.host_series(host_obj, period)
    return respond(HOST_CHARTS[chart], frame, fmt, f"{chart}-{host_obj.hostname}", period)


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
