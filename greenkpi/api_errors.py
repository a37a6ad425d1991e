"""DRF errors as RFC 7807 problem+json, the same shape the ingest endpoint uses for its own.

A validation error becomes ``errors[]``: one entry per message, each with an RFC 6901 JSON
pointer into the request body (``/features/1/value``), a code and a detail, exactly as ingest
reports a bad batch. DRF nests errors in dicts keyed by field name *or list index* (a ListField
reports ``{0: [...]}``), and in lists with one entry per item (a many=True serializer); both
are walked here, so no shape of nested error can reach the JSON encoder with a non-string key.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from rest_framework import exceptions
from rest_framework.exceptions import ErrorDetail
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from greenkpi.lib.problems import problem
from greenkpi_schema import FieldError

# The same answer for every "not found", whatever the view's message said: a 404 must not tell
# an unknown id from another organisation's (or another team's) object.
NOT_FOUND_DETAIL = "not found, or not visible to you"


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def field_errors(data: Any, pointer: str = "") -> list[FieldError]:
    """DRF's nested error data as flat FieldErrors with JSON pointers."""
    if isinstance(data, dict):
        out: list[FieldError] = []
        for key, value in data.items():
            if key in (api_settings.NON_FIELD_ERRORS_KEY, "detail"):
                out += field_errors(value, pointer)
            else:
                out += field_errors(value, f"{pointer}/{_escape(str(key))}")
        return out
    if isinstance(data, list | tuple):
        if all(isinstance(item, str) for item in data):  # messages about this one place
            out = []
            for item in data:
                out += field_errors(item, pointer)
            return out
        out = []
        for index, item in enumerate(data):  # one entry per list item ({} where it was valid)
            out += field_errors(item, f"{pointer}/{index}")
        return out
    code = data.code if isinstance(data, ErrorDetail) and data.code else "invalid"
    return [FieldError(pointer, str(code), str(data))]


def _string_keys(data: Any) -> Any:
    if isinstance(data, dict):
        return {str(key): _string_keys(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_string_keys(item) for item in data]
    return str(data)


def _fields(data: Any) -> dict[str, Any]:
    """The older per-field map (``fields``: name -> messages), kept beside ``errors[]`` for
    clients that read it; list indexes become string keys, which JSON objects need."""
    if isinstance(data, dict) and set(data) - {"detail", api_settings.NON_FIELD_ERRORS_KEY}:
        return {"fields": _string_keys(data)}
    return {}


def problem_exception_handler(exc: Exception, context: dict[str, Any]):
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(NOT_FOUND_DETAIL)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    slug = getattr(exc, "default_code", "error").replace("_", "-")
    title = str(getattr(exc, "default_detail", "Error"))
    data = response.data
    if isinstance(exc, exceptions.ValidationError):
        errors = field_errors(data)
        only = errors[0].message if len(errors) == 1 and not errors[0].pointer else None
        detail = only or f"{len(errors)} problem(s); nothing was stored"
        out = problem(response.status_code, slug, title, detail, errors=errors, **_fields(data))
    else:
        detail = data.get("detail") if isinstance(data, dict) else None
        out = problem(response.status_code, slug, title, str(detail) if detail else title)
    for name in ("Retry-After", "WWW-Authenticate", "Allow"):
        if name in response:
            out[name] = response[name]
    return out
