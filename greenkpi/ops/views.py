"""GET /metrics: the Prometheus exposition for operators (docs/operations.md)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from greenkpi.lib.problems import problem
from greenkpi.ops.access import scrape_refusal
from greenkpi.ops.state import StateCollector


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    refusal = scrape_refusal(request)
    if refusal is not None:
        status, detail = refusal
        titles = {401: "Scrape token required", 403: "Not allowed to scrape"}
        response = problem(status, "metrics-access", titles[status], detail)
        if status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    # A fresh registry per scrape, as multiprocess mode wants: every process's files, summed,
    # plus the gauges read from the database now.
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    registry.register(StateCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
