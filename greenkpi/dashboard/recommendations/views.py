"""The Recommendations page: one card per finding, ranked by estimated annual saving, with its
evidence, owner, tactic and (once booked) its realised saving; managers of the owning team accept,
dismiss or snooze a card with a reason (docs/advice.md). Scoped like every page: findings of teams
the person cannot see are not listed, and deciding on one is a 404."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.views.decorators.http import require_POST

from greenkpi.dashboard.common.pages import (
    dashboard_view,
    org_redirect,
    page_context,
    request_scope,
)
from greenkpi.inventory.access import Scope, scope_for
from greenkpi.kpis import labels
from greenkpi.recommendations import selectors, services
from greenkpi.recommendations.models import State


@dashboard_view
def recommendations(request: HttpRequest) -> HttpResponse:
    scope = scope_for(request.user, request.GET.get("org"))
    return _page(request, scope)


def _page(request: HttpRequest, scope: Scope, error: str = "", status: int = 200) -> HttpResponse:
    cards = selectors.cards(scope)
    parked = selectors.cards(scope, states=(State.DISMISSED, State.SNOOZED))
    context = page_context(
        request,
        scope,
        None,
        cards=[(card, selectors.can_decide(scope, card)) for card in cards],
        parked=[(card, selectors.can_decide(scope, card)) for card in parked],
        location=labels.SCOPE2_LOCATION,
        market=labels.SCOPE2_MARKET,
        error=error,
    )
    return render(request, "dashboard/recommendations.html", context, status=status)


@require_POST
@dashboard_view
def recommendation_decide(request: HttpRequest, finding_id: int) -> HttpResponse:
    scope = request_scope(request)
    finding = selectors.findings_visible(scope).filter(pk=finding_id).first()
    if finding is None:
        raise Http404("no such finding")
    if not selectors.can_decide(scope, finding):
        raise Http404("no such finding")  # pages: never 403 (nothing to probe)
    until = None
    if request.POST.get("snoozed_until"):
        try:
            day = date.fromisoformat(request.POST["snoozed_until"])
        except ValueError:
            return _refused(request, scope, "snoozed_until: a date YYYY-MM-DD")
        until = datetime.combine(day, time(), UTC)
    try:
        services.decide(
            finding=finding,
            state=request.POST.get("state", ""),
            reason=request.POST.get("reason", ""),
            snoozed_until=until,
            user=request.user,  # type: ignore[arg-type]
        )
    except services.DecisionError as exc:
        return _refused(request, scope, f"{exc.field}: {exc}")
    return org_redirect("recommendations", scope)


def _refused(request: HttpRequest, scope: Scope, reason: str) -> HttpResponse:
    return _page(request, scope, error=reason, status=400)


urlpatterns = [
    path("recommendations/", recommendations, name="recommendations"),
    path(
        "recommendations/<int:finding_id>/decide/",
        recommendation_decide,
        name="recommendation-decide",
    ),
]
