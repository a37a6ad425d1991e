"""Who may scrape /metrics: the scrape token, or an allow-listed address. Nothing else.

A collector token (or any other bearer token, or a logged-in session) is not a scrape token: it
gets 403, so a leaked collector token does not expose the fleet's internals. No credentials from
an address not allow-listed: 401 with a Bearer challenge (403 when no scrape token is configured).
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest


def scrape_refusal(request: HttpRequest) -> tuple[int, str] | None:
    """None if allowed, else (status, detail)."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    token = settings.METRICS_TOKEN
    if header:
        scheme, _, value = header.partition(" ")
        if (
            token
            and scheme.lower() == "bearer"
            and hmac.compare_digest(value.strip().encode(), token.encode())
        ):
            return None
        return 403, "this credential is not the scrape token (METRICS_TOKEN)"
    if request.META.get("REMOTE_ADDR", "") in settings.METRICS_ALLOW:
        return None
    if not token and not settings.METRICS_ALLOW:
        return 403, "/metrics is off: set METRICS_TOKEN or METRICS_ALLOW (docs/operations.md)"
    if not token:
        return 403, "this address is not in METRICS_ALLOW"
    return 401, "send Authorization: Bearer <METRICS_TOKEN>"
