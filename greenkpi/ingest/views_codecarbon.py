"""POST /api/v1/ingest/codecarbon/<token>/: CodeCarbon's ``emissions_endpoint``, unchanged.

CodeCarbon's HTTPOutput cannot send headers, so the collector token travels in the path, the way
Healthchecks ping URLs carry their check id. DRF still does the rest: the same permission and the
same per-token rate limit as POST /api/v1/ingest/.
"""

from __future__ import annotations

from typing import Any

import orjson
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import authentication, exceptions
from rest_framework.request import Request
from rest_framework.views import APIView

from greenkpi.ingest import openapi
from greenkpi.ingest.auth import CollectorPrincipal, CollectorTokenRateThrottle, HasCollectorToken
from greenkpi.ingest.bodies import BodyTooLarge, LengthRequired, is_json, read_limited
from greenkpi.ingest.codecarbon import codecarbon_report_ingest
from greenkpi.ingest.codecarbon_report import parse_report
from greenkpi.ingest.metrics import observe, remember_body_size
from greenkpi.ingest.text import refuse_nul_text
from greenkpi.ingest.views import length_required, not_json
from greenkpi.inventory.models import CollectorToken
from greenkpi.inventory.selectors import collector_token_authenticate
from greenkpi.lib.problems import problem
from greenkpi_schema import FieldError, ValidationFailed

# A CodeCarbon report is ~1.5 KB; anything much bigger is not one.
MAX_BODY_BYTES = 64 * 1024


class PathTokenAuthentication(authentication.BaseAuthentication):
    """The collector token from the URL path.

    Unknown, malformed, revoked and expired tokens all get the same 404: the token *is* the
    address, so a wrong one names no resource, and the answer never tells which tokens exist.
    (401 would also need a WWW-Authenticate challenge that CodeCarbon cannot answer.)
    """

    def authenticate(self, request: Request) -> tuple[CollectorPrincipal, CollectorToken]:
        value = (request.parser_context or {}).get("kwargs", {}).get("token", "")
        token = collector_token_authenticate(value)
        if token is None:
            raise exceptions.NotFound(
                "no such ingest URL: check the token in emissions_endpoint (revoked or expired "
                "tokens stop working at once)"
            )
        return CollectorPrincipal(token), token


# OpenAPI 3.0 (what drf-spectacular emits) spells "or null" as nullable, not a type list.
_FIELD = {"type": "number", "nullable": True}
_TEXT = {"type": "string", "nullable": True}
REPORT_SCHEMA = {
    "type": "object",
    "description": "CodeCarbon's EmissionsData (run totals since the tracker started) plus "
    '"user", exactly as its HTTPOutput posts it. Unknown fields are ignored.',
    "required": [
        "timestamp",
        "project_name",
        "run_id",
        "duration",
        "cpu_energy",
        "gpu_energy",
        "ram_energy",
    ],
    "properties": {
        "timestamp": {
            "type": "string",
            "description": "Client local time, ISO 8601, no zone (e.g. 2026-01-31T12:00:00)",
        },
        "project_name": {"type": "string", "maxLength": 200},
        "run_id": {"type": "string", "maxLength": 150},
        "experiment_id": _TEXT,
        "duration": {"type": "number", "minimum": 0, "description": "Seconds since start"},
        "cpu_energy": {"type": "number", "minimum": 0, "description": "kWh since start"},
        "gpu_energy": {"type": "number", "minimum": 0, "description": "kWh since start"},
        "ram_energy": {"type": "number", "minimum": 0, "description": "kWh since start"},
        "energy_consumed": {**_FIELD, "description": "kWh since start (sum)"},
        "emissions": {**_FIELD, "description": "kg CO2eq since start"},
        "emissions_rate": {**_FIELD, "description": "kg CO2eq per second"},
        "cpu_power": {**_FIELD, "description": "W"},
        "gpu_power": {**_FIELD, "description": "W"},
        "ram_power": {**_FIELD, "description": "W"},
        "pue": {**_FIELD, "description": "CodeCarbon's PUE factor, divided out again"},
        "gpu_count": _FIELD,
        "gpu_model": _TEXT,
        "cpu_model": _TEXT,
        "ram_total_size": {**_FIELD, "description": "GB"},
        "codecarbon_version": _TEXT,
        "tracking_mode": _TEXT,
        "country_iso_code": _TEXT,
        "region": _TEXT,
        "on_cloud": _TEXT,
        "cloud_provider": _TEXT,
        "cloud_region": _TEXT,
        "user": {**_TEXT, "description": "OS account (getpass.getuser())"},
    },
}
RESULT_SCHEMA = {
    "type": "object",
    "properties": {
        "run_id": {"type": "string"},
        "stored": {"type": "boolean"},
        "reason": {
            "type": "string",
            "nullable": True,
            "enum": ["replay", "empty", None],
            "description": "Why nothing was stored",
        },
        "reset": {"type": "boolean", "description": "The run's totals went down (restart)"},
        "window": {"type": "object", "nullable": True},
        "energy_j": {"type": "object", "additionalProperties": {"type": "number"}},
        "accepted": {"type": "integer"},
        "batch_id": {"type": "integer", "nullable": True},
        "host_id": {"type": "integer", "nullable": True},
    },
}


