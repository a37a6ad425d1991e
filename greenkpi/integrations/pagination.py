"""Cursor pagination with a refused, not clamped, page size: ``?limit=`` above the maximum is a
400 that says the maximum (a script asking for everything learns it gets pages)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def limit_of(request: Request) -> int:
    text = request.query_params.get("limit", "")
    if not text:
        return DEFAULT_LIMIT
    try:
        limit = int(text)
    except ValueError:
        raise ValidationError({"limit": "a whole number of rows per page"}) from None
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError({"limit": f"between 1 and {MAX_LIMIT} rows per page"})
    return limit


class BoundedCursorPagination(CursorPagination):
    page_size = DEFAULT_LIMIT
    page_size_query_param = "limit"
    max_page_size = MAX_LIMIT
    ordering = "-pk"

    def get_page_size(self, request: Request) -> int:
        return limit_of(request)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=MAX_LIMIT)
                parameter["description"] = f"Rows per page, 1 to {MAX_LIMIT} (default 100)"
        return parameters

    def decode_cursor(self, request: Request) -> Any:
        try:
            return super().decode_cursor(request)
        except Exception as exc:  # DRF's NotFound("Invalid cursor"): a bad parameter, not a 404
            if request.query_params.get(self.cursor_query_param):
                raise ValidationError({"cursor": "not a cursor this API gave out"}) from exc
            raise


def encode_position(position: tuple[str, ...]) -> str:
    """An opaque cursor for a keyset position (the series' last row: bucket, then key)."""
    return base64.urlsafe_b64encode(json.dumps(list(position)).encode()).decode().rstrip("=")


def decode_position(cursor: str) -> tuple[str, ...]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        raise ValidationError({"cursor": "not a cursor this API gave out"}) from None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValidationError({"cursor": "not a cursor this API gave out"})
    return tuple(value)
