"""The demo's model registry: ten models, their versions, runs, evaluations and drift reports.

Written through ``workloads.services`` like a training script or the collector's registry client
would, with run keys taken from the same schedule (``fleet``) as the measurements, so every run has
energy and carbon. Nine models stay healthy; ``product-classifier`` meets a new product catalogue:
its input features drift and its accuracy slides over the last three weeks. Nothing here writes a
verdict: ``workloads.retraining.models_recompute`` works it out from this evidence after the
rollups exist (its retrain cost comes from them).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser

from greenkpi.demo import fleet
from greenkpi.inventory.models import Team
from greenkpi.workloads import services
from greenkpi.workloads.models import MLModel, ModelVersion, RunKind, RunStatus

DECAYING = "product-classifier"
DRIFT_DAYS = 21  # the catalogue changed this long before the load
EVAL_HOUR = 6  # the nightly evaluation job finishes at 06:00 UTC


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    metric: str
    baseline: float
    first_trained_days_ago: float  # the deployed version when no retrain falls in the history
    floor: float | None = None


MODELS: dict[str, ModelSpec] = {
    "two-tower-ranker": ModelSpec(
        "Two-tower ranker", "Home-feed candidate ranking, retrained nightly.", "ndcg_at_10", 0.412, 1
    ),
    "session-recommender": ModelSpec(
        "Session recommender", "Next-item suggestions from the live session.", "recall_at_20",
        0.615, 38,
    ),
    "llama-8b-lora": ModelSpec(
        "Llama 8B LoRA", "Weekly LoRA fine-tune on support transcripts.", "exact_match", 0.741, 4
    ),
    "support-chat-8b": ModelSpec(
        "Support chat 8B", "Customer-support assistant serving the fine-tuned weights.",
        "helpfulness", 0.823, 30,
    ),
    "summarizer-t5": ModelSpec(
        "Summarizer T5", "Ticket summaries for agents.", "rouge_l", 0.412, 62
    ),
    "intent-classifier": ModelSpec(
        "Intent classifier", "Routes incoming messages to queues.", "macro_f1", 0.934, 45
    ),
    "detr-small": ModelSpec(
        "DETR small", "Shelf object detection, retrained on each labelled batch.", "map", 0.421, 2
    ),
    DECAYING: ModelSpec(
        "Product classifier",
        "Catalogue image classifier; the catalogue changed three weeks ago.",
        "accuracy",
        0.912,
        84,
        floor=0.82,
    ),
    "resnet50-v3": ModelSpec(
        "ResNet-50 v3", "Backbone pre-training for the vision team.", "top1", 0.781, 7
    ),
    "segformer-b2": ModelSpec(
        "SegFormer B2", "Store-layout segmentation.", "miou", 0.463, 7
    ),
}  # fmt: skip


def _decay(key: str, baseline: float, age: timedelta, moment: datetime, now: datetime) -> float:
    """Metric points lost at ``moment``: the decaying model's slide; for the others a version's
    slow staleness (0.15 % of its baseline per day for ten days, then a plateau), which is what
    their regular retrains win back."""
    if key != DECAYING:
        return baseline * 0.0015 * min(max(age / fleet.DAY, 0.0), 10.0)
    into_drift = min(1.0, max(0.0, 1 - (now - moment) / timedelta(days=DRIFT_DAYS)))
    return 0.004 + 0.056 * into_drift**1.3


def _drift(
    key: str, moment: datetime, now: datetime, rng: random.Random
) -> list[services.FeatureInput]:
    into_drift = (
        min(1.0, max(0.0, 1 - (now - moment) / timedelta(days=DRIFT_DAYS)))
        if key == DECAYING
        else 0.0
    )
    noise = lambda: abs(rng.gauss(0, 0.015))  # noqa: E731 - three uses, one line each
    return [
        services.FeatureInput("category_mix", "psi", 0.02 + 0.38 * into_drift + noise(), importance=0.5),
        services.FeatureInput("price_band", "psi", 0.03 + 0.3 * into_drift + noise(), importance=0.3),
        services.FeatureInput("image_brightness", "psi", 0.04 + 0.1 * into_drift + noise(), importance=0.2),
    ]  # fmt: skip


def retrained_baseline(spec: ModelSpec, rng: random.Random) -> float:
    """A new version's metric at deployment: around the model's level, +0.1 % +- 0.2 %."""
    return round(spec.baseline * (1 + rng.gauss(0.001, 0.002)), 4)


@dataclass
class Deployment:
    version: ModelVersion
    at: datetime


def registry_load(
    *,
    teams: dict[str, Team],
    owner: AbstractBaseUser,
    start: datetime,
    now: datetime,
    inferences: dict[str, float],
    seed: int = 5,
) -> list[MLModel]:
    """Register the fleet's models with their history in [start, now]; returns the models."""
    rng = random.Random(seed)
    models = []
    for key, spec in MODELS.items():
        workloads = [w for w in fleet.workloads() if w.model == key]
        model, _ = services.model_register(
            team=teams[workloads[0].team],
            key=key,
            name=spec.name,
            description=spec.description,
            owner=owner,
            policy={"primary_metric": spec.metric, "metric_floor": spec.floor},
        )
        deployments = _training_history(model, spec, workloads, start, now, rng)
        for workload in workloads:
            if workload.kind == "inference":
                _serving_history(model, workload, deployments, start, now, inferences)
        _evaluations(model, spec, deployments, start, now, rng)
        models.append(model)
    return models


