"""Budgets and alerts: budget list with burn-up and forecast, create/edit (managers), alert rules
(managers), the alerts list, acknowledge and silence.

Who may do what (docs/dashboard.md, "Budgets and alerts"): everyone sees the budgets and alerts of
their scope; organisation managers/admins manage every budget and rule, team managers those of
their teams. A page a viewer may not use is a 404 (as if it did not exist); acting on an alert
one can see but not manage is a 403.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import URLPattern, path, re_path, reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_http_methods, require_POST

from greenkpi.alerts import services as alert_services
from greenkpi.alerts.models import Alert
from greenkpi.dashboard import figures_budgets
from greenkpi.dashboard import selectors_budgets as sel
from greenkpi.dashboard.charts import Chart, respond
from greenkpi.dashboard.forms_budgets import AlertRuleForm, BudgetForm, SilenceForm
from greenkpi.dashboard.pages import dashboard_view, page_context
from greenkpi.inventory.access import Scope, scope_for
from greenkpi.lib.periods import Period


def _scope(request: HttpRequest) -> Scope:
    return scope_for(request.user, request.GET.get("org") or request.POST.get("org"))


def _redirect(name: str, scope: Scope, *args: object) -> HttpResponseRedirect:
    query = urlencode({"org": scope.organisation.slug})
    return HttpResponseRedirect(f"{reverse(f'dashboard:{name}', args=args)}?{query}")


def _managers_only(scope: Scope) -> None:
    if not (scope.manages_org or scope.managed_team_ids):
        raise Http404("no such page")  # viewers: as if it did not exist


# --- Budgets ----------------------------------------------------------------------------------


@dashboard_view
def budgets(request: HttpRequest) -> HttpResponse:
    scope = _scope(request)
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
    scope = _scope(request)
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
    scope = _scope(request)
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
    scope = _scope(request)
    _managers_only(scope)
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
            return _redirect("budget-detail", scope, budget.pk)
    return _budget_form_page(request, scope, form, None)


@require_http_methods(["GET", "POST"])
@dashboard_view
def budget_edit(request: HttpRequest, budget_id: int) -> HttpResponse:
    scope = _scope(request)
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
            return _redirect("budget-detail", scope, budget.pk)
    return _budget_form_page(request, scope, form, budget)


@require_POST
@dashboard_view
def budget_delete(request: HttpRequest, budget_id: int) -> HttpResponse:
    scope = _scope(request)
    budget = sel.budget_for(scope, budget_id)
    if not sel.can_manage_budget(scope, budget):
        raise Http404("no such page")
    alert_services.budget_delete(budget=budget, user=request.user)
    return _redirect("budgets", scope)


# --- Alert rules ------------------------------------------------------------------------------


@dashboard_view
def alert_rules(request: HttpRequest) -> HttpResponse:
    scope = _scope(request)
    _managers_only(scope)
    context = page_context(request, scope, None, rules=list(sel.rules_manageable(scope)))
    return render(request, "dashboard/alert_rules.html", context)


def _rule_form(request: HttpRequest, scope: Scope, rule: object | None = None) -> AlertRuleForm:
    return AlertRuleForm(
        request.POST or None,
        scope=scope,
        budgets=sel.budgets_manageable(scope),
        channels=sel.channels_of(scope),
        rule=rule,
    )


def _rule_form_page(
    request: HttpRequest, scope: Scope, form: AlertRuleForm, rule: object | None
) -> HttpResponse:
    context = page_context(request, scope, None, form=form, rule=rule)
    status = 400 if request.method == "POST" else 200
    return render(request, "dashboard/alert_rule_form.html", context, status=status)


@require_http_methods(["GET", "POST"])
@dashboard_view
def alert_rule_create(request: HttpRequest) -> HttpResponse:
    scope = _scope(request)
    _managers_only(scope)
    form = _rule_form(request, scope)
    if request.method == "POST" and form.is_valid():
        try:
            alert_services.rule_create(
                organisation=scope.organisation,
                user=request.user,
                kind=form.cleaned_data["kind"],
                channels=form.channel_list(),
                **form.service_kwargs(),
            )
        except PermissionDenied:
            raise Http404("no such team") from None
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return _redirect("alert-rules", scope)
    return _rule_form_page(request, scope, form, None)


@require_http_methods(["GET", "POST"])
@dashboard_view
def alert_rule_edit(request: HttpRequest, rule_id: int) -> HttpResponse:
    scope = _scope(request)
    _managers_only(scope)
    rule = sel.rule_for(scope, rule_id)
    form = _rule_form(request, scope, rule)
    if request.method == "POST" and form.is_valid():
        try:
            alert_services.rule_update(
                rule=rule, user=request.user, channels=form.channel_list(), **form.service_kwargs()
            )
        except PermissionDenied:
            raise Http404("no such rule") from None
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return _redirect("alert-rules", scope)
    return _rule_form_page(request, scope, form, rule)


# --- Alerts -----------------------------------------------------------------------------------


@dashboard_view
def alerts(request: HttpRequest) -> HttpResponse:
    scope = _scope(request)
    now = timezone.now()
    context = page_context(
        request,
        scope,
        None,
        open_alerts=sel.alerts_open(scope, now),
        resolved=sel.alerts_resolved_recently(scope, now),
        silences=sel.silences_active(scope, request.user.pk, now),
        failing=sel.rules_failing(scope),
        silence_form=SilenceForm(),
        can_manage_rules=bool(scope.manages_org or scope.managed_team_ids),
    )
    return render(request, "dashboard/alerts.html", context)


def _actionable_alert(scope: Scope, alert_id: int) -> Alert:
    alert = sel.alert_for(scope, alert_id)  # 404: not visible
    if not sel.can_manage_team(scope, alert.team_id):
        raise PermissionDenied("only managers of the alert's team may act on it")
    return alert


@require_POST
@dashboard_view
def alert_ack(request: HttpRequest, alert_id: int) -> HttpResponse:
    scope = _scope(request)
    alert = _actionable_alert(scope, alert_id)
    try:
        alert_services.alert_acknowledge(alert=alert, user=request.user)
    except ValidationError as exc:
        return render(
            request,
            "dashboard/alert_bad_request.html",
            {"reason": "; ".join(exc.messages)},
            status=400,
        )
    return _redirect("alerts", scope)


@require_POST
@dashboard_view
def alert_silence(request: HttpRequest, alert_id: int) -> HttpResponse:
    scope = _scope(request)
    alert = _actionable_alert(scope, alert_id)
    form = SilenceForm(request.POST)
    if not form.is_valid():
        reason = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
        return render(request, "dashboard/alert_bad_request.html", {"reason": reason}, status=400)
    try:
        alert_services.alert_silence(
            alert=alert,
            user=request.user,
            duration=form.duration_delta(),
            comment=form.cleaned_data["comment"],
            whole_rule=form.cleaned_data["whole_rule"],
        )
    except ValidationError as exc:
        return render(
            request,
            "dashboard/alert_bad_request.html",
            {"reason": "; ".join(exc.messages)},
            status=400,
        )
    return _redirect("alerts", scope)


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
    path("alerts/", alerts, name="alerts"),
    path("alerts/<int:alert_id>/ack/", alert_ack, name="alert-ack"),
    path("alerts/<int:alert_id>/silence/", alert_silence, name="alert-silence"),
    path("alerts/rules/", alert_rules, name="alert-rules"),
    path("alerts/rules/new/", alert_rule_create, name="alert-rule-create"),
    path("alerts/rules/<int:rule_id>/edit/", alert_rule_edit, name="alert-rule-edit"),
]
