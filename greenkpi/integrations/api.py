"""The KPI read API under /api/v1/: series, budgets with status and forecast, alerts (list,
acknowledge, silence) and alert rules (docs/api.md, "KPI read API").

Every KPI figure comes from ``kpis.read`` (series through ``integrations.series``, budgets
through ``alerts.selectors``), the layer the pages read: the API and the pages agree. Callers:
a session, or a personal access token (``Authorization: Bearer gkp_...``); a collector token is
refused (401), a read token on a write (403). Lists are cursor-paginated (``limit`` at most 1000,
a larger one is a 400); a series spans a bounded number of buckets.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

import django_filters
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q, QuerySet
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import generics, serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from greenkpi.alerts import selectors as alert_selectors
from greenkpi.alerts import services as alert_services
from greenkpi.alerts.choices import BudgetScope, Metric, RuleKind
from greenkpi.alerts.lifecycle import State
from greenkpi.alerts.models import Alert, AlertRule, Budget
from greenkpi.ingest.openapi import problems
from greenkpi.integrations import series
from greenkpi.integrations.access import Caller, caller_for
from greenkpi.integrations.auth import PersonalTokenAuthentication, TokenMayWrite
from greenkpi.integrations.pagination import (
    BoundedCursorPagination,
    decode_position,
    encode_position,
    limit_of,
)
from greenkpi.inventory.models import Host
from greenkpi.lib.periods import day_start
from greenkpi.workloads.fields import StrictBooleanField, StrictCharField, StrictIntegerField

TAGS = ["kpis"]
READ_ERRORS = problems(400, 401, 403, 404, s403="Not allowed (a collector token cannot read)")
WRITE_ERRORS = problems(
    400, 401, 403, 404, 415, s403="A read-only token, or not a manager of the alert's team"
)
FILTER_VALUES_MAX = 50
KEY_MAX_LEN = 200
ORG_PARAM = OpenApiParameter(
    "org", str, description="Organisation slug (sessions in several; a token has its own)."
)


class KpiApi(APIView):
    authentication_classes = [PersonalTokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated, TokenMayWrite]
    parser_classes = [JSONParser]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if not hasattr(self, request.method.lower()):
            return  # an undeclared method: 405 comes first
        # An empty filter (``?kind=``) is not "no filter": django-filter would ignore it and
        # answer everything, which a script with a blank variable would take for the answer.
        empty = sorted(k for k, v in request.query_params.lists() if k != "org" and "" in v)
        if empty:
            raise ValidationError({empty[0]: "empty: leave the parameter out instead"})

    def caller(self, request: Request) -> Caller:
        caller = caller_for(request, request.query_params.get("org") or None)
        team = request.query_params.get("team")
        if team and request.method == "GET" and not isinstance(self, SeriesApi):
            caller.team_by_slug(team)  # a team the caller cannot see: 404, like the pages
        return caller


def _moment(field: str, text: str, tz: tzinfo = UTC) -> datetime:
    """A date (the organisation's local midnight, ``tz``) or an ISO 8601 time with a zone; 400
    naming the field otherwise."""
    if not text:
        raise ValidationError({field: "required: a bounded range (YYYY-MM-DD or ISO 8601 time)"})
    try:
        if len(text) == 10:
            return day_start(date.fromisoformat(text), tz)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError({field: "YYYY-MM-DD or an ISO 8601 time with a zone"}) from None
    if moment.tzinfo is None:
        raise ValidationError({field: "an ISO 8601 time needs a zone (Z or +hh:mm)"})
    return moment.astimezone(UTC)


def _values(request: Request, name: str) -> list[str]:
    values = request.query_params.getlist(name)
    if len(values) > FILTER_VALUES_MAX:
        raise ValidationError({name: f"at most {FILTER_VALUES_MAX} values"})
    for value in values:
        if not value or len(value) > KEY_MAX_LEN or "\x00" in value:
            raise ValidationError({name: f"1 to {KEY_MAX_LEN} characters, no NUL"})
    return values


class SeriesRow(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    team = serializers.CharField(required=False, allow_null=True, help_text="by=team|model|run")
    model = serializers.CharField(required=False, help_text="by=model|run (empty: none)")
    run = serializers.CharField(required=False, help_text="by=run (empty: none)")
    host = serializers.CharField(required=False, allow_null=True, help_text="by=host")
    energy_kwh = serializers.FloatField(help_text="IT energy, measured and estimated (kWh)")
    estimated_energy_kwh = serializers.FloatField(help_text="Part of energy_kwh estimated")
    facility_energy_kwh = serializers.FloatField(help_text="IT energy x PUE (kWh)")
    co2e_kg = inline_serializer(
        "SeriesCo2e",
        {
            "scope2_location": serializers.FloatField(help_text="Scope 2 location-based"),
            "scope2_market": serializers.FloatField(help_text="Scope 2 market-based"),
            "embodied": serializers.FloatField(help_text="embodied (Scope 3)"),
            "total": serializers.FloatField(help_text="total (SCI numerator)"),
        },
    )
    cost = serializers.DictField(
        child=serializers.FloatField(), help_text="Currency code -> amount (priced energy only)"
    )
    gpu_hours = inline_serializer(
        "SeriesGpuHours",
        {
            "allocated": serializers.FloatField(),
            "busy": serializers.FloatField(),
            "idle": serializers.FloatField(),
        },
    )
    utilization = serializers.FloatField(
        allow_null=True, help_text="Busy / GPU-hours with a busy reading (null: no reading)"
    )
    idle_waste = inline_serializer(
        "SeriesIdleWaste",
        {
            "gpu_hours": serializers.FloatField(),
            "energy_kwh": serializers.FloatField(),
            "co2e_kg": serializers.FloatField(help_text="Scope 2 location-based of idle time"),
        },
    )


class SeriesPage(serializers.Serializer):
    next = serializers.CharField(allow_null=True, help_text="URL of the next page, or null")
    results = SeriesRow(many=True)


class SeriesApi(KpiApi):
    @extend_schema(
        operation_id="kpis_series",
        summary="Energy, carbon, cost, utilization and idle waste per bucket and key",
        tags=TAGS,
        parameters=[
            ORG_PARAM,
            OpenApiParameter("by", str, enum=series.GROUPINGS, description="Default organisation."),
            OpenApiParameter(
                "resolution", str, enum=series.RESOLUTIONS, description="Default day."
            ),
            OpenApiParameter(
                "from",
                str,
                required=True,
                description="Start (a bucket start; days and months are the organisation's "
                "time zone): YYYY-MM-DD (its local midnight) or ISO time",
            ),
            OpenApiParameter(
                "to", str, required=True, description="End, excluded (a bucket start)"
            ),
            OpenApiParameter("team", str, many=True, description="Team slugs"),
            OpenApiParameter("model", str, many=True, description="Model keys"),
            OpenApiParameter("run", str, many=True, description="Run keys"),
            OpenApiParameter("host", str, many=True, description="Hostnames"),
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": 1000},
                description="Rows per page, 1 to 1000 (default 100)",
            ),
            OpenApiParameter("cursor", str, description="From the previous page's next"),
        ],
        responses={200: SeriesPage, **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        by = params.get("by") or "organisation"
        resolution = params.get("resolution") or "day"
        if by not in series.GROUPINGS:
            raise ValidationError({"by": f"one of {', '.join(series.GROUPINGS)}"})
        if resolution not in series.RESOLUTIONS:
            raise ValidationError({"resolution": f"one of {', '.join(series.RESOLUTIONS)}"})
        caller = self.caller(request)
        tz = caller.organisation.tz  # its days and months (a bare date is its local midnight)
        start = _moment("from", params.get("from", ""), tz)
        end = _moment("to", params.get("to", ""), tz)
        try:
            series.check_range(resolution, start, end, tz)
        except series.BadSeries as exc:
            raise ValidationError({exc.field: str(exc)}) from None
        limit = limit_of(request)
        after = decode_position(params["cursor"]) if params.get("cursor") else None
        teams, models, runs = (
            _values(request, "team"),
            _values(request, "model"),
            _values(request, "run"),
        )
        hostnames = _values(request, "host")
        team_ids: frozenset[int] | None = None if caller.org_wide else caller.team_ids
        if teams:  # another organisation's team, or one the caller cannot see: 404
            team_ids = frozenset(caller.team_by_slug(slug).pk for slug in teams)
        host_ids: list[int] = []
        if hostnames:
            found = dict(
                Host.objects.filter(
                    organisation=caller.organisation, hostname__in=hostnames
                ).values_list("hostname", "pk")
            )
            if set(hostnames) - set(found):
                raise Http404("no such host")
            host_ids = sorted(found.values())
        query = series.SeriesQuery(
            organisation_id=caller.organisation.pk,
            by=by,
            resolution=resolution,
            start=start,
            end=end,
            team_ids=team_ids,
            model_keys=tuple(models),
            run_keys=tuple(runs),
            host_ids=tuple(host_ids),
            tz=caller.organisation.tz,
        )
        rows = series.series_rows(query)
        if after is not None:
            rows = [r for r in rows if series.sort_key(r) > after]
        page, more = rows[:limit], len(rows) > limit
        next_url = None
        if more:
            cursor = encode_position(series.sort_key(page[-1]))
            query_params = params.copy()
            query_params["cursor"] = cursor
            next_url = request.build_absolute_uri(f"{request.path}?{query_params.urlencode()}")
        return Response({"next": next_url, "results": SeriesRow(page, many=True).data})


# --- budgets --------------------------------------------------------------------------------


class BudgetFilter(django_filters.FilterSet):
    team = django_filters.CharFilter(field_name="team__slug", max_length=100)
    metric = django_filters.ChoiceFilter(choices=Metric.choices)
    period = django_filters.ChoiceFilter(choices=[(p, p) for p in ("month", "quarter", "year")])
    scope = django_filters.ChoiceFilter(choices=BudgetScope.choices)

    class Meta:
        model = Budget
        fields = ["team", "metric", "period", "scope"]


class BudgetOutput(serializers.Serializer):
    id = serializers.IntegerField(source="budget.pk")
    name = serializers.CharField(source="budget.name")
    scope = serializers.CharField(source="budget.scope")
    team = serializers.CharField(source="budget.team.slug", allow_null=True, default=None)
    model = serializers.CharField(source="budget.model_key")
    metric = serializers.CharField(source="budget.metric")
    unit = serializers.CharField()
    period = serializers.CharField(source="budget.period")
    period_label = serializers.CharField()
    amount = serializers.FloatField(source="budget.amount")
    consumed = serializers.FloatField()
    consumed_share = serializers.FloatField(help_text="consumed / amount (1.0 = 100 %)")
    forecast = serializers.FloatField(source="forecast_total", help_text="At the period's end")
    forecast_share = serializers.FloatField()
    forecast_method = serializers.CharField()
    crossing_at = serializers.DateTimeField(allow_null=True, help_text="When 100 % is reached")
    thresholds_reached = serializers.ListField(child=serializers.IntegerField())
    complete = serializers.BooleanField(help_text="False: silent hosts or pending recompute")
    silent_hosts = serializers.ListField(child=serializers.CharField())
    pending_recompute_hours = serializers.IntegerField()


def _visible_budgets(caller: Caller) -> QuerySet[Budget]:
    return alert_selectors.budgets_visible(
        organisation_id=caller.organisation.pk, team_ids=caller.team_ids, org_wide=caller.org_wide
    )


class BudgetsApi(KpiApi, generics.ListAPIView):
    filterset_class = BudgetFilter
    pagination_class = BoundedCursorPagination
    serializer_class = BudgetOutput
    queryset = Budget.objects.none()

    def get_queryset(self) -> QuerySet[Budget]:
        return _visible_budgets(self.caller(self.request))

    @extend_schema(
        operation_id="budgets_list",
        summary="Visible budgets with consumption, forecast and crossing date",
        tags=TAGS,
        parameters=[ORG_PARAM],
        responses={200: BudgetOutput(many=True), **READ_ERRORS},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        statuses = alert_selectors.statuses_of(list(page or []))
        return self.get_paginated_response(BudgetOutput(statuses, many=True).data)


class BudgetApi(KpiApi):
    @extend_schema(
        operation_id="budget_detail",
        tags=TAGS,
        parameters=[ORG_PARAM],
        responses={200: BudgetOutput, **READ_ERRORS},
    )
    def get(self, request: Request, budget_id: int) -> Response:
        budget = _visible_budgets(self.caller(request)).filter(pk=budget_id).first()
        if budget is None:
            raise Http404("no such budget")
        return Response(BudgetOutput(alert_selectors.budget_status(budget=budget)).data)


# --- alerts and rules -----------------------------------------------------------------------


def _visible_alerts(caller: Caller) -> QuerySet[Alert]:
    alerts = Alert.objects.filter(organisation=caller.organisation).select_related(
        "rule", "team", "acknowledged_by"
    )
    if not caller.org_wide:
        alerts = alerts.filter(team_id__in=sorted(caller.team_ids))
    return alerts


class AlertFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=[(s.value, s.value) for s in State])
    team = django_filters.CharFilter(field_name="team__slug", max_length=100)
    rule = django_filters.NumberFilter(field_name="rule_id", min_value=1, max_value=2**63 - 1)

    class Meta:
        model = Alert
        fields = ["state", "team", "rule"]


class AlertOutput(serializers.Serializer):
    id = serializers.IntegerField()
    rule = serializers.IntegerField(source="rule_id")
    rule_name = serializers.CharField(source="rule.name")
    team = serializers.CharField(source="team.slug", allow_null=True, default=None)
    state = serializers.CharField()
    labels = serializers.DictField(child=serializers.CharField())
    value = serializers.FloatField(allow_null=True)
    summary = serializers.CharField()
    active_since = serializers.DateTimeField()
    fired_at = serializers.DateTimeField(allow_null=True)
    resolved_at = serializers.DateTimeField(allow_null=True)
    acknowledged_at = serializers.DateTimeField(allow_null=True)
    acknowledged_by = serializers.CharField(
        source="acknowledged_by.username", allow_null=True, default=None
    )


class AlertsApi(KpiApi, generics.ListAPIView):
    filterset_class = AlertFilter
    pagination_class = BoundedCursorPagination
    serializer_class = AlertOutput
    queryset = Alert.objects.none()

    def get_queryset(self) -> QuerySet[Alert]:
        return _visible_alerts(self.caller(self.request))

    @extend_schema(
        operation_id="alerts_list",
        summary="Visible alerts, newest first (filter by state, team, rule)",
        tags=TAGS,
        parameters=[ORG_PARAM],
        responses={200: AlertOutput(many=True), **READ_ERRORS},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


def _alert(request: Request, alert_id: int) -> tuple[Caller, Alert]:
    caller = caller_for(request, request.query_params.get("org") or None)
    alert = _visible_alerts(caller).filter(pk=alert_id).first()
    if alert is None:
        raise Http404("no such alert")
    return caller, alert


def _refusal(exc: DjangoPermissionDenied | DjangoValidationError) -> Exception:
    if isinstance(exc, DjangoPermissionDenied):
        return PermissionDenied(str(exc))
    return ValidationError({"detail": " ".join(exc.messages)})


class AlertAcknowledgeApi(KpiApi):
    @extend_schema(
        operation_id="alerts_acknowledge",
        summary="Acknowledge an open alert (repeats stop; the resolve is still sent)",
        tags=TAGS,
        request=None,
        parameters=[ORG_PARAM],
        responses={200: AlertOutput, **WRITE_ERRORS},
    )
    def post(self, request: Request, alert_id: int) -> Response:
        _, alert = _alert(request, alert_id)
        try:
            alert = alert_services.alert_acknowledge(alert=alert, user=request.user)
        except (DjangoPermissionDenied, DjangoValidationError) as exc:
            raise _refusal(exc) from None
        return Response(AlertOutput(alert).data)


class AlertSilenceApi(KpiApi):
    class SilenceInput(serializers.Serializer):
        # Strict types, like the registry's inputs: 0 is not false, "60" is not 60.
        duration_s = StrictIntegerField(
            min_value=60, max_value=int(alert_services.MAX_SILENCE.total_seconds())
        )
        comment = StrictCharField(max_length=1000, required=False, default="", allow_blank=True)
        whole_rule = StrictBooleanField(required=False, default=False)

    class SilenceOutput(serializers.Serializer):
        id = serializers.IntegerField()
        matchers = serializers.DictField(child=serializers.CharField())
        starts_at = serializers.DateTimeField()
        ends_at = serializers.DateTimeField()
        comment = serializers.CharField()

    @extend_schema(
        operation_id="alerts_silence",
        summary="Silence this alert (or its whole rule) for a while (managers of its team)",
        tags=TAGS,
        request=SilenceInput,
        parameters=[ORG_PARAM],
        responses={201: SilenceOutput, **WRITE_ERRORS},
    )
    def post(self, request: Request, alert_id: int) -> Response:
        serializer = self.SilenceInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        _, alert = _alert(request, alert_id)
        try:
            silence = alert_services.alert_silence(
                alert=alert,
                user=request.user,
                duration=timedelta(seconds=data["duration_s"]),
                comment=data["comment"],
                whole_rule=data["whole_rule"],
            )
        except (DjangoPermissionDenied, DjangoValidationError) as exc:
            raise _refusal(exc) from None
        return Response(self.SilenceOutput(silence).data, status=201)


class RuleFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=RuleKind.choices)
    # "true" or "false" only: django-filter's BooleanFilter reads anything else as "no filter".
    enabled = django_filters.ChoiceFilter(
        choices=[("true", "true"), ("false", "false")], method="filter_enabled"
    )
    team = django_filters.CharFilter(field_name="team__slug", max_length=100)

    class Meta:
        model = AlertRule
        fields = ["kind", "enabled", "team"]

    def filter_enabled(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(enabled=value == "true")


class RuleOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.CharField()
    enabled = serializers.BooleanField()
    team = serializers.CharField(source="team.slug", allow_null=True, default=None)
    budget = serializers.IntegerField(source="budget_id", allow_null=True)
    state = serializers.CharField()
    for_s = serializers.IntegerField()
    keep_firing_s = serializers.IntegerField()
    repeat_interval_s = serializers.IntegerField()
    no_data = serializers.CharField()
    last_evaluated_at = serializers.DateTimeField(allow_null=True)


class AlertRulesApi(KpiApi, generics.ListAPIView):
    filterset_class = RuleFilter
    pagination_class = BoundedCursorPagination
    serializer_class = RuleOutput
    queryset = AlertRule.objects.none()

    def get_queryset(self) -> QuerySet[AlertRule]:
        caller = self.caller(self.request)
        rules = AlertRule.objects.filter(organisation=caller.organisation).select_related("team")
        if not caller.org_wide:
            # A team member sees their teams' rules and the rules of their teams' budgets.
            ids = sorted(caller.team_ids)
            rules = rules.filter(Q(team_id__in=ids) | Q(budget__team_id__in=ids))
        return rules

    @extend_schema(
        operation_id="alert_rules_list",
        tags=TAGS,
        parameters=[ORG_PARAM],
        responses={200: RuleOutput(many=True), **READ_ERRORS},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)
