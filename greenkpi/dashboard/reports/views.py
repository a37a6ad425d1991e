"""Reports: the monthly ESG report of an organisation (page, CSV and printable)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import URLPattern, path
from django.utils.http import urlencode

from greenkpi.dashboard.carbon import tiles
from greenkpi.dashboard.common.charts import csv_response
from greenkpi.dashboard.common.pages import dashboard_view, page_context
from greenkpi.dashboard.reports import selectors as report
from greenkpi.inventory.access import Scope, scope_for
from greenkpi.lib.periods import month_period
from greenkpi.recommendations.selectors import ledger


def _report(request: HttpRequest) -> tuple[Scope, report.MonthlyReport]:
    scope = scope_for(request.user, request.GET.get("org"))
    month = month_period(request.GET.get("month"))
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
    name = f"esg-report-{scope.organisation.slug}-{monthly.month.start:%Y-%m}.csv"
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


urlpatterns: list[URLPattern] = [
    path("reports/", reports, name="reports"),
    path("reports/report.csv", report_csv, name="report-csv"),
    path("reports/print/", report_print, name="report-print"),
]
