"""Alerts: alert rules (managers), the alerts list, acknowledge and silence.

Who may do what (docs/dashboard.md, "Budgets and alerts"): everyone sees the alerts of their
scope; organisation managers/admins manage every rule, team managers those of their teams. A page
a viewer may not use is a 404 (as if it did not exist); acting on an alert one can see but not
manage is a 403.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import URLPattern, path
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from greenkpi.alerts import services as alert_services
from greenkpi.alerts.models import Alert
from greenkpi.dashboard.alerts import selectors as sel
from greenkpi.dashboard.alerts.forms import AlertRuleForm, SilenceForm
from greenkpi.dashboard.common.pages import (
    dashboard_view,
    managers_only,
    org_redirect,
    page_context,
    request_scope,
)
from greenkpi.inventory.access import Scope

# --- Alert rules ------------------------------------------------------------------------------


@dashboard_view
def alert_rules(request: HttpRequest) -> HttpResponse:
    scope = request_scope(request)
    managers_only(scope)
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
    scope = request_scope(request)
    managers_only(scope)
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
            return org_redirect("alert-rules", scope)
    return _rule_form_page(request, scope, form, None)


@require_http_methods(["GET", "POST"])
@dashboard_view
def alert_rule_edit(request: HttpRequest, rule_id: int) -> HttpResponse:
    scope = request_scope(request)
    managers_only(scope)
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
            return org_redirect("alert-rules", scope)
    return _rule_form_page(request, scope, form, rule)


# --- Alerts -----------------------------------------------------------------------------------


@dashboard_view
def alerts(request: HttpRequest) -> HttpResponse:
    scope = request_scope(request)
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
    scope = request_scope(request)
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
    return org_redirect("alerts", scope)


@require_POST
@dashboard_view
def alert_silence(request: HttpRequest, alert_id: int) -> HttpResponse:
    scope = request_scope(request)
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
    return org_redirect("alerts", scope)


urlpatterns: list[URLPattern] = [
    path("alerts/", alerts, name="alerts"),
    path("alerts/<int:alert_id>/ack/", alert_ack, name="alert-ack"),
    path("alerts/<int:alert_id>/silence/", alert_silence, name="alert-silence"),
    path("alerts/rules/", alert_rules, name="alert-rules"),
    path("alerts/rules/new/", alert_rule_create, name="alert-rule-create"),
    path("alerts/rules/<int:rule_id>/edit/", alert_rule_edit, name="alert-rule-edit"),
]
