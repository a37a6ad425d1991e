"""The registry API under /api/v1/models/: one class per operation, nested input/output
serializers, logic in services and selectors (access rules in ``access``)."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from greenkpi.ingest.auth import CollectorTokenAuthentication, CollectorTokenRateThrottle
from greenkpi.ingest.openapi import problems
from greenkpi.inventory.models import Team
from greenkpi.lib.periods import BadPeriod, period_from_query
from greenkpi.workloads import access, lifecycle, selectors, services
from greenkpi.workloads.fields import (
    StrictBooleanField,
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
    StrictSlugField,
)
from greenkpi.workloads.models import (
    KEY_MAX_LEN,
    MLModel,
    ModelVersion,
    Run,
    RunKind,
    RunStatus,
    SciConsumerUnit,
    SciProviderUnit,
)
from greenkpi.workloads.selectors import detail, listing

TAGS = ["models"]

# Every error each kind of operation can answer, as problem+json (401: no credentials; 403: a
# collector token reading, a viewer writing, or a session without its CSRF token; 404: unknown
# or invisible; 415: a body that is not JSON; 429: a collector token over its rate).
READ_ERRORS = problems(401, 403, 404, 429)
QUERY_ERRORS = problems(400, 401, 403, 404, 429, s400="Bad range, dates, team or sort")
WRITE_ERRORS = problems(400, 401, 403, 404, 415, 429)

# Bounds of the stored columns, so no number reaches the database that it cannot hold (a 400
# naming the field instead of a 500) and the schema states them. Ids are BigAutoField.
ID_MAX = 2**63 - 1
POSITIVE_INT_MAX = 2**31 - 1  # PositiveIntegerField on PostgreSQL (integer)
# Float columns are doubles, which hold any finite number; metric values, statistics and counts
# are further capped so the sums, ratios and weights computed from them stay finite (and JSON).
METRIC_ABS_MAX = 1e12
COUNT_MAX = 1e15
BIG_COUNT_MAX = 2**63 - 1  # PositiveBigIntegerField (bigint): parameters, training tokens
DAYS_MAX = 36_500.0  # a century
IMPORTANCE_MAX = 1e6
DESCRIPTION_MAX_LEN = 10_000


class RegistryApi(APIView):
    """Session (people) or collector token (training jobs: write-only)."""

    authentication_classes = [CollectorTokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]
    throttle_classes = [CollectorTokenRateThrottle]
    # JSON only, as documented: form bodies cannot carry the nested policy or features anyway.
    parser_classes = [JSONParser]

    def valid(self, serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
        serializer = serializer_class(data=data)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)


def _refused(exc: services.RegistryError) -> ValidationError:
    return ValidationError({"detail": str(exc)})


def _version(model: MLModel, name: str | None, *, default_deployed: bool) -> ModelVersion | None:
    if not name:
        return selectors.deployed_version(model=model) if default_deployed else None
    version = model.versions.filter(version=name).first()
    if version is None:
        raise ValidationError({"version": f"unknown version {name!r}; register it first"})
    return version


class PolicySerializer(serializers.Serializer):
    primary_metric = StrictCharField(max_length=100, required=False)
    higher_is_better = StrictBooleanField(required=False)
    metric_floor = StrictFloatField(
        required=False, allow_null=True, min_value=-METRIC_ABS_MAX, max_value=METRIC_ABS_MAX
    )
    max_age_days = StrictFloatField(required=False, min_value=0.01, max_value=DAYS_MAX)
    min_retrain_interval_days = StrictFloatField(required=False, min_value=0, max_value=DAYS_MAX)
    persistence_evaluations = StrictIntegerField(required=False, min_value=1, max_value=100)
    need_watch = StrictFloatField(required=False, min_value=0, max_value=1)
    need_enter = StrictFloatField(required=False, min_value=0, max_value=1)
    need_exit = StrictFloatField(required=False, min_value=0, max_value=1)
    min_gain_per_kgco2e = StrictFloatField(
        required=False, allow_null=True, min_value=0, max_value=METRIC_ABS_MAX
    )
    min_gain = StrictFloatField(required=False, min_value=-METRIC_ABS_MAX, max_value=METRIC_ABS_MAX)
    sci_provider_unit = serializers.ChoiceField(
        choices=SciProviderUnit.choices,
        required=False,
        help_text="SCI for AI provider score unit (docs/kpis.md).",
    )
    sci_consumer_unit = serializers.ChoiceField(
        choices=SciConsumerUnit.choices,
        required=False,
        help_text="SCI for AI consumer score unit (docs/kpis.md).",
    )


class AssessmentSerializer(serializers.Serializer):
    verdict = serializers.CharField()
    need = serializers.FloatField()
    perf_score = serializers.FloatField()
    drift_score = serializers.FloatField()
    age_score = serializers.FloatField()
    metric_value = serializers.FloatField(allow_null=True)
    baseline_value = serializers.FloatField(allow_null=True)
    age_days = serializers.FloatField(allow_null=True)
    need_active = serializers.BooleanField()
    streak = serializers.IntegerField()
    days_since_retrain = serializers.FloatField(allow_null=True)
    expected_energy_kwh = serializers.FloatField(allow_null=True)
    expected_kgco2e = serializers.FloatField(allow_null=True)
    expected_gain = serializers.FloatField(allow_null=True)
    reasons = serializers.ListField(child=serializers.CharField())
    computed_at = serializers.DateTimeField()
    verdict_since = serializers.DateTimeField()


class ModelOutput(PolicySerializer):
    id = serializers.IntegerField()
    team = serializers.CharField(source="team.slug")
    key = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    created_at = serializers.DateTimeField()


class ModelsApi(RegistryApi):
    class ModelsInput(serializers.Serializer):
        org = StrictSlugField(required=False, help_text="Organisation slug (people in many).")
        team = StrictSlugField()
        key = StrictCharField(max_length=KEY_MAX_LEN, help_text="The collectors' model key.")
        name = StrictCharField(max_length=200, required=False, default="", allow_blank=True)
        description = StrictCharField(
            max_length=DESCRIPTION_MAX_LEN, required=False, default="", allow_blank=True
        )
        policy = PolicySerializer(required=False)

    class ModelsCreated(serializers.Serializer):
        id = serializers.IntegerField()
        team = serializers.CharField()
        key = serializers.CharField()
        created = serializers.BooleanField()

    @extend_schema(
        operation_id="models_list",
        tags=TAGS,
        responses={200: ModelOutput(many=True), **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        access.forbid_collector_reads(request)
        scope = access.access_for(request, request.query_params.get("org") or None)
        models = selectors.models_visible(
            organisation_id=scope.organisation.pk, team_ids=scope.readable_team_ids
        )
        return Response(ModelOutput(models, many=True).data)

    @extend_schema(
        operation_id="models_register",
        summary="Register a model (idempotent: the same team and key return the existing one)",
        tags=TAGS,
        request=ModelsInput,
        responses={200: ModelsCreated, 201: ModelsCreated, **WRITE_ERRORS},
    )
    def post(self, request: Request) -> Response:
        data = self.valid(self.ModelsInput, request.data)
        team = access.team_for_write(request, team_slug=data["team"], org_slug=data.get("org"))
        owner = None if isinstance(request.auth, access.CollectorToken) else request.user
        try:
            model, created = services.model_register(
                team=team,
                key=data["key"],
                name=data["name"],
                description=data["description"],
                owner=owner,
                policy=dict(data.get("policy") or {}),
            )
        except services.RegistryError as exc:
            raise _refused(exc) from None
        body = {"id": model.pk, "team": team.slug, "key": model.key, "created": created}
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class ModelsSummaryApi(RegistryApi):
    """What the dashboard's models list shows, from the same selector (``listing.model_summaries``)."""

    @extend_schema(
        operation_id="models_summary",
        summary="Per visible model: energy and kgCO2e in a range (training / inference / other), "
        "latest training run, verdict, SCI per 1,000 inferences",
        tags=TAGS,
        parameters=[
            OpenApiParameter("org", str, description="Organisation slug (people in many)."),
            OpenApiParameter("range", str, description="24h, 7d, 30d (default) or 90d."),
            OpenApiParameter("from", str, description="YYYY-MM-DD (whole UTC days, with to)."),
            OpenApiParameter("to", str, description="YYYY-MM-DD, included."),
            OpenApiParameter("team", str, many=True, description="Team slugs (repeatable)."),
            OpenApiParameter(
                "sort", str, description="-energy (default), energy, -co2e, co2e, name."
            ),
        ],
        responses={
            200: serializers.ListSerializer(child=serializers.DictField()),
            **QUERY_ERRORS,
        },
    )
    def get(self, request: Request) -> Response:
        access.forbid_collector_reads(request)
        scope = access.access_for(request, request.query_params.get("org") or None)
        team_ids = set(scope.readable_team_ids)
        slugs = request.query_params.getlist("team")
        if not all(access.is_slug(slug) for slug in slugs):
            raise Http404("no such team")
        if slugs:
            wanted = dict(
                Team.objects.filter(organisation=scope.organisation, slug__in=slugs).values_list(
                    "slug", "pk"
                )
            )
            if set(slugs) - wanted.keys() or not set(wanted.values()) <= team_ids:
                raise Http404("no such team")
            team_ids = set(wanted.values())
        try:
            period = period_from_query(
                request.query_params, default="30d", tz=scope.organisation.tz
            )
            frame = listing.model_summaries(
                organisation_id=scope.organisation.pk,
                team_ids=team_ids,
                start=period.start,
                end=period.end,
                sort=request.query_params.get("sort", listing.DEFAULT_SORT),
            )
        except (BadPeriod, listing.BadSort) as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return Response(listing.records(frame))


