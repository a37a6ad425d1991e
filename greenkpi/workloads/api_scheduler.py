"""Scheduler attribution API: identity mappings (org admins) and Slurm jobs' energy and waste.

- ``/api/v1/identity-mappings/`` and ``/<id>/``: list, create, update, delete. Organisation admins
  only (a member without the admin role gets 403 in their own organisation); a mapping of another
  organisation is 404. A bad pattern or an unknown team is a 400 naming the field.
- ``/api/v1/slurm/jobs/``: jobs of a range, most wasted GPU-hours first, filterable by account and
  user, with waste per account / user / team and the unmapped energy; scoped like every page
  (a person sees the jobs whose energy went to teams they may see). Collector tokens read nothing.
- ``/api/v1/k8s/pods/``: Kubernetes pods of a range the same way (issue 13), filterable by
  namespace, with each pod's GPUs, CO2e, allocated-idle waste and how its GPUs were split.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from greenkpi.ingest.auth import CollectorTokenAuthentication
from greenkpi.ingest.openapi import problems
from greenkpi.inventory.access import NoOrganisation, Scope, scope_for
from greenkpi.inventory.mappings import mapping_delete, mapping_save
from greenkpi.inventory.models import RUN_KINDS, IdentityMapping, MappingKind, Team
from greenkpi.kpis import labels
from greenkpi.kpis.scheduler import SHARE_RULES
from greenkpi.lib.periods import BadPeriod, period_from_query
from greenkpi.workloads import access
from greenkpi.workloads.fields import StrictCharField, StrictIntegerField, StrictSlugField
from greenkpi.workloads.selectors.scheduler import jobs_report, pods_report

TAGS = ["attribution"]

# Every error each operation can answer, as problem+json (401: no credentials; 403: a collector
# token, a member without the admin role, or a session without its CSRF token; 404: unknown or
# another organisation's; 415: a body that is not JSON).
READ_ERRORS = problems(401, 403, 404)
QUERY_ERRORS = problems(400, 401, 403, 404, s400="Bad range or dates")
WRITE_ERRORS = problems(400, 401, 403, 404, 415)
# Bounded in the schema: an unbounded query string can outgrow the server's request line (414).
# Empty means the only (or first) organisation of the person.
ORG_PARAM = OpenApiParameter(
    "org",
    {"type": "string", "maxLength": 100, "pattern": "^[-a-zA-Z0-9_]*$"},
    description="Organisation slug (people in many).",
)
SLURM_NAME_MAX = 100  # the payload's limit for a Slurm account or user (greenkpi_schema)
SLURM_NAME = {"type": "string", "maxLength": SLURM_NAME_MAX}
MAPPING_ID = OpenApiParameter(
    "mapping_id",
    {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
    location=OpenApiParameter.PATH,
)


def _scope(request: Request, *, admin: bool) -> Scope:
    access.forbid_collector_reads(request)
    try:
        scope = scope_for(request.user, request.query_params.get("org") or None)
    except NoOrganisation:
        raise Http404("no organisation") from None
    if admin and not scope.manages_org:
        raise PermissionDenied("identity mappings need the organisation's admin role")
    return scope


class MappingSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    # Plain strings (checked by the mapping service, which names the field): choice fields here
    # would give the OpenAPI schema second enums of the kinds the registry already names.
    kind = StrictCharField(max_length=32, help_text=f"One of {', '.join(MappingKind.values)}.")
    cluster = StrictCharField(max_length=200, required=False, default="", allow_blank=True)
    pattern = StrictCharField(max_length=200)
    team = StrictSlugField(required=False, allow_null=True, default=None)
    model_key = StrictCharField(max_length=200, required=False, default="", allow_blank=True)
    run_kind = StrictCharField(
        max_length=12,
        required=False,
        default="",
        allow_blank=True,
        help_text=f"Empty, or one of {', '.join(k for k, _ in RUN_KINDS)}.",
    )
    priority = StrictIntegerField(required=False, default=0, min_value=-1000, max_value=1000)
    note = StrictCharField(max_length=200, required=False, default="", allow_blank=True)


def _out(mapping: IdentityMapping) -> dict[str, Any]:
    return {
        "id": mapping.pk,
        "kind": mapping.kind,
        "cluster": mapping.cluster,
        "pattern": mapping.pattern,
        "team": mapping.team.slug if mapping.team_id else None,
        "model_key": mapping.model_key,
        "run_kind": mapping.run_kind,
        "priority": mapping.priority,
        "note": mapping.note,
    }


class _Api(APIView):
    authentication_classes = [CollectorTokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]


def _save(scope: Scope, data: dict[str, Any], mapping: IdentityMapping | None) -> IdentityMapping:
    team = None
    if data.get("team"):
        team = Team.objects.filter(organisation=scope.organisation, slug=data["team"]).first()
        if team is None:
            raise ValidationError({"team": [f"no team {data['team']!r} in this organisation"]})
    try:
        return mapping_save(
            organisation=scope.organisation,
            mapping=mapping,
            kind=data["kind"],
            pattern=data["pattern"],
            team=team,
            model_key=data["model_key"],
            run_kind=data["run_kind"],
            priority=data["priority"],
            cluster=data["cluster"],
            note=data["note"],
        )
    except DjangoValidationError as exc:
        raise ValidationError(exc.message_dict) from None


class MappingsApi(_Api):
    @extend_schema(
        operation_id="identity_mappings_list",
        tags=TAGS,
        parameters=[ORG_PARAM],
        responses={200: MappingSerializer(many=True), **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        scope = _scope(request, admin=True)
        rows = IdentityMapping.objects.filter(organisation=scope.organisation).select_related(
            "team"
        )
        return Response([_out(m) for m in rows])

    @extend_schema(
        operation_id="identity_mappings_create",
        summary="Map a Slurm user / account to a team, or a job-name / comment pattern to a model",
        tags=TAGS,
        parameters=[ORG_PARAM],
        request=MappingSerializer,
        responses={201: MappingSerializer, **WRITE_ERRORS},
    )
    def post(self, request: Request) -> Response:
        scope = _scope(request, admin=True)
        serializer = MappingSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        mapping = _save(scope, dict(serializer.validated_data), None)
        return Response(_out(mapping), status=status.HTTP_201_CREATED)


class MappingApi(_Api):
    def _mapping(self, request: Request, mapping_id: int) -> tuple[Scope, IdentityMapping]:
        scope = _scope(request, admin=True)
        mapping = (
            IdentityMapping.objects.filter(organisation=scope.organisation, pk=mapping_id)
            .select_related("team")
            .first()
        )
        if mapping is None:
            raise Http404("no such mapping")
        return scope, mapping

    @extend_schema(
        operation_id="identity_mapping_read",
        tags=TAGS,
        parameters=[MAPPING_ID, ORG_PARAM],
        responses={200: MappingSerializer, **READ_ERRORS},
    )
    def get(self, request: Request, mapping_id: int) -> Response:
        return Response(_out(self._mapping(request, mapping_id)[1]))

    @extend_schema(
        operation_id="identity_mapping_update",
        tags=TAGS,
        parameters=[MAPPING_ID, ORG_PARAM],
        request=MappingSerializer,
        responses={200: MappingSerializer, **WRITE_ERRORS},
    )
    def put(self, request: Request, mapping_id: int) -> Response:
        scope, mapping = self._mapping(request, mapping_id)
        serializer = MappingSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(_out(_save(scope, dict(serializer.validated_data), mapping)))

    @extend_schema(
        operation_id="identity_mapping_delete",
        tags=TAGS,
        parameters=[MAPPING_ID, ORG_PARAM],
        responses={204: None, **READ_ERRORS},
    )
    def delete(self, request: Request, mapping_id: int) -> Response:
        mapping_delete(mapping=self._mapping(request, mapping_id)[1])
        return Response(status=status.HTTP_204_NO_CONTENT)


class _JobOut(serializers.Serializer):
    run_key = serializers.CharField()
    cluster = serializers.CharField()
    job_id = serializers.CharField()
    user = serializers.CharField()
    account = serializers.CharField()
    partition = serializers.CharField()
    job_name = serializers.CharField()
    team = serializers.CharField(allow_null=True)
    model_key = serializers.CharField()
    started_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    energy_kwh = serializers.FloatField()
    kgco2e = serializers.FloatField()
    gpu_h = serializers.FloatField()
    wasted_gpu_h = serializers.FloatField()
    wasted_energy_kwh = serializers.FloatField()
    wasted_kgco2e = serializers.FloatField()
    unmapped_energy_kwh = serializers.FloatField()


class _GroupOut(serializers.Serializer):
    key = serializers.CharField(allow_null=True)
    jobs = serializers.IntegerField()
    energy_kwh = serializers.FloatField()
    wasted_gpu_h = serializers.FloatField()
    wasted_energy_kwh = serializers.FloatField()
    wasted_kgco2e = serializers.FloatField()


class _UnmappedAccountOut(serializers.Serializer):
    account = serializers.CharField()
    energy_kwh = serializers.FloatField()


class _UnmappedOut(serializers.Serializer):
    energy_kwh = serializers.FloatField()
    total_energy_kwh = serializers.FloatField()
    share = serializers.FloatField(allow_null=True)
    accounts = _UnmappedAccountOut(many=True)


class JobsReportSerializer(serializers.Serializer):
    jobs = _JobOut(many=True)
    by_account = _GroupOut(many=True)
    by_user = _GroupOut(many=True)
    by_team = _GroupOut(many=True)
    unmapped = _UnmappedOut()


class SlurmJobsApi(_Api):
    @extend_schema(
        operation_id="slurm_jobs",
        parameters=[
            ORG_PARAM,
            OpenApiParameter("range", str, description="24h, 7d, 30d (default) or 90d."),
            OpenApiParameter("from", str, description="YYYY-MM-DD (whole UTC days, with to)."),
            OpenApiParameter("to", str, description="YYYY-MM-DD, included."),
            OpenApiParameter("account", SLURM_NAME, description="Only this Slurm account."),
            OpenApiParameter("user", SLURM_NAME, description="Only this Slurm user."),
        ],
        responses={200: JobsReportSerializer, **QUERY_ERRORS},
        summary="Slurm jobs by wasted GPU-hours (allocated but idle), with per account/user/team",
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        scope = _scope(request, admin=False)
        try:
            period = period_from_query(
                request.query_params, default="30d", tz=scope.organisation.tz
            )
        except BadPeriod as exc:
            raise ValidationError({"detail": str(exc)}) from None
        params = request.query_params
        for name in ("account", "user"):
            if len(params.get(name, "")) > SLURM_NAME_MAX:
                raise ValidationError({name: [f"at most {SLURM_NAME_MAX} characters"]})
        return Response(
            jobs_report(
                organisation_id=scope.organisation.pk,
                teams={t.pk: t.slug for t in scope.teams},
                start=period.start,
                end=period.end,
                account=params.get("account", ""),
                user=params.get("user", ""),
            )
        )


K8S_NAMESPACE_MAX = 63  # an RFC 1123 label (greenkpi_schema's pod namespace)
K8S_NAMESPACE = {"type": "string", "maxLength": K8S_NAMESPACE_MAX}


class _PodOut(serializers.Serializer):
    namespace = serializers.CharField()
    pod = serializers.CharField()
    container = serializers.CharField(help_text="Empty when the kubelet did not say.")
    cluster = serializers.CharField()
    run_key = serializers.CharField()
    team = serializers.CharField(allow_null=True)
    model_key = serializers.CharField()
    started_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    gpus = serializers.IntegerField(help_text="GPUs the pod had a share of in the range.")
    energy_kwh = serializers.FloatField()
    kgco2e = serializers.FloatField(help_text=f"CO2e, {labels.TOTAL.name}, kg.")
    scope2_location_kgco2e = serializers.FloatField(help_text=f"{labels.SCOPE2_LOCATION.tile}, kg.")
    embodied_kgco2e = serializers.FloatField(help_text=f"{labels.EMBODIED.tile}, kg.")
    gpu_h = serializers.FloatField()
    wasted_gpu_h = serializers.FloatField(help_text="Allocated-but-idle GPU-hours.")
    wasted_energy_kwh = serializers.FloatField()
    wasted_kgco2e = serializers.FloatField(
        help_text=f"{labels.SCOPE2_LOCATION.tile} of the waste, kg."
    )
    unmapped_energy_kwh = serializers.FloatField()
    share_rules = serializers.ListField(
        child=serializers.CharField(),
        help_text="How the pod's GPUs were split: "
        + ", ".join(f"{k} ({v})" for k, v in SHARE_RULES.items())
        + ".",
    )
    share_rule_names = serializers.ListField(child=serializers.CharField())


class _PodGroupOut(serializers.Serializer):
    key = serializers.CharField(allow_null=True)
    jobs = serializers.IntegerField(help_text="Pods.")
    energy_kwh = serializers.FloatField()
    wasted_gpu_h = serializers.FloatField()
    wasted_energy_kwh = serializers.FloatField()
    wasted_kgco2e = serializers.FloatField()


class PodsReportSerializer(serializers.Serializer):
    pods = _PodOut(many=True)
    by_namespace = _PodGroupOut(many=True)
    by_team = _PodGroupOut(many=True)


class K8sPodsApi(_Api):
    @extend_schema(
        operation_id="k8s_pods",
        parameters=[
            ORG_PARAM,
            OpenApiParameter("range", str, description="24h, 7d, 30d (default) or 90d."),
            OpenApiParameter("from", str, description="YYYY-MM-DD (whole UTC days, with to)."),
            OpenApiParameter("to", str, description="YYYY-MM-DD, included."),
            OpenApiParameter("namespace", K8S_NAMESPACE, description="Only this namespace."),
        ],
        responses={200: PodsReportSerializer, **QUERY_ERRORS},
        summary="Kubernetes pods by wasted GPU-hours (allocated but idle), per namespace and team",
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        scope = _scope(request, admin=False)
        try:
            period = period_from_query(
                request.query_params, default="30d", tz=scope.organisation.tz
            )
        except BadPeriod as exc:
            raise ValidationError({"detail": str(exc)}) from None
        namespace = request.query_params.get("namespace", "")
        if len(namespace) > K8S_NAMESPACE_MAX:
            raise ValidationError({"namespace": [f"at most {K8S_NAMESPACE_MAX} characters"]})
        return Response(
            pods_report(
                organisation_id=scope.organisation.pk,
                teams={t.pk: t.slug for t in scope.teams},
                start=period.start,
                end=period.end,
                namespace=namespace,
            )
        )
