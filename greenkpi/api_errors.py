"""DRF errors as RFC 7807 problem+json, the same shape the ingest endpoint uses for its own."""

from __future__ import annotations

from typing import Any

from rest_framework.views import exception_handler as drf_exception_handler

from greenkpi.lib.problems import problem


def problem_exception_handler(exc: Exception, context: dict[str, Any]):
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    detail = data.get("detail") if isinstance(data, dict) else None
    slug = getattr(exc, "default_code", "error").replace("_", "-")
    out = problem(
        response.status_code,
        slug,
        str(getattr(exc, "default_detail", "Error")),
        str(detail) if detail is not None else "see errors",
        **({} if detail is not None else {"fields": data}),
    )
    for name in ("Retry-After", "WWW-Authenticate", "Allow"):
        if name in response:
            out[name] = response[name]
    return out