def _host_end(workload: fleet.Workload, now: datetime) -> datetime:
    """Where a workload's measurements stop: the silent host's runs stop with its collector."""
    for host in fleet.HOSTS:
        if any(workload in gpu for gpu in host.gpus) and host.hostname == fleet.SILENT_HOST:
            return now - fleet.SILENT_FOR
    return now


def _training_history(
    model: MLModel,
    spec: ModelSpec,
    workloads: list[fleet.Workload],
    start: datetime,
    now: datetime,
    rng: random.Random,
) -> list[Deployment]:
    """Training runs; each finished one produces a version deployed at its end."""
    spans = sorted(
        (
            (span, workload)
            for workload in workloads
            if workload.kind in ("training", "fine-tuning", "nightly")
            for span in fleet.training_runs(workload, start, _host_end(workload, now), now)
        ),
        key=lambda item: item[0].start,
    )
    first = now - timedelta(days=spec.first_trained_days_ago)
    finished = [(span, w) for span, w in spans if span.end <= now]
    deployments: list[Deployment] = []
    if not finished or finished[0][0].end > start:
        # The version in production when the history starts was trained before it.
        trained = min(first, start - fleet.DAY) if finished else first
        version, _ = services.version_register(
            model=model, version="1.0", baseline_value=spec.baseline, trained_at=trained
        )
        deployments.append(
            Deployment(services.version_deploy(version=version, at=trained), trained)
        )
    baseline = spec.baseline
    for number, (span, workload) in enumerate(spans, start=1):
        run, _ = services.run_open(
            model=model,
            key=span.key,
            kind=workload.registry_kind,
            started_at=span.start,
            functional_unit="run",
            recurrence="nightly-retrain" if workload.kind == "nightly" else "",
        )
        if span.end > now:
            continue  # still training
        services.run_close(run=run, ended_at=span.end, functional_units=1)
        # Each retrain wins back the staleness; now and then one gains nothing (flagged as wasted).
        baseline = retrained_baseline(spec, rng)
        version, _ = services.version_register(
            model=model,
            version=f"{span.end:%Y.%m.%d}-{number}",
            baseline_value=baseline,
            trained_at=span.end,
            trained_by=run,
        )
        deployments.append(
            Deployment(services.version_deploy(version=version, at=span.end), span.end)
        )
    return deployments


def _deployed_at(deployments: list[Deployment], moment: datetime) -> ModelVersion | None:
    current = None
    for deployment in deployments:
        if deployment.at <= moment:
            current = deployment.version
    return current


def _serving_history(
    model: MLModel,
    workload: fleet.Workload,
    deployments: list[Deployment],
    start: datetime,
    now: datetime,
    inferences: dict[str, float],
) -> None:
    """One inference run per UTC day, closed with the requests it served (SCI's R)."""
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    while day < now:
        begins = max(day, start)
        run, _ = services.run_open(
            model=model,
            key=fleet.serving_key(workload, day),
            kind=RunKind.INFERENCE,
            started_at=begins,
            version=_deployed_at(deployments, begins),
            functional_unit="inference",
        )
        ends = day + fleet.DAY
        if ends <= now and run.status == RunStatus.RUNNING:
            services.run_close(
                run=run, ended_at=ends, functional_units=round(inferences.get(run.key, 0.0))
            )
        day = ends


