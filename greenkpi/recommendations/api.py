"""The recommendations API under /api/v1/recommendations/ (docs/advice.md, docs/api.md).

Scoped like every page: a person sees the findings of the teams they may see; a finding of a
team they cannot see is 404 (never 403, so ids cannot be probed). Deciding (accept, dismiss,
snooze, re-open) needs the manager or admin role on the finding's team or the organisation: a
viewer who sees it gets 403. Collector tokens read and decide nothing (403). Errors are
problem+json; a bad field is a 400 naming it.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from greenkpi.ingest.auth import CollectorTokenAuthentication
from greenkpi.ingest.openapi import problems
from greenkpi.inventory.access import NoOrganisation, Scope, scope_for
from greenkpi.kpis import labels
from greenkpi.recommendations import selectors, services
from greenkpi.recommendations.models import Finding, RealisedSaving, State
from greenkpi.workloads import access
from greenkpi.workloads.fields import StrictCharField

TAGS = ["recommendations"]
READ_ERRORS = problems(401, 403, 404, s403="A collector token (people only)")
LIST_ERRORS = problems(400, 401, 403, 404, s400="Unknown state")
WRITE_ERRORS = problems(
    400, 401, 403, 404, 415, s403="Not a manager of the finding's team, or a collector token"
)
ORG_PARAM = OpenApiParameter(
    "org",
    {"type": "string", "maxLength": 100, "pattern": "^[-a-zA-Z0-9_]*$"},
    description="Organisation slug (people in many).",
)
FINDING_ID = OpenApiParameter(
    "finding_id",
    {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
    location=OpenApiParameter.PATH,
)


def _scope(request: Request) -> Scope:
    access.forbid_collector_reads(request)
    org = request.query_params.get("org") or None
    if org and not access.is_slug(org):
        raise Http404("no such organisation")
    try:
        return scope_for(request.user, org)
    except NoOrganisation:
        raise Http404("no organisation") from None


class RealisedSerializer(serializers.Serializer):
    change = serializers.CharField()
    changed_at = serializers.DateTimeField()
    method = serializers.CharField()
    work_unit = serializers.CharField()
    baseline_start = serializers.DateTimeField()
    baseline_end = serializers.DateTimeField()
    after_end = serializers.DateTimeField()
    kwh_per_unit_before = serializers.FloatField()
    units_after = serializers.FloatField()
    counterfactual_kwh = serializers.FloatField()
    actual_kwh = serializers.FloatField()
    saved_kwh = serializers.FloatField(help_text="Measured IT kWh saved (realised).")
    saved_location_kgco2e = serializers.FloatField(help_text=labels.SCOPE2_LOCATION.name)
    saved_market_kgco2e = serializers.FloatField(
        allow_null=True, help_text=labels.SCOPE2_MARKET.name
    )
    uncertainty_kwh = serializers.FloatField(help_text="± one standard error")


class FindingSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    detector = serializers.CharField()
    owner_kind = serializers.CharField(help_text="team, model, account or host")
    owner = serializers.CharField()
    subject = serializers.CharField()
    team = serializers.CharField(allow_null=True)
    model_key = serializers.CharField()
    title = serializers.CharField()
    action = serializers.CharField()
    tactic = serializers.CharField(help_text="Green tactic (Järvenpää et al., ICSE-SEIS 2024)")
    estimated_annual_kwh = serializers.FloatField()
    estimated_annual_location_kgco2e = serializers.FloatField(
        help_text=f"{labels.SCOPE2_LOCATION.name}, estimated, a year"
    )
    estimated_annual_market_kgco2e = serializers.FloatField(
        allow_null=True, help_text=f"{labels.SCOPE2_MARKET.name}, estimated, a year"
    )
    estimated_annual_cost = serializers.FloatField(allow_null=True)
    currency = serializers.CharField()
    evidence = serializers.DictField()
    evidence_url = serializers.CharField()
    state = serializers.ChoiceField(choices=State.values)
    reason = serializers.CharField()
    decided_at = serializers.DateTimeField(allow_null=True)
    snoozed_until = serializers.DateTimeField(allow_null=True)
    can_decide = serializers.BooleanField()
    realised = RealisedSerializer(allow_null=True)


def finding_out(finding: Finding, scope: Scope) -> dict[str, Any]:
    realised: RealisedSaving | None = getattr(finding, "realised", None)
    return {
        "id": finding.pk,
        "detector": finding.detector,
        "owner_kind": finding.owner_kind,
        "owner": finding.owner,
        "subject": finding.subject,
        "team": finding.team.slug if finding.team else None,
        "model_key": finding.model_key,
        "title": finding.title,
        "action": finding.action,
        "tactic": finding.tactic,
        "estimated_annual_kwh": finding.annual_kwh,
        "estimated_annual_location_kgco2e": finding.annual_location_kgco2e,
        "estimated_annual_market_kgco2e": finding.annual_market_kgco2e,
        "estimated_annual_cost": finding.annual_cost,
        "currency": finding.currency,
        "evidence": finding.evidence,
        "evidence_url": finding.evidence_url,
        "state": finding.state,
        "reason": finding.reason,
        "decided_at": finding.decided_at,
        "snoozed_until": finding.snoozed_until,
        "can_decide": selectors.can_decide(scope, finding),
        "realised": None
        if realised is None
        else {k: getattr(realised, k) for k in RealisedSerializer().fields},
    }


class _Api(APIView):
    authentication_classes = [CollectorTokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]


class RecommendationsApi(_Api):
    @extend_schema(
        operation_id="recommendations_list",
        parameters=[
            ORG_PARAM,
            OpenApiParameter(
                "state",
                {"type": "string", "enum": State.values},
                description="Only this state (default: open and accepted).",
            ),
        ],
        responses={200: FindingSerializer(many=True), **LIST_ERRORS},
        summary="Findings ranked by estimated annual saving (kWh, then kgCO2e)",
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        scope = _scope(request)
        state = request.query_params.get("state")
        if state is not None and state not in State.values:
            raise ValidationError({"state": [f"one of {', '.join(State.values)}"]})
        cards = selectors.cards(scope, states=[state] if state else selectors.SHOWN_STATES)
        return Response([finding_out(f, scope) for f in cards])


class DecisionInput(serializers.Serializer):
    state = serializers.ChoiceField(choices=State.values, help_text="open: re-open.")
    reason = StrictCharField(max_length=500, required=False, default="", allow_blank=True)
    snoozed_until = serializers.DateTimeField(
        required=False, allow_null=True, default=None, help_text="Required to snooze (future)."
    )


class DecisionApi(_Api):
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="recommendations_decide",
        parameters=[FINDING_ID],
        request=DecisionInput,
        responses={200: FindingSerializer, **WRITE_ERRORS},
        summary="Accept, dismiss, snooze or re-open a finding, with a reason",
        tags=TAGS,
    )
    def post(self, request: Request, finding_id: int) -> Response:
        access.forbid_collector_reads(request)
        org_slug = (
            Finding.objects.filter(pk=finding_id)
            .values_list("organisation__slug", flat=True)
            .first()
        )
        if org_slug is None:
            raise Http404("no such finding")
        try:
            scope = scope_for(request.user, org_slug)
        except (Http404, NoOrganisation):
            raise Http404("no such finding") from None
        finding = (
            selectors.findings_visible(scope).select_related("team").filter(pk=finding_id).first()
        )
        if finding is None:
            raise Http404("no such finding")
        if not selectors.can_decide(scope, finding):
            raise PermissionDenied("deciding needs the manager or admin role on this team")
        data = DecisionInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            decided = services.decide(
                finding=finding,
                state=data.validated_data["state"],
                reason=data.validated_data["reason"],
                snoozed_until=data.validated_data["snoozed_until"],
                user=request.user,  # type: ignore[arg-type]
            )
        except services.DecisionError as exc:
            raise ValidationError({exc.field: [str(exc)]}) from None
        return Response(finding_out(decided, scope))
