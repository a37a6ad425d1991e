"""What every dashboard view shares: the login/error wrapper, the base layout's context, and the
URL filters (``org``, ``team``, period) read the same way on every page."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode

from greenkpi.inventory.access import NoOrganisation, Scope, scope_for
from greenkpi.inventory.models import Team
from greenkpi.kpis.read import freshness
from greenkpi.lib.periods import PRESETS, BadPeriod, Period

View = Callable[..., HttpResponse]


def dashboard_view(view: View) -> View:
    """Login required; a user without organisation gets a page saying so; a bad range a 400.
    The request's rollup reads share one freshness query per range (``freshness.batch``)."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            with freshness.batch():
                return view(request, *args, **kwargs)
        except NoOrganisation:
            return render(request, "dashboard/no_organisation.html")
        except BadPeriod as exc:
            return render(request, "dashboard/bad_request.html", {"reason": str(exc)}, status=400)

    return wrapper


def teams_filter(request: HttpRequest, scope: Scope) -> list[Team]:
    """``?team=slug`` (repeatable), each a visible team of the scope; unknown → 404."""
    return [scope.team_by_slug(slug) for slug in dict.fromkeys(request.GET.getlist("team"))]


def page_context(
    request: HttpRequest, scope: Scope, period: Period | None, **context: Any
) -> dict[str, Any]:
    """What the base layout needs: scope, period links and the query that keeps them."""
    org = {"org": scope.organisation.slug}
    base: dict[str, Any] = {
        "scope": scope,
        "org_query": urlencode(org),
        "server_url": settings.SITE_URL,
    }
    if period is not None:
        keep = [(k, v) for k, v in request.GET.lists() if k not in ("range", "from", "to")]
        base["period"] = period
        base["period_links"] = [
            (key, f"?{urlencode([*keep, ('range', [key])], doseq=True)}") for key in PRESETS
        ]
        base["period_hidden"] = keep
    return {**base, **context}


def chart_query(scope: Scope, period: Period, teams: list[Team] | None = None) -> str:
    params: dict[str, Any] = {"org": scope.organisation.slug, **period.query()}
    if teams:
        params["team"] = [t.slug for t in teams]
    return urlencode(params, doseq=True)


def request_scope(request: HttpRequest) -> Scope:
    """The scope of the organisation a GET or a form POST names (``org``)."""
    return scope_for(request.user, request.GET.get("org") or request.POST.get("org"))


def org_redirect(name: str, scope: Scope, *args: object) -> HttpResponseRedirect:
    """A redirect to the dashboard page ``name`` that stays in the scope's organisation."""
    query = urlencode({"org": scope.organisation.slug})
    return HttpResponseRedirect(f"{reverse(f'dashboard:{name}', args=args)}?{query}")


def managers_only(scope: Scope) -> None:
    """Pages only managers use: a 404 for everyone else."""
    if not (scope.manages_org or scope.managed_team_ids):
        raise Http404("no such page")  # viewers: as if it did not exist