def _evaluations(
    model: MLModel,
    spec: ModelSpec,
    deployments: list[Deployment],
    start: datetime,
    now: datetime,
    rng: random.Random,
) -> None:
    """The nightly evaluation of the deployed version, and a drift report beside it."""
    moment = start.replace(hour=EVAL_HOUR, minute=0, second=0, microsecond=0)
    if moment <= start:
        moment += fleet.DAY
    daily_drift = model.key == DECAYING
    while moment <= now:
        version = _deployed_at(deployments, moment)
        if version is not None and version.baseline_value is not None:
            age = moment - (version.deployed_at or version.trained_at)
            loss = _decay(model.key, version.baseline_value, age, moment, now)
            value = version.baseline_value - loss + rng.gauss(0, 0.0015 * spec.baseline)
            services.evaluation_create(
                model=model,
                version=version,
                metric=spec.metric,
                value=round(value, 4),
                window_start=moment - fleet.DAY,
                window_end=moment,
                samples=5000,
            )
            if daily_drift or moment.weekday() == 0:
                services.drift_report_create(
                    model=model,
                    version=version,
                    window_start=moment - fleet.DAY,
                    window_end=moment,
                    features=_drift(model.key, moment, now, rng),
                )
        moment += fleet.DAY


def registry_follow(
    *, organisation_id: int, now: datetime, rng: random.Random, since: datetime | None = None
) -> int:
    """What the teams' scripts would report as time goes on: training runs opened and closed
    (a finished one deploys its version), and each day's serving run closed with its requests
    counted from the measurements. ``since``: where this tick's measurements start (a restart
    after a break catches up the training runs of the break). Idempotent; returns how many runs
    were opened or closed."""
    look_back = min(since or now, now - 2 * fleet.DAY)
    changed = 0
    models = {
        m.key: m
        for m in MLModel.objects.filter(team__organisation_id=organisation_id, key__in=MODELS)
    }
    for workload in fleet.workloads():
        model = models.get(workload.model)
        if model is None:
            continue
        if workload.kind == "inference":
            changed += _serving_follow(model, workload, now, look_back)
            continue
        if workload.kind == "idle-pool":
            continue
        end = min(now, _host_end(workload, now))
        for span in fleet.training_runs(workload, look_back, end, now):
            run, created = services.run_open(
                model=model,
                key=span.key,
                kind=workload.registry_kind,
                started_at=span.start,
                functional_unit="run",
                recurrence="nightly-retrain" if workload.kind == "nightly" else "",
            )
            changed += created
            if span.end <= now and run.status == RunStatus.RUNNING:
                services.run_close(run=run, ended_at=span.end, functional_units=1)
                spec = MODELS[model.key]
                version, _ = services.version_register(
                    model=model,
                    version=f"{span.end:%Y.%m.%d}-{run.pk}",
                    baseline_value=retrained_baseline(spec, rng),
                    trained_at=span.end,
                    trained_by=run,
                )
                services.version_deploy(version=version, at=span.end)
                changed += 1
    return changed


def _serving_follow(
    model: MLModel, workload: fleet.Workload, now: datetime, since: datetime
) -> int:
    """Open the serving run of each day since ``since`` (today's included), close the past ones."""
    from greenkpi.workloads.selectors import deployed_version

    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    day = since.replace(hour=0, minute=0, second=0, microsecond=0)
    version = deployed_version(model=model)
    created = 0
    while day <= today:
        _, new = services.run_open(
            model=model,
            key=fleet.serving_key(workload, day),
            kind=RunKind.INFERENCE,
            started_at=day,
            version=version,
            functional_unit="inference",
        )
        created += new
        day += fleet.DAY
    closed = 0
    for run in model.runs.filter(
        kind=RunKind.INFERENCE, status=RunStatus.RUNNING, started_at__lt=today
    ):
        day = run.started_at.replace(hour=0, minute=0, second=0, microsecond=0)
        services.run_close(
            run=run,
            ended_at=day + fleet.DAY,
            functional_units=round(served(run.key) * workload.throughput_per_s),
        )
        closed += 1
    return int(created) + closed


def served(run_key: str) -> float:
    """Busy GPU-seconds of a run from its measured windows (x throughput = requests served)."""
    from greenkpi.ingest.models import Sample, SampleShare

    shares = SampleShare.objects.filter(run_key=run_key).values_list("device_id", "window_start")
    keys = set(shares)
    if not keys:
        return 0.0
    starts = [start for _, start in keys]
    total = 0.0
    rows = Sample.objects.filter(
        device_id__in={device for device, _ in keys},
        window_start__gte=min(starts),
        window_start__lte=max(starts),
    ).values_list("device_id", "window_start", "window_end", "util_busy")
    for device, start, end, busy in rows:
        if (device, start) in keys and busy is not None:
            total += busy * (end - start).total_seconds()
    return total
