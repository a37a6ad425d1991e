"""Budgets: budget list with burn-up and forecast, create/edit/delete (managers). The alert pages
are in alerts/.

Who may do what (docs/dashboard.md, "Budgets and alerts"): everyone sees the budgets and alerts of
their scope; organisation managers/admins manage every budget and rule, team managers those of
their teams. A page a viewer may not use is a 404 (as if it did not exist); acting on an alert
one can see but not manage is a 403.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import URLPattern, path, re_path
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_http_methods, require_POST

from greenkpi.alerts import services as alert_services
from greenkpi.dashboard.budgets import figures as figures_budgets
from greenkpi.dashboard.budgets import selectors as sel
from greenkpi.dashboard.budgets.forms import BudgetForm
from greenkpi.dashboard.common.charts import Chart, respond
from greenkpi.dashboard.common.pages import (
    dashboard_view,
    managers_only,
    org_redirect,
    page_context,
    request_scope,
)
from greenkpi.inventory.access import Scope
from greenkpi.lib.periods import Period

# --- Budgets ----------------------------------------------------------------------------------


@dashboard_view
def budgets(request: HttpRequest) -> HttpResponse:
    scope = request_scope(request)
    context = page_context(
        request,
        scope,
        None,
        rows=sel.budget_rows(scope),
        can_create=bool(scope.manages_org or scope.managed_team_ids),
    )
    return render(request, "dashboard/budgets.html", context)


@dashboard_view
def budget_detail(request: HttpRequest, budget_id: int) -> HttpResponse:
    scope = request_scope(request)
    budget = sel.budget_for(scope, budget_id)
    row = sel.budget_row(scope, budget)
    context = page_context(
        request,
        scope,
        None,
        row=row,
        alerts=sel.budget_alerts(budget),
        chart_query=urlencode({"org": scope.organisation.slug}),
    )
    return render(request, "dashboard/budget_detail.html", context)


@dashboard_view
def budget_chart(request: HttpRequest, budget_id: str, fmt: str) -> HttpResponse:
    scope = request_scope(request)
    budget = sel.budget_for(scope, int(budget_id))
    now = timezone.now()
    row = sel.budget_row(scope, budget, now)
    frame = sel.budget_burn(row, now)
    chart = Chart("burn", figures_budgets.budget_burn, tuple(frame.columns))
    fc = row.status.forecast
    period = Period(start=fc.period_start, end=fc.period_end, preset="")
    stem = f"budget-{budget.pk}-{row.status.period_label}"
    return respond(chart, frame, fmt, stem, period)


def _budget_form_page(
    request: HttpRequest, scope: Scope, form: BudgetForm, budget: object | None
) -> HttpResponse:
    context = page_context(request, scope, None, form=form, budget=budget)
    status = 400 if request.method == "POST" else 200
    return render(request, "dashboard/budget_form.html", context, status=status)


@require_http_methods(["GET", "POST"])
@dashboard_view
def budget_create(request: HttpRequest) -> HttpResponse:
    scope = request_scope(request)
    managers_only(scope)
    form = BudgetForm(request.POST or None, scope=scope, model_keys=sel.team_model_keys(scope))
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            budget = alert_services.budget_create(
                organisation=scope.organisation,
                user=request.user,
                name=d["name"],
                metric=d["metric"],
                period=d["period"],
                amount=d["amount"],
                team=form.team_obj(),
                model_key=d.get("model_key", "").strip(),
                currency=d["currency"],
                thresholds_pct=d["thresholds"],
                forecast_method=d["forecast_method"],
            )
        except PermissionDenied:
            raise Http404("no such team") from None
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return org_redirect("budget-detail", scope, budget.pk)
    return _budget_form_page(request, scope, form, None)


@require_http_methods(["GET", "POST"])
@dashboard_view
def budget_edit(request: HttpRequest, budget_id: int) -> HttpResponse:
    scope = request_scope(request)
    budget = sel.budget_for(scope, budget_id)
    if not sel.can_manage_budget(scope, budget):
        raise Http404("no such page")
    form = BudgetForm(request.POST or None, scope=scope, budget=budget)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            alert_services.budget_update(
                budget=budget,
                user=request.user,
                name=d["name"],
                amount=d["amount"],
                period=d["period"],
                thresholds_pct=d["thresholds"],
                currency=d["currency"],
                forecast_method=d["forecast_method"],
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return org_redirect("budget-detail", scope, budget.pk)
    return _budget_form_page(request, scope, form, budget)


@require_POST
@dashboard_view
def budget_delete(request: HttpRequest, budget_id: int) -> HttpResponse:
    scope = request_scope(request)
    budget = sel.budget_for(scope, budget_id)
    if not sel.can_manage_budget(scope, budget):
        raise Http404("no such page")
    alert_services.budget_delete(budget=budget, user=request.user)
    return org_redirect("budgets", scope)


urlpatterns: list[URLPattern] = [
    path("budgets/", budgets, name="budgets"),
    path("budgets/new/", budget_create, name="budget-create"),
    path("budgets/<int:budget_id>/", budget_detail, name="budget-detail"),
    path("budgets/<int:budget_id>/edit/", budget_edit, name="budget-edit"),
    path("budgets/<int:budget_id>/delete/", budget_delete, name="budget-delete"),
    # re_path: urls.py registers its "fmt" converter after importing the area modules.
    re_path(
        r"^budgets/(?P<budget_id>[0-9]+)/burn\.(?P<fmt>json|csv)$",
        budget_chart,
        name="budget-chart",
    ),
]
