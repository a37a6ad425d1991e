"""Reports: the monthly ESG report of an organisation (page, CSV and printable) and the yearly
ESRS E1 export (CSV and JSON, kpis.reporting)."""

from __future__ import annotations

from datetime import UTC, datetime

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import URLPattern, path
from django.utils.http import urlencode

from greenkpi.dashboard.carbon import tiles
from greenkpi.dashboard.common.charts import csv_response
from greenkpi.dashboard.common.pages import dashboard_view, page_context
from greenkpi.dashboard.reports import selectors as report
from greenkpi.inventory.access import Scope, scope_for
from greenkpi.kpis import reporting
from greenkpi.lib.periods import BadPeriod, month_period
from greenkpi.recommendations.selectors import ledger


def _report(request: HttpRequest) -> tuple[Scope, report.MonthlyReport]:
    scope = scope_for(request.user, request.GET.get("org"))
    month = month_period(request.GET.get("month"), tz=scope.organisation.tz)
    return scope, report.monthly_report(scope, month)


def _savings(scope: Scope, monthly: report.MonthlyReport) -> list:
    """The savings ledger's rows whose change was detected in the month (one query)."""
    return ledger(
        organisation_id=scope.organisation.pk,
        team_ids=None if scope.org_wide else scope.team_ids,
        start=monthly.month.start,
        end=monthly.month.end,
    )


@dashboard_view
def reports(request: HttpRequest) -> HttpResponse:
    scope, monthly = _report(request)
    month_query = urlencode(
        {"org": scope.organisation.slug, "month": f"{monthly.month.start:%Y-%m}"}
    )
    context = page_context(
        request,
        scope,
        None,
        report=monthly,
        rows=tiles.display_rows(monthly.table),
        month_query=month_query,
        savings=_savings(scope, monthly),
    )
    return render(request, "dashboard/report.html", context)


@dashboard_view
def report_csv(request: HttpRequest) -> HttpResponse:
    scope, monthly = _report(request)
    name = f"esg-report-{scope.organisation.slug}-{monthly.month.first_day:%Y-%m}.csv"
    return csv_response(monthly.table, tuple(report.REPORT_COLUMNS), name)


@dashboard_view
def report_print(request: HttpRequest) -> HttpResponse:
    scope, monthly = _report(request)
    context = {
        "scope": scope,
        "report": monthly,
        "rows": tiles.display_rows(monthly.table),
        "savings": _savings(scope, monthly),
    }
    return render(request, "dashboard/report_print.html", context)


def _esrs(request: HttpRequest) -> tuple[Scope, dict[str, object]]:
    """The ESRS E1 figures of ``?year=YYYY`` (default: last year) for an org-wide viewer: they
    are the organisation's, so a viewer of some teams only gets a 403."""
    scope = scope_for(request.user, request.GET.get("org"))
    if not scope.org_wide:
        raise PermissionDenied("the ESRS export covers the whole organisation")
    now = datetime.now(UTC)
    text = request.GET.get("year") or str(now.year - 1)
    if not (text.isdigit() and len(text) == 4 and 2000 <= int(text) <= now.year):
        raise BadPeriod(f"year must be written YYYY, from 2000 to {now.year}")
    return scope, reporting.esrs_e1(scope.organisation, int(text), now=now)


@dashboard_view
def esrs_json(request: HttpRequest) -> HttpResponse:
    scope, report_ = _esrs(request)
    response = JsonResponse(report_, json_dumps_params={"indent": 1})
    name = f"esrs-e1-{scope.organisation.slug}-{report_['year']}.json"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@dashboard_view
def esrs_csv(request: HttpRequest) -> HttpResponse:
    scope, report_ = _esrs(request)
    response = HttpResponse(reporting.esrs_e1_csv(report_), content_type="text/csv; charset=utf-8")
    name = f"esrs-e1-{scope.organisation.slug}-{report_['year']}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


urlpatterns: list[URLPattern] = [
    path("reports/esrs-e1.json", esrs_json, name="esrs-e1-json"),
    path("reports/esrs-e1.csv", esrs_csv, name="esrs-e1-csv"),
    path("reports/", reports, name="reports"),
    path("reports/report.csv", report_csv, name="report-csv"),
    path("reports/print/", report_print, name="report-print"),
]
