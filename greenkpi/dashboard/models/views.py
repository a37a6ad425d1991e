"""Model pages: a team's models, one model's lifecycle (training vs inference energy, SCI per 1,000
inferences, evaluations and drift, retraining need and its components) and one run.

Views resolve the scope (a model is visible iff its team is: ``workloads.access``), call the
workloads selectors (the ones the /api/v1/models/ API reads) and render. No computation here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial

import pandas as pd
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path, register_converter, reverse
from django.utils.http import urlencode

from greenkpi.carbon.methodology import METHODOLOGY_VERSION
from greenkpi.dashboard.common.charts import FORMATS, Chart, csv_response, respond
from greenkpi.dashboard.common.pages import dashboard_view, page_context, teams_filter
from greenkpi.dashboard.models import figures as figures_models
from greenkpi.inventory.access import scope_for, team_for
from greenkpi.lib.periods import HOUR, BadPeriod, Period, hour_floor, period_from_query
from greenkpi.workloads import access
from greenkpi.workloads.models import MLModel
from greenkpi.workloads.selectors import (
    carbon_advice,
    deployed_version,
    detail,
    listing,
    outcomes,
    runs,
    sci_ai,
    verdict_history,
)

DEFAULT_RANGE = "30d"
MODEL_DEFAULT_RANGE = "90d"
MODELS_PER_PAGE = 50
# Daily bars up to this span, weekly beyond (a year of days is 366 thin bars).
DAILY_UP_TO = timedelta(days=92)


@dataclass(frozen=True)
class ModelChart:
    """A model-page chart: its selector (model, period, step) -> frame, and how it is drawn."""

    chart: Chart
    frame: Callable[[MLModel, Period, str], pd.DataFrame]


def _need_frame(model: MLModel, period: Period, step: str) -> pd.DataFrame:
    return detail.need_frame(assessment=getattr(model, "assessment", None))


MODEL_CHARTS = {
    c.chart.key: c
    for c in (
        ModelChart(
            Chart("lifecycle", figures_models.lifecycle, tuple(detail.LIFECYCLE_COLUMNS)),
            lambda m, p, s: detail.lifecycle_frame(model=m, start=p.start, end=p.end, step=s),
        ),
        ModelChart(
            Chart("sci", figures_models.sci, tuple(detail.SCI_COLUMNS)),
            lambda m, p, s: detail.sci_frame(model=m, start=p.start, end=p.end),
        ),
        ModelChart(
            Chart("evaluations", figures_models.evaluations, tuple(detail.EVALUATION_COLUMNS)),
            lambda m, p, s: detail.evaluation_frame(model=m, start=p.start, end=p.end),
        ),
        ModelChart(
            Chart("drift", figures_models.drift, tuple(detail.DRIFT_COLUMNS)),
            lambda m, p, s: detail.drift_frame(model=m, start=p.start, end=p.end),
        ),
        ModelChart(
            Chart("need", figures_models.need, tuple(detail.NEED_COLUMNS), time_axis=False),
            _need_frame,
        ),
        ModelChart(
            Chart("sci-ai", figures_models.sci_ai, tuple(sci_ai.COLUMNS), time_axis=False),
            lambda m, p, s: sci_ai.sci_ai_frame(model=m),
        ),
    )
}
RUN_POWER = Chart("power", figures_models.run_power, tuple(runs.POWER_COLUMNS))


class ModelChartConverter:
    regex = "|".join(MODEL_CHARTS)

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class ModelFormatConverter(ModelChartConverter):
    # Our own: dashboard/urls.py registers its "fmt" only after importing the area modules.
    regex = "|".join(FORMATS)


register_converter(ModelChartConverter, "modelchart")
register_converter(ModelFormatConverter, "modelfmt")


def _step(request: HttpRequest, period: Period) -> str:
    """``?step=day|week``; by default days up to ~3 months, weeks beyond."""
    step = request.GET.get("step", "")
    if not step:
        return "day" if period.end - period.start <= DAILY_UP_TO else "week"
    if step not in detail.STEPS:
        raise BadPeriod(f"step must be one of {', '.join(detail.STEPS)}")
    return step


def _sort(request: HttpRequest) -> str:
    sort = request.GET.get("sort", listing.DEFAULT_SORT)
    if sort not in listing.SORTS:
        raise BadPeriod(f"sort must be one of {', '.join(listing.SORTS)}")
    return sort


def _summaries(request: HttpRequest) -> tuple[object, Period, list, pd.DataFrame]:
    scope = scope_for(request.user, request.GET.get("org"))
    period = period_from_query(request.GET, default=DEFAULT_RANGE, tz=scope.organisation.tz)
    teams = teams_filter(request, scope)
    team_ids = [t.pk for t in teams] or list(scope.team_ids)
    frame = listing.model_summaries(
        organisation_id=scope.organisation.pk,
        team_ids=team_ids,
        start=period.start,
        end=period.end,
        sort=_sort(request),
    )
    return scope, period, teams, frame


def _query(params: list[tuple[str, list[str]]]) -> str:
    return f"?{urlencode(params, doseq=True)}"


@dashboard_view
def models(request: HttpRequest) -> HttpResponse:
    scope, period, teams, frame = _summaries(request)
    sort = request.GET.get("sort", listing.DEFAULT_SORT)
    keep = [(k, v) for k, v in request.GET.lists() if k not in ("sort", "page")]
    # Rendering is the cost past a few dozen rows (500 models: ~200 ms of template); the CSV has all.
    rows = Paginator(list(frame.itertuples(index=False)), MODELS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    context = page_context(
        request,
        scope,
        period,
        rows=rows,
        page_query=urlencode([(k, v) for k, v in request.GET.lists() if k != "page"], doseq=True),
        model_count=len(frame),
        selected_teams={t.pk for t in teams},
        all_teams_href=_query([(k, v) for k, v in keep if k != "team"]),
        # A second click on a column's link reverses its order.
        energy_sort_href=_query([*keep, ("sort", ["energy" if sort == "-energy" else "-energy"])]),
        co2e_sort_href=_query([*keep, ("sort", ["co2e" if sort == "-co2e" else "-co2e"])]),
        name_sort_href=_query([*keep, ("sort", ["name"])]),
        sort=sort,
        csv_query=urlencode(request.GET, doseq=True),
        period_query=urlencode(period.query()),
    )
    return render(request, "dashboard/models.html", context)


@dashboard_view
def models_csv(request: HttpRequest) -> HttpResponse:
    scope, _, _, frame = _summaries(request)
    columns = tuple(listing.MODEL_LIST_COLUMNS)
    return csv_response(frame, columns, f"models-{scope.organisation.slug}.csv")


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows for a template, NaN as None (the template's "—")."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def _sci_method_note(versions: list[str]) -> str:
    """A sentence for the SCI figures when some were computed under another methodology."""
    old = [v for v in versions if v != METHODOLOGY_VERSION]
    if not old:
        return ""
    before = [v for v in old if v < sci_ai.OPERATIONAL_DIRECT_SINCE]
    meaning = (
        f" Under {', '.join(before)} SCI's O was Scope 2 on lifecycle grid factors; since "
        f"{sci_ai.OPERATIONAL_DIRECT_SINCE} it is Scope 2 location-based on direct factors "
        "(upstream and T&D losses are Scope 3 cat. 3, outside SCI), so those figures are higher "
        "than today's method gives."
        if before
        else ""
    )
    return (
        f"Some of these figures were computed under methodology {', '.join(old)}, not the current "
        f"{METHODOLOGY_VERSION}; the periodic recompute (or a backfill) brings them to it.{meaning} "
        'What changed: docs/kpis.md, "Methodology changes".'
    )


@dashboard_view
def model_detail(request: HttpRequest, model_id: int) -> HttpResponse:
    scope, model = access.model_for_person(request.user, model_id)
    period = period_from_query(request.GET, default=MODEL_DEFAULT_RANGE, tz=scope.organisation.tz)
    step = _step(request, period)
    lifecycle = detail.lifecycle_frame(model=model, start=period.start, end=period.end, step=step)
    run_rows = detail.runs_table(model=model, limit=detail.MAX_RUNS_SHOWN)
    query = {**period.query(), **({"step": request.GET["step"]} if "step" in request.GET else {})}
    context = page_context(
        request,
        scope,
        period,
        model=model,
        assessment=getattr(model, "assessment", None),
        deployed=deployed_version(model=model),
        phase_totals=detail.phase_totals(lifecycle),
        step=step,
        drift=detail.drift_latest(model=model),
        history=verdict_history(model=model)[::-1],
        retrains=outcomes(model=model),
        advice=carbon_advice(model=model),
        runs=run_rows,
        runs_capped=len(run_rows) == detail.MAX_RUNS_SHOWN,
        sci_versions=_records(sci_ai.sci_ai_frame(model=model)),
        sci_methods=_sci_method_note(sci_ai.methodology_versions(model=model)),
        chart_query=urlencode(query),
        team_query=urlencode({"org": scope.organisation.slug, **period.query()}),
    )
    return render(request, "dashboard/model_detail.html", context)


@dashboard_view
def model_chart(request: HttpRequest, model_id: int, chart: str, fmt: str) -> HttpResponse:
    scope, model = access.model_for_person(request.user, model_id)
    period = period_from_query(request.GET, default=MODEL_DEFAULT_RANGE, tz=scope.organisation.tz)
    spec = MODEL_CHARTS[chart]
    frame = spec.frame(model, period, _step(request, period))
    stem = f"{chart}-{model.team.slug}-{model.key}"
    figure = spec.chart
    if chart == "need":  # the policy's thresholds are drawn as lines over the bars
        thresholds = {"watch": model.need_watch, "enter": model.need_enter, "exit": model.need_exit}
        figure = replace(figure, build=partial(figures_models.need, thresholds=thresholds))
    if chart == "sci-ai":  # the y axis is the model's own primary metric
        figure = replace(figure, build=partial(figures_models.sci_ai, metric=model.primary_metric))
    return respond(figure, frame, fmt, stem, period)


def _run_period(run_start: datetime, run_end: datetime | None) -> Period:
    """The run's own span (whole hours) as the power chart's time axis."""
    start = hour_floor(run_start)
    end = hour_floor(run_end or datetime.now(UTC)) + HOUR
    return Period(start=start, end=max(end, start + HOUR), preset="")


@dashboard_view
def model_run(request: HttpRequest, model_id: int, run_id: int) -> HttpResponse:
    scope, model = access.model_for_person(request.user, model_id)
    run = runs.run_for(model=model, run_id=run_id)
    if run is None:
        raise Http404("no such run")
    context = page_context(
        request,
        scope,
        None,
        model=model,
        run=run,
        measured=runs.run_detail(model=model, run=run),
        evaluations=runs.run_evaluations(model=model, run=run),
        produced=list(run.produced_versions.all()),
        model_query=urlencode({"org": scope.organisation.slug}),
    )
    return render(request, "dashboard/run_detail.html", context)


@dashboard_view
def model_run_power(request: HttpRequest, model_id: int, run_id: int, fmt: str) -> HttpResponse:
    _, model = access.model_for_person(request.user, model_id)
    run = runs.run_for(model=model, run_id=run_id)
    if run is None:
        raise Http404("no such run")
    frame = runs.run_power_frame(model=model, run=run)
    stem = f"power-{model.team.slug}-{model.key}-{run.key}"
    return respond(RUN_POWER, frame, fmt, stem, _run_period(run.started_at, run.ended_at))


@dashboard_view
def model_lookup(request: HttpRequest, team_id: int) -> HttpResponse:
    """From keys to pages: ``?model=KEY&run=KEY`` of a visible team -> the run's page, else the
    model's page; keys nobody registered are a 404 that says how to register them."""
    scope, team = team_for(request.user, team_id)
    model_key, run_key = request.GET.get("model", ""), request.GET.get("run", "")
    found = listing.registered_ids(team_id=team.pk, pairs=[(model_key, run_key)])
    ids = found.get((model_key, run_key))
    if ids is None:
        context = page_context(request, scope, None, team=team, model_key=model_key)
        return render(request, "dashboard/model_unregistered.html", context, status=404)
    model_id, run_id = ids
    if run_id is not None:
        return redirect(reverse("dashboard:model-run", args=[model_id, run_id]))
    return redirect(reverse("dashboard:model-detail", args=[model_id]))


urlpatterns: list[URLPattern] = [
    path("models/", models, name="models"),
    path("models/table.csv", models_csv, name="models-csv"),
    path("models/<int:model_id>/", model_detail, name="model-detail"),
    path(
        "models/<int:model_id>/<modelchart:chart>.<modelfmt:fmt>", model_chart, name="model-chart"
    ),
    path("models/<int:model_id>/runs/<int:run_id>/", model_run, name="model-run"),
    path(
        "models/<int:model_id>/runs/<int:run_id>/power.<modelfmt:fmt>",
        model_run_power,
        name="model-run-power",
    ),
    path("models/lookup/<int:team_id>/", model_lookup, name="model-lookup"),
]