class ModelDetailApi(RegistryApi):
    class ModelDetailOutput(ModelOutput):
        versions = serializers.SerializerMethodField()
        assessment = serializers.SerializerMethodField()

        def get_versions(self, model: MLModel) -> list[dict[str, Any]]:
            return [
                {
                    "version": v.version,
                    "status": v.status,
                    "baseline_value": v.baseline_value,
                    "trained_at": v.trained_at,
                    "deployed_at": v.deployed_at,
                }
                for v in model.versions.all()
            ]

        def get_assessment(self, model: MLModel) -> dict[str, Any] | None:
            row = getattr(model, "assessment", None)
            return AssessmentSerializer(row).data if row is not None else None

    @extend_schema(
        operation_id="models_retrieve", tags=TAGS, responses={200: ModelDetailOutput, **READ_ERRORS}
    )
    def get(self, request: Request, model_id: int) -> Response:
        model = access.model_for(request, model_id, write=False)
        return Response(self.ModelDetailOutput(model).data)


class VersionsApi(RegistryApi):
    class VersionsInput(serializers.Serializer):
        version = StrictCharField(max_length=100)
        baseline_value = StrictFloatField(
            required=False,
            allow_null=True,
            default=None,
            min_value=-METRIC_ABS_MAX,
            max_value=METRIC_ABS_MAX,
        )
        trained_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
        deploy = StrictBooleanField(required=False, default=False)
        parameters = StrictIntegerField(
            required=False,
            allow_null=True,
            default=None,
            min_value=1,
            max_value=BIG_COUNT_MAX,
            help_text="Trainable parameters (SCI for AI provider unit).",
        )
        training_tokens = StrictIntegerField(
            required=False,
            allow_null=True,
            default=None,
            min_value=1,
            max_value=BIG_COUNT_MAX,
            help_text="Tokens in the training data (SCI for AI provider unit).",
        )

    class VersionsOutput(serializers.Serializer):
        id = serializers.IntegerField()
        version = serializers.CharField()
        status = serializers.CharField()
        created = serializers.BooleanField()

    @extend_schema(
        operation_id="models_versions_register",
        summary="Register (and optionally deploy) a version",
        tags=TAGS,
        request=VersionsInput,
        responses={200: VersionsOutput, 201: VersionsOutput, **WRITE_ERRORS},
    )
    def post(self, request: Request, model_id: int) -> Response:
        model = access.model_for(request, model_id, write=True)
        data = self.valid(self.VersionsInput, request.data)
        version, created = services.version_register(model=model, **data)
        body = {"id": version.pk, "version": version.version, "status": version.status}
        return Response(
            {**body, "created": created},
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class RunsApi(RegistryApi):
    class RunsInput(serializers.Serializer):
        key = StrictCharField(max_length=KEY_MAX_LEN, help_text="The collectors' run key.")
        kind = serializers.ChoiceField(choices=RunKind.choices)
        started_at = serializers.DateTimeField(required=False, default=None)
        version = StrictCharField(max_length=100, required=False, default="", allow_blank=True)
        functional_unit = StrictCharField(
            max_length=50, required=False, default="", allow_blank=True
        )
        recurrence = StrictCharField(max_length=100, required=False, default="", allow_blank=True)
        mlflow_run_id = StrictCharField(
            max_length=100, required=False, default="", allow_blank=True
        )

    class RunsOpened(serializers.Serializer):
        id = serializers.IntegerField()
        key = serializers.CharField()
        status = serializers.CharField()
        created = serializers.BooleanField()

    class RunsOutput(serializers.Serializer):
        id = serializers.IntegerField()
        key = serializers.CharField()
        kind = serializers.CharField()
        status = serializers.CharField()
        version = serializers.CharField(allow_null=True)
        started_at = serializers.DateTimeField()
        ended_at = serializers.DateTimeField(allow_null=True)
        recurrence = serializers.CharField()
        mlflow_run_id = serializers.CharField()
        functional_unit = serializers.CharField()
        functional_units = serializers.FloatField(allow_null=True)
        energy_kwh = serializers.FloatField()
        kgco2e = serializers.FloatField(help_text="Operational (location-based) + embodied.")
        gpu_hours = serializers.FloatField()
        hosts = serializers.IntegerField()
        devices = serializers.IntegerField()
        sci_kgco2e_per_unit = serializers.FloatField(allow_null=True)

    @extend_schema(
        operation_id="models_runs_list",
        tags=TAGS,
        responses={200: RunsOutput(many=True), **READ_ERRORS},
    )
    def get(self, request: Request, model_id: int) -> Response:
        model = access.model_for(request, model_id, write=False)
        rows = []
        # The model page's runs table reads the same selector, so its numbers match these.
        for row in detail.runs_table(model=model, placement=True)[::-1]:
            run, totals = row.run, row.totals
            rows.append(
                {
                    "id": run.pk,
                    "key": run.key,
                    "kind": run.kind,
                    "status": run.status,
                    "version": run.version.version if run.version else None,
                    "started_at": run.started_at,
                    "ended_at": run.ended_at,
                    "recurrence": run.recurrence,
                    "mlflow_run_id": run.mlflow_run_id,
                    "functional_unit": run.functional_unit,
                    "functional_units": run.functional_units,
                    "energy_kwh": totals.energy_kwh,
                    "kgco2e": totals.kgco2e,
                    "gpu_hours": totals.gpu_hours,
                    "hosts": totals.hosts,
                    "devices": totals.devices,
                    "sci_kgco2e_per_unit": row.sci_kgco2e_per_unit,
                }
            )
        return Response(self.RunsOutput(rows, many=True).data)

    @extend_schema(
        operation_id="models_runs_open",
        summary="Open a run (idempotent by key: a retry returns the same run)",
        tags=TAGS,
        request=RunsInput,
        responses={200: RunsOpened, 201: RunsOpened, **WRITE_ERRORS},
    )
    def post(self, request: Request, model_id: int) -> Response:
        model = access.model_for(request, model_id, write=True)
        data = self.valid(self.RunsInput, request.data)
        version = _version(model, data.pop("version"), default_deployed=False)
        run, created = services.run_open(model=model, version=version, **data)
        body = {"id": run.pk, "key": run.key, "status": run.status, "created": created}
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


def _run(model: MLModel, run_id: int) -> Run:
    run = model.runs.filter(pk=run_id).first()
    if run is None:
        raise Http404("no such run")
    return run


class ProducedVersionSerializer(serializers.Serializer):
    version = StrictCharField(max_length=100)
    baseline_value = StrictFloatField(
        required=False,
        allow_null=True,
        default=None,
        min_value=-METRIC_ABS_MAX,
        max_value=METRIC_ABS_MAX,
    )
    deploy = StrictBooleanField(required=False, default=False)


class RunCloseApi(RegistryApi):
    class RunCloseInput(serializers.Serializer):
        status = serializers.ChoiceField(
            choices=[c for c in RunStatus.choices if c[0] != RunStatus.RUNNING],
            required=False,
            default=RunStatus.SUCCEEDED,
        )
        ended_at = serializers.DateTimeField(required=False, default=None)
        functional_units = StrictFloatField(
            required=False, allow_null=True, default=None, min_value=0, max_value=COUNT_MAX
        )
        functional_unit = StrictCharField(
            max_length=50, required=False, default="", allow_blank=True
        )
        produced_version = ProducedVersionSerializer(required=False, allow_null=True, default=None)

    class RunCloseOutput(serializers.Serializer):
        id = serializers.IntegerField()
        key = serializers.CharField()
        status = serializers.CharField()
        produced_version = serializers.CharField(allow_null=True)

    @extend_schema(
        operation_id="models_runs_close",
        summary="Close a run with its outcome and functional-unit count (SCI's R)",
        tags=TAGS,
        request=RunCloseInput,
        responses={200: RunCloseOutput, **WRITE_ERRORS},
    )
    def post(self, request: Request, model_id: int, run_id: int) -> Response:
        model = access.model_for(request, model_id, write=True)
        run = _run(model, run_id)
        data = self.valid(self.RunCloseInput, request.data)
        produced = data.pop("produced_version")
        try:
            run = services.run_close(run=run, **data)
        except services.RegistryError as exc:
            raise _refused(exc) from None
        version = None
        if produced:
            version, _ = services.version_register(
                model=model, trained_at=run.ended_at, trained_by=run, **produced
            )
        body = {
            "id": run.pk,
            "key": run.key,
            "status": run.status,
            "produced_version": version.version if version else None,
        }
        return Response(body)


class EvaluationsApi(RegistryApi):
    class EvaluationsInput(serializers.Serializer):
        metric = StrictCharField(max_length=100)
        value = StrictFloatField(min_value=-METRIC_ABS_MAX, max_value=METRIC_ABS_MAX)
        higher_is_better = StrictBooleanField(required=False, default=True)
        version = StrictCharField(
            max_length=100,
            required=False,
            default="",
            allow_blank=True,
            help_text="Default: the deployed one.",
        )
        run = StrictIntegerField(
            required=False, allow_null=True, default=None, min_value=1, max_value=ID_MAX
        )
        window_start = serializers.DateTimeField(required=False, allow_null=True, default=None)
        window_end = serializers.DateTimeField()
        labelled = StrictBooleanField(
            required=False, default=True, help_text="False: estimated without labels (CBPE ...)."
        )
        samples = StrictIntegerField(
            required=False, allow_null=True, min_value=0, max_value=POSITIVE_INT_MAX, default=None
        )

    class EvaluationsOutput(serializers.Serializer):
        id = serializers.IntegerField()
        metric = serializers.CharField()
        value = serializers.FloatField()
        version = serializers.CharField(source="version.version", allow_null=True, default=None)
        window_start = serializers.DateTimeField(allow_null=True)
        window_end = serializers.DateTimeField()
        labelled = serializers.BooleanField()
        higher_is_better = serializers.BooleanField()

    @extend_schema(
        operation_id="models_evaluations_list",
        tags=TAGS,
        responses={200: EvaluationsOutput(many=True), **READ_ERRORS},
    )
    def get(self, request: Request, model_id: int) -> Response:
        model = access.model_for(request, model_id, write=False)
        rows = model.evaluations.select_related("version").order_by("window_end", "pk")
        return Response(self.EvaluationsOutput(rows, many=True).data)

    @extend_schema(
        operation_id="models_evaluations_create",
        summary="Post an evaluation (labelled or estimated) of a version over a window",
        tags=TAGS,
        request=EvaluationsInput,
        responses={201: EvaluationsOutput, **WRITE_ERRORS},
    )
    def post(self, request: Request, model_id: int) -> Response:
        model = access.model_for(request, model_id, write=True)
        data = self.valid(self.EvaluationsInput, request.data)
        data["version"] = _version(model, data["version"], default_deployed=True)
        data["run"] = _run(model, data["run"]) if data["run"] is not None else None
        try:
            row = services.evaluation_create(model=model, **data)
        except services.RegistryError as exc:
            raise _refused(exc) from None
        return Response(self.EvaluationsOutput(row).data, status=status.HTTP_201_CREATED)


class DriftFeatureInput(serializers.Serializer):
    """One feature of a drift report: a statistic the client computed, or histograms."""

    feature = StrictCharField(max_length=200)
    statistic = StrictCharField(
        max_length=20, required=False, default="js", help_text="psi, js, wasserstein or yours"
    )
    value = StrictFloatField(
        required=False,
        allow_null=True,
        default=None,
        min_value=-METRIC_ABS_MAX,
        max_value=METRIC_ABS_MAX,
    )
    threshold = StrictFloatField(
        required=False, allow_null=True, default=None, min_value=0, max_value=METRIC_ABS_MAX
    )
    importance = StrictFloatField(
        required=False, allow_null=True, default=None, min_value=0, max_value=IMPORTANCE_MAX
    )
    reference_counts = serializers.ListField(
        child=StrictFloatField(min_value=0, max_value=COUNT_MAX),
        required=False,
        allow_null=True,
        default=None,
        max_length=1000,
    )
    current_counts = serializers.ListField(
        child=StrictFloatField(min_value=0, max_value=COUNT_MAX),
        required=False,
        allow_null=True,
        default=None,
        max_length=1000,
    )
    bin_edges = serializers.ListField(
        child=StrictFloatField(min_value=-COUNT_MAX, max_value=COUNT_MAX),
        required=False,
        allow_null=True,
        default=None,
        max_length=1001,
    )


class DriftReportsApi(RegistryApi):
    class DriftReportsInput(serializers.Serializer):
        version = StrictCharField(max_length=100, required=False, default="", allow_blank=True)
        window_start = serializers.DateTimeField(required=False, allow_null=True, default=None)
        window_end = serializers.DateTimeField()
        # A nested serializer, not dicts validated one by one: its errors carry each item's
        # index, so they become JSON pointers such as /features/1/value.
        features = DriftFeatureInput(many=True, min_length=1, max_length=500)

    class DriftReportsFeatureOutput(serializers.Serializer):
        feature = serializers.CharField()
        statistic = serializers.CharField()
        value = serializers.FloatField()
        threshold = serializers.FloatField()
        importance = serializers.FloatField(allow_null=True)
        computed_by_server = serializers.BooleanField()

    class DriftReportsOutput(serializers.Serializer):
        id = serializers.IntegerField()
        score = serializers.FloatField(help_text="Importance-weighted drift score, 0..1.")
        window_end = serializers.DateTimeField()
        features = serializers.SerializerMethodField()

        def get_features(self, report: Any) -> list[dict[str, Any]]:
            return DriftReportsApi.DriftReportsFeatureOutput(report.features.all(), many=True).data

    @extend_schema(
        operation_id="models_drift_reports_create",
        summary="Post a drift report: per feature a statistic, or histograms the server scores",
        tags=TAGS,
        request=DriftReportsInput,
        responses={201: DriftReportsOutput, **WRITE_ERRORS},
    )
    def post(self, request: Request, model_id: int) -> Response:
        model = access.model_for(request, model_id, write=True)
        data = self.valid(self.DriftReportsInput, request.data)
        features = [services.FeatureInput(**dict(raw)) for raw in data["features"]]
        version = _version(model, data["version"], default_deployed=True)
        try:
            report = services.drift_report_create(
                model=model,
                version=version,
                window_start=data["window_start"],
                window_end=data["window_end"],
                features=features,
            )
        except services.RegistryError as exc:
            raise _refused(exc) from None
        return Response(self.DriftReportsOutput(report).data, status=status.HTTP_201_CREATED)


class RetrainingApi(RegistryApi):
    class RetrainingOutcome(serializers.Serializer):
        run = serializers.CharField(source="run.key")
        previous_version = serializers.CharField(source="previous_version.version", default=None)
        new_version = serializers.CharField(source="new_version.version", default=None)
        metric = serializers.CharField()
        value_before = serializers.FloatField()
        value_after = serializers.FloatField()
        gain = serializers.FloatField()
        energy_kwh = serializers.FloatField()
        kgco2e = serializers.FloatField()
        gain_per_kwh = serializers.FloatField(allow_null=True)
        gain_per_kgco2e = serializers.FloatField(allow_null=True)
        flagged = serializers.BooleanField()
        reason = serializers.CharField()

    class RetrainingChange(serializers.Serializer):
        previous = serializers.CharField()
        verdict = serializers.CharField()
        need = serializers.FloatField()
        changed_at = serializers.DateTimeField()

    class RetrainingOutput(serializers.Serializer):
        assessment = AssessmentSerializer(allow_null=True)
        history = serializers.ListField(child=serializers.DictField())
        retrains = serializers.ListField(child=serializers.DictField())

    @extend_schema(
        operation_id="models_retraining",
        summary="Retraining need (verdict and its components), verdict history, retrain efficiency",
        tags=TAGS,
        responses={200: RetrainingOutput, **READ_ERRORS},
    )
    def get(self, request: Request, model_id: int) -> Response:
        model = access.model_for(request, model_id, write=False)
        row = getattr(model, "assessment", None)
        return Response(
            {
                "assessment": AssessmentSerializer(row).data if row is not None else None,
                "history": self.RetrainingChange(
                    selectors.verdict_history(model=model), many=True
                ).data,
                "retrains": self.RetrainingOutcome(selectors.outcomes(model=model), many=True).data,
            }
        )


class CarbonApi(RegistryApi):
    class CarbonOutput(serializers.Serializer):
        by_version = serializers.ListField(
            child=serializers.DictField(),
            help_text="kWh and kgCO2e per version and phase (training, retraining, inference ...)",
        )
        sci = serializers.ListField(
            child=serializers.DictField(),
            help_text="SCI (kgCO2e per functional unit) of each finished inference run, by end",
        )

    @extend_schema(
        operation_id="models_carbon",
        summary="Lifecycle energy and carbon per version and phase, SCI per unit over time",
        tags=TAGS,
        responses={200: CarbonOutput, **READ_ERRORS},
    )
    def get(self, request: Request, model_id: int) -> Response:
        model = access.model_for(request, model_id, write=False)
        runs = selectors.run_frame(model=model)
        by_version = lifecycle.by_version_and_phase(runs)
        sci = lifecycle.sci_over_time(runs)
        return Response(
            {
                "by_version": by_version.to_dict(orient="records"),
                "sci": [
                    {**row, "ended_at": row["ended_at"].isoformat()}
                    for row in sci.to_dict(orient="records")
                ],
            }
        )


class AdviceOptionSerializer(serializers.Serializer):
    site = serializers.CharField()
    start_hour_utc = serializers.IntegerField(source="start_hour")
    kgco2e = serializers.FloatField(help_text="Estimated operational kgCO2e of the run there")


class AdviceMeasuredSerializer(serializers.Serializer):
    before_runs = serializers.ListField(child=serializers.CharField())
    before_placement = serializers.DictField()
    after_runs = serializers.ListField(child=serializers.CharField())
    after_placement = serializers.DictField()
    before_kgco2e_per_kwh = serializers.FloatField()
    after_kgco2e_per_kwh = serializers.FloatField()
    after_energy_kwh = serializers.FloatField()
    saving_kgco2e = serializers.FloatField()
    saving_pct = serializers.FloatField(allow_null=True)


class AdviceSeriesSerializer(serializers.Serializer):
    recurrence = serializers.CharField()
    runs = serializers.IntegerField()
    reference_run = serializers.CharField(allow_null=True)
    site = serializers.CharField(allow_null=True)
    start_hour_utc = serializers.IntegerField(allow_null=True)
    energy_kwh_by_hour = serializers.ListField(child=serializers.FloatField())
    hourly = serializers.BooleanField(help_text="False: no hourly series at the run's site")
    current = AdviceOptionSerializer(allow_null=True)
    best = AdviceOptionSerializer(allow_null=True)
    saving_kgco2e = serializers.FloatField(allow_null=True)
    saving_pct = serializers.FloatField(allow_null=True)
    best_by_site = AdviceOptionSerializer(many=True)
    at_current_site = AdviceOptionSerializer(many=True)
    sites_skipped = serializers.DictField(child=serializers.CharField())
    measured = AdviceMeasuredSerializer(allow_null=True)
    notes = serializers.ListField(child=serializers.CharField())


def _advice_record(item: selectors.RecurrenceAdvice) -> dict[str, Any]:
    advised = item.advice
    measured = None
    if item.move is not None and item.measured is not None:
        before, after = item.move
        measured = {
            "before_runs": [m.run_key for m in before],
            "before_placement": {"site": before[0].site, "start_hour_utc": before[0].start_hour},
            "after_runs": [m.run_key for m in after],
            "after_placement": {"site": after[0].site, "start_hour_utc": after[0].start_hour},
            "before_kgco2e_per_kwh": item.measured.before_kg_per_kwh,
            "after_kgco2e_per_kwh": item.measured.after_kg_per_kwh,
            "after_energy_kwh": item.measured.after_energy_kwh,
            "saving_kgco2e": item.measured.saving_kgco2e,
            "saving_pct": item.measured.saving_pct,
        }
    return {
        "recurrence": item.recurrence,
        "runs": item.runs,
        "reference_run": item.reference_run,
        "site": item.site,
        "start_hour_utc": item.start_hour,
        "energy_kwh_by_hour": item.energy_kwh_by_hour,
        "hourly": item.hourly,
        "current": advised.current if advised else None,
        "best": advised.best if advised else None,
        "saving_kgco2e": advised.saving_kgco2e if advised else None,
        "saving_pct": advised.saving_pct if advised else None,
        "best_by_site": advised.by_site if advised else [],
        "at_current_site": advised.at_current_site if advised else [],
        "sites_skipped": item.sites_skipped,
        "measured": measured,
        "notes": item.notes,
    }


class AdviceApi(RegistryApi):
    class AdviceOutput(serializers.Serializer):
        model = serializers.IntegerField()
        history_days = serializers.IntegerField()
        series = AdviceSeriesSerializer(many=True)

    @extend_schema(
        operation_id="models_advice",
        summary="Carbon-aware advice for recurring runs: least-carbon start hours and sites, "
        "estimated and measured savings",
        tags=TAGS,
        responses={200: AdviceOutput, **READ_ERRORS},
    )
    def get(self, request: Request, model_id: int) -> Response:
        model = access.model_for(request, model_id, write=False)
        days = selectors.ADVICE_HISTORY_DAYS
        items = selectors.carbon_advice(model=model, history_days=days)
        data = {
            "model": model.pk,
            "history_days": days,
            "series": [_advice_record(i) for i in items],
        }
        return Response(self.AdviceOutput(data).data)
