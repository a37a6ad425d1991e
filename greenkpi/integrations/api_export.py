"""GET /api/v1/export/openmetrics/: the organisation's KPIs for Prometheus (``openmetrics``)."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request

from greenkpi.alerts import selectors as alert_selectors
from greenkpi.ingest.openapi import problems
from greenkpi.integrations import openmetrics
from greenkpi.integrations.api import KpiApi
from greenkpi.inventory.models import Team


class OpenMetricsRenderer(BaseRenderer):
    media_type = "application/openmetrics-text"
    format = "openmetrics"
    charset = "utf-8"

    def render(self, data: object, accepted_media_type: str | None = None, renderer_context=None):
        return data if isinstance(data, bytes) else str(data).encode()


class OpenMetricsApi(KpiApi):
    renderer_classes = [OpenMetricsRenderer, JSONRenderer]

    @extend_schema(
        operation_id="kpis_openmetrics",
        summary="The organisation's KPIs in OpenMetrics text (scrape with a read token)",
        tags=["kpis"],
        parameters=[OpenApiParameter("org", str, description="Organisation slug (sessions).")],
        responses={
            (200, "application/openmetrics-text"): OpenApiResponse(
                OpenApiTypes.STR, description="OpenMetrics 1.0 exposition (docs/integrations.md)"
            ),
            **problems(
                400,
                401,
                403,
                404,
                s400="Bad parameter (e.g. an empty format or org)",
                s403="Not allowed (a collector token cannot read)",
            ),
        },
    )
    def get(self, request: Request) -> HttpResponse:
        caller = self.caller(request)
        slugs = dict(
            Team.objects.filter(organisation=caller.organisation).values_list("pk", "slug")
        )
        budgets = alert_selectors.budgets_visible(
            organisation_id=caller.organisation.pk,
            team_ids=caller.team_ids,
            org_wide=caller.org_wide,
        )
        exposition = openmetrics.exposition(
            organisation_id=caller.organisation.pk,
            team_ids=None if caller.org_wide else caller.team_ids,
            team_slugs=slugs,
            budgets=list(budgets),
        )
        return HttpResponse(exposition.text(), content_type=openmetrics.CONTENT_TYPE)
