"""Operator metrics that processes count as they work (Prometheus, docs/operations.md).

prometheus_client in multiprocess mode: every gunicorn worker and Celery process writes its
counters to files under PROMETHEUS_MULTIPROC_DIR (settings set it under the var dir before this
module is imported), and /metrics sums them, so a scrape that lands on any one worker sees all of
them. Only instruments live here; the gauges that read the database at scrape time are in
greenkpi/ops (they read several apps, so they sit above them).

Labels are bounded by design: routes are URL patterns, never paths; statuses are codes; rejects
are problem types; tasks are task names.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from prometheus_client import Counter, Histogram, values

# Settings set PROMETHEUS_MULTIPROC_DIR; prometheus_client picks its value class when first
# imported, which in a process that imported it earlier (the collector's exposition parser, in one
# test process) was too soon. Pick again, so these instruments always write the shared files.
values.ValueClass = values.get_value_class()

INGEST_REQUESTS = Counter(
    "greenkpi_ingest_requests", "Ingest requests by endpoint and status", ["endpoint", "status"]
)
INGEST_SAMPLES = Counter(
    "greenkpi_ingest_samples", "Sample windows accepted by ingest", ["endpoint"]
)
INGEST_BYTES = Counter(
    "greenkpi_ingest_bytes", "Request body bytes received by ingest (as sent)", ["endpoint"]
)
INGEST_REJECTS = Counter(
    "greenkpi_ingest_rejects",
    "Ingest requests refused, by problem type (invalid-batch, too-large, ...)",
    ["endpoint", "reason"],
)
HTTP_DURATION = Histogram(
    "greenkpi_http_request_duration_seconds",
    "Time to answer an HTTP request, by URL pattern",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CELERY_TASKS = Counter(
    "greenkpi_celery_tasks", "Celery task runs by task and outcome", ["task", "state"]
)
CELERY_TASK_DURATION = Histogram(
    "greenkpi_celery_task_duration_seconds",
    "Celery task run time",
    ["task"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0),
)


def route_of(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    return "/" + match.route if match is not None and match.route else "unmatched"


class RequestMetricsMiddleware:
    """Latency of every request by route pattern, method and status."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        method = request.method if request.method in _METHODS else "other"
        HTTP_DURATION.labels(route_of(request), method, str(response.status_code)).observe(
            time.perf_counter() - started
        )
        return response


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
