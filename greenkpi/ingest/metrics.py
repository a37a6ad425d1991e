"""Ingest's operator counters: requests, accepted samples, bytes and rejects by reason.

Counted once per answered request in the views' finalize_response, so authentication failures and
rate limits (raised before post() runs) are counted too. A replayed batch (Idempotent-Replayed)
counts as a request but adds no samples: they were counted the first time.
"""

from __future__ import annotations

from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse

from greenkpi.lib.metrics import INGEST_BYTES, INGEST_REJECTS, INGEST_REQUESTS, INGEST_SAMPLES


def remember_body_size(request: HttpRequest, raw: bytes) -> None:
    """The body's size as sent (before gunzip); chunked bodies have no Content-Length."""
    request.greenkpi_body_bytes = len(raw)  # type: ignore[attr-defined]


def _json(response: HttpResponse) -> dict[str, Any]:
    data = getattr(response, "data", None)
    if isinstance(data, dict):  # a DRF Response, not rendered yet
        return data
    try:
        found = orjson.loads(response.content)
    except (orjson.JSONDecodeError, ValueError, AttributeError):
        return {}
    return found if isinstance(found, dict) else {}


def observe(endpoint: str, request: HttpRequest, response: HttpResponse) -> None:
    status = response.status_code
    INGEST_REQUESTS.labels(endpoint, str(status)).inc()
    size = getattr(request, "greenkpi_body_bytes", None)
    if size is None:
        try:
            size = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            size = 0
    if size > 0:
        INGEST_BYTES.labels(endpoint).inc(size)
    if 200 <= status < 300:
        if response.get("Idempotent-Replayed") != "true":
            accepted = _json(response).get("accepted")
            if isinstance(accepted, int) and accepted > 0:
                INGEST_SAMPLES.labels(endpoint).inc(accepted)
    elif status >= 400:
        kind = str(_json(response).get("type") or "")
        reason = kind.rstrip("/").rsplit("/", 1)[-1][:40] or f"http-{status}"
        INGEST_REJECTS.labels(endpoint, reason).inc()