class CodeCarbonIngestView(APIView):
    authentication_classes = [PathTokenAuthentication]
    permission_classes = [HasCollectorToken]
    throttle_classes = [CollectorTokenRateThrottle]

    @extend_schema(
        operation_id="ingest_codecarbon",
        summary="CodeCarbon emissions_endpoint (token in the path)",
        description=(
            "Point CodeCarbon's `emissions_endpoint` here. Each post carries the run's totals; "
            "the difference from the previous post is stored as one window per component "
            "(cpu, gpu, dram), attributed to model=project_name, run=run_id. Replayed or "
            "out-of-order posts store nothing and still get 201. See docs/codecarbon.md."
        ),
        auth=[],
        request={"application/json": REPORT_SCHEMA},
        parameters=[
            OpenApiParameter(
                "token", str, OpenApiParameter.PATH, description="A collector token (gkc_...)"
            ),
            OpenApiParameter(
                "host",
                str,
                OpenApiParameter.QUERY,
                description="Host name to file the run under (default codecarbon-<project>)",
            ),
            OpenApiParameter(
                "team",
                str,
                OpenApiParameter.QUERY,
                description="Team slug in the token's organisation (default: the token's team)",
            ),
        ],
        responses={
            201: OpenApiResponse(RESULT_SCHEMA, description="Stored, or nothing new to store"),
            **openapi.problems(
                400,
                404,
                411,
                413,
                415,
                429,
                s400="Invalid report (errors[]), host or team; malformed JSON",
                s404="Unknown, malformed, revoked or expired token (the token is the address)",
                s413="Body over 64 KiB",
            ),
        },
        tags=["ingest"],
    )
    def post(self, request: Request, token: str) -> HttpResponse:
        if not is_json(request._request):
            return not_json()
        try:
            raw = read_limited(request._request, MAX_BODY_BYTES)
            remember_body_size(request._request, raw)
        except BodyTooLarge as exc:
            return problem(413, "too-large", "Report too large", str(exc))
        except LengthRequired as exc:
            return length_required(str(exc))
        host = request.query_params.get("host", "").strip() or None
        if host is not None and (len(host) > 255 or not host.isprintable()):
            return problem(400, "invalid-report", "Invalid host", "host: 1-255 printable chars")
        team = request.query_params.get("team", "").strip() or None
        try:
            if team is not None and (len(team) > 255 or not team.isprintable()):
                # PostgreSQL text cannot hold a NUL: looking such a slug up would be a 500.
                message = "a team slug: 1-255 printable characters"
                raise ValidationFailed([FieldError("?team", "format", message)])
            # A NUL in project_name, run_id or any string would fail at the INSERT (a 500).
            refuse_nul_text(raw)
            report = parse_report(orjson.loads(raw))
            outcome = codecarbon_report_ingest(
                token=request.auth, report=report, hostname=host, team_slug=team
            )
        except orjson.JSONDecodeError as exc:
            # orjson refuses NaN and Infinity, which CodeCarbon (requests, allow_nan=False) never sends.
            return problem(400, "json", "Malformed JSON", str(exc))
        except ValidationFailed as exc:
            return problem(
                400,
                "invalid-report",
                "Invalid CodeCarbon report",
                f"{len(exc.errors)} problem(s); nothing was stored",
                errors=exc.errors,
            )
        return HttpResponse(
            orjson.dumps(outcome.as_json()), status=201, content_type="application/json"
        )

    def finalize_response(
        self, request: Request, response: HttpResponse, *args: Any, **kwargs: Any
    ) -> HttpResponse:
        """Every answer counted for /metrics, also the 401/429 raised before post() runs."""
        response = super().finalize_response(request, response, *args, **kwargs)
        observe("codecarbon", request._request, response)
        return response
