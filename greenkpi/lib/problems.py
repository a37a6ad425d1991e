"""RFC 7807 problem+json responses, so every client error says what and where."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from django.http import HttpResponse
from django.views.defaults import page_not_found

from greenkpi_schema import FieldError

PROBLEM_BASE = "https://greenkpi.dev/problems/"


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    errors: Iterable[FieldError] = (),
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> HttpResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }
    error_list = [e.as_dict() for e in errors]
    if error_list:
        body["errors"] = error_list
    response = HttpResponse(
        orjson.dumps(body), status=status, content_type="application/problem+json"
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def not_found(request: Any, exception: Exception | None = None) -> HttpResponse:
    """Django's 404 handler: an API address that matches no route answers problem+json like every
    other API error (a client parsing errors never meets the HTML page); pages get the 404 page
    with the navigation."""
    if request.path.startswith("/api/"):
        return problem(404, "not-found", "Not found.", "no such API address")
    return page_not_found(request, exception)
