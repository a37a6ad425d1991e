"""The collector ingestion endpoint. DRF handles auth, throttling and the schema; the body is
parsed with orjson and validated by greenkpi_schema, which is ~30x faster than DRF serializers."""

from __future__ import annotations

import re
import zlib
from datetime import datetime
from typing import Any

import orjson
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.views import APIView

from greenkpi.ingest import openapi
from greenkpi.ingest.auth import (
    CollectorTokenAuthentication,
    CollectorTokenRateThrottle,
    HasCollectorToken,
)
from greenkpi.ingest.bodies import BodyTooLarge, LengthRequired, is_json, read_limited
from greenkpi.ingest.metrics import observe, remember_body_size
from greenkpi.ingest.services import IdempotencyConflict, MalformedJSON, ingest_batch
from greenkpi.lib.problems import problem
from greenkpi_schema import ValidationFailed

# 1-200 printable ASCII characters, no space at either end (a UUID fits; so does a hash).
IDEMPOTENCY_KEY_PATTERN = r"^[!-~]([ -~]{0,198}[!-~])?$"
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


class BadEncoding(Exception):
    pass


def read_body(request: HttpRequest, limit: int) -> bytes:
    """The request body (chunked or not), gunzipped if needed, never holding more than ``limit``
    bytes of either."""
    raw = read_limited(request, limit)
    remember_body_size(request, raw)
    encoding = request.META.get("HTTP_CONTENT_ENCODING", "").strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding != "gzip":
        raise BadEncoding(f"Content-Encoding {encoding!r} is not supported; use gzip or none")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        body = inflater.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise BadEncoding(f"the gzip body is corrupt: {exc}") from None
    if len(body) > limit or inflater.unconsumed_tail:
        raise BodyTooLarge(f"decompressed body exceeds {limit} bytes")
    if not inflater.eof:
        raise BadEncoding("the gzip body is truncated")
    return body


def sent_at_header(value: str | None) -> datetime | None:
    """The collector's X-Sent-At (ISO 8601, aware), or None when absent or unreadable."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def json_response(body: dict, status: int, headers: dict[str, str] | None = None) -> HttpResponse:
    response = HttpResponse(orjson.dumps(body), status=status, content_type="application/json")
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def too_large(detail: str) -> HttpResponse:
    return problem(
        413, "too-large", "Batch too large", detail + "; split the batch and resend the parts"
    )


def not_json() -> HttpResponse:
    """415 for any Content-Type but application/json. Every client we know sends that (ours,
    and CodeCarbon's ``requests.post(json=...)``), and a form or text body that happens to parse
    as JSON is more likely a mistake (or a cross-site form post) than a collector."""
    return problem(
        415,
        "unsupported-media-type",
        "Unsupported media type",
        "send the body as Content-Type: application/json",
    )


def length_required(detail: str) -> HttpResponse:
    return problem(411, "length-required", "Length required", detail)


class IngestView(APIView):
    authentication_classes = [CollectorTokenAuthentication]
    permission_classes = [HasCollectorToken]
    throttle_classes = [CollectorTokenRateThrottle]

    @extend_schema(
        operation_id="ingest_batch",
        summary="Post a batch of measurement windows (collector token)",
        description=openapi.INGEST_DESCRIPTION,
        request={"application/json": openapi.BATCH_SCHEMA},
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 200,
                    "pattern": IDEMPOTENCY_KEY_PATTERN,
                },
                OpenApiParameter.HEADER,
                required=True,
                description="A unique id per batch (e.g. a UUID); a retry sends the same key. "
                "1-200 printable ASCII characters.",
            ),
            OpenApiParameter(
                "Content-Encoding",
                {"type": "string", "enum": ["gzip", "identity", ""]},
                OpenApiParameter.HEADER,
                description="gzip, or omitted (empty and identity mean none)",
            ),
        ],
        responses={
            201: OpenApiResponse(
                openapi.RESULT_SCHEMA, description="Stored (or replayed: same answer)"
            ),
            **openapi.problems(
                400,
                401,
                411,
                413,
                415,
                422,
                429,
                s400="Invalid batch, missing or bad Idempotency-Key, malformed JSON or gzip",
            ),
        },
        tags=["ingest"],
    )
    def post(self, request: Request) -> HttpResponse:
        key = request.headers.get("Idempotency-Key", "").strip()
        if not _IDEMPOTENCY_KEY.match(key):
            return problem(
                400,
                "idempotency-key",
                "Idempotency-Key required",
                "send an Idempotency-Key header (1-200 printable ASCII characters, e.g. a UUID) "
                "per batch",
            )
        if not is_json(request._request):
            return not_json()
        try:
            body = read_body(request._request, settings.INGEST_MAX_BODY_BYTES)
        except BodyTooLarge as exc:
            return too_large(str(exc))
        except LengthRequired as exc:
            return length_required(str(exc))
        except BadEncoding as exc:
            return problem(400, "encoding", "Unreadable body", str(exc))
        try:
            result = ingest_batch(
                token=request.auth,
                idempotency_key=key,
                body=body,
                sent_at=sent_at_header(request.headers.get("X-Sent-At")),
            )
        except MalformedJSON as exc:
            return problem(400, "json", "Malformed JSON", str(exc))
        except ValidationFailed as exc:
            if exc.errors[0].code == "too_many_samples":
                return too_large(exc.errors[0].message)
            return problem(
                400,
                "invalid-batch",
                "Invalid batch",
                f"{len(exc.errors)} problem(s); nothing was stored",
                errors=exc.errors,
            )
        except IdempotencyConflict:
            return problem(
                422,
                "idempotency-key-reused",
                "Idempotency-Key reused",
                "this Idempotency-Key was used with a different body; use a new key per batch",
            )
        return json_response(result.body, result.status, result.headers)

    def finalize_response(
        self, request: Request, response: HttpResponse, *args: Any, **kwargs: Any
    ) -> HttpResponse:
        """Every answer counted for /metrics, also the 401/429 raised before post() runs."""
        response = super().finalize_response(request, response, *args, **kwargs)
        observe("batch", request._request, response)
        return response
