"""Writes to the registry: keyword-only, typed; the API, the client helpers and tasks call these.

Registration is idempotent (upsert by key), so a training script that is restarted, or a client
that retries after a timeout, finds its model, version or run instead of failing or duplicating it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from greenkpi.inventory.models import Team
from greenkpi.workloads import drift, signals
from greenkpi.workloads.models import (
    DriftFeature,
    DriftReport,
    Evaluation,
    MLModel,
    ModelVersion,
    Run,
    RunStatus,
    VersionStatus,
)

POLICY_FIELDS = (
    "primary_metric",
    "higher_is_better",
    "metric_floor",
    "max_age_days",
    "min_retrain_interval_days",
    "persistence_evaluations",
    "need_watch",
    "need_enter",
    "need_exit",
    "min_gain_per_kgco2e",
    "min_gain",
    "sci_provider_unit",
    "sci_consumer_unit",
)


class RegistryError(ValueError):
    """A request the registry refuses (closing a closed run, a bad histogram ...): a 400."""


def model_register(
    *,
    team: Team,
    key: str,
    name: str = "",
    description: str = "",
    owner: AbstractBaseUser | None = None,
    policy: dict[str, Any] | None = None,
) -> tuple[MLModel, bool]:
    """The model ``key`` of ``team``, created if new; given fields update an existing one."""
    with transaction.atomic():
        model, created = MLModel.objects.select_for_update().get_or_create(
            team=team, key=key, defaults={"name": name or key, "description": description}
        )
        changed = []
        if not created:
            for field, value in (("name", name), ("description", description)):
                if value and getattr(model, field) != value:
                    setattr(model, field, value)
                    changed.append(field)
        if owner is not None and model.owner_id is None:
            model.owner = owner
            changed.append("owner")
        for field, value in (policy or {}).items():
            if field not in POLICY_FIELDS:
                raise RegistryError(f"unknown policy field {field!r}")
            setattr(model, field, value)
            changed.append(field)
        if model.need_exit >= model.need_enter:
            raise RegistryError("need_exit must be below need_enter (hysteresis)")
        if changed:
            model.full_clean()
            model.save()
    return model, created


def version_register(
    *,
    model: MLModel,
    version: str,
    baseline_value: float | None = None,
    trained_at: datetime | None = None,
    trained_by: Run | None = None,
    deploy: bool = False,
    parameters: int | None = None,
    training_tokens: int | None = None,
) -> tuple[ModelVersion, bool]:
    with transaction.atomic():
        row, created = ModelVersion.objects.get_or_create(
            model=model,
            version=version,
            defaults={
                "baseline_value": baseline_value,
                "trained_at": trained_at or timezone.now(),
                "trained_by": trained_by,
                "parameters": parameters,
                "training_tokens": training_tokens,
            },
        )
        if not created:
            updates = {
                "baseline_value": baseline_value,
                "trained_at": trained_at,
                "trained_by": trained_by,
                "parameters": parameters,
                "training_tokens": training_tokens,
            }
            for field, value in updates.items():
                if value is not None:
                    setattr(row, field, value)
            row.save()
        if deploy:
            version_deploy(version=row)
    return row, created


def version_deploy(*, version: ModelVersion, at: datetime | None = None) -> ModelVersion:
    """Make ``version`` the deployed one; the previously deployed version is retired."""
    if version.status == VersionStatus.DEPLOYED:
        return version
    with transaction.atomic():
        MLModel.objects.select_for_update().filter(pk=version.model_id).first()
        ModelVersion.objects.filter(
            model_id=version.model_id, status=VersionStatus.DEPLOYED
        ).update(status=VersionStatus.RETIRED)
        version.status = VersionStatus.DEPLOYED
        version.deployed_at = at or timezone.now()
        version.save(update_fields=["status", "deployed_at"])
    return version


def run_open(
    *,
    model: MLModel,
    key: str,
    kind: str,
    started_at: datetime | None = None,
    version: ModelVersion | None = None,
    functional_unit: str = "",
    recurrence: str = "",
    mlflow_run_id: str = "",
) -> tuple[Run, bool]:
    """The run ``key`` of ``model``, opened if new (a retry returns the same run unchanged)."""
    return Run.objects.get_or_create(
        model=model,
        key=key,
        defaults={
            "kind": kind,
            "started_at": started_at or timezone.now(),
            "version": version,
            "functional_unit": functional_unit,
            "recurrence": recurrence,
            "mlflow_run_id": mlflow_run_id,
        },
    )


def run_close(
    *,
    run: Run,
    status: str = RunStatus.SUCCEEDED,
    ended_at: datetime | None = None,
    functional_units: float | None = None,
    functional_unit: str = "",
) -> Run:
    """Close ``run``. Closing again with the same outcome is a no-op (client retries); a different
    outcome for a closed run is refused."""
    if status == RunStatus.RUNNING:
        raise RegistryError("a run is closed with succeeded, failed or cancelled")
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        if run.status != RunStatus.RUNNING:
            if run.status == status and (
                functional_units is None or run.functional_units == functional_units
            ):
                return run
            raise RegistryError(f"run {run.key} is already closed ({run.status})")
        ended = ended_at or timezone.now()
        if ended < run.started_at:
            raise RegistryError("ended_at is before started_at")
        run.status, run.ended_at = status, ended
        if functional_units is not None:
            run.functional_units = functional_units
        if functional_unit:
            run.functional_unit = functional_unit
        run.save()
        signals.run_closed.send(sender=Run, run=run)
    return run


def evaluation_create(
    *,
    model: MLModel,
    metric: str,
    value: float,
    window_end: datetime,
    version: ModelVersion | None = None,
    higher_is_better: bool = True,
    window_start: datetime | None = None,
    labelled: bool = True,
    samples: int | None = None,
    run: Run | None = None,
) -> Evaluation:
    """Store an evaluation. The first metric a model reports becomes its primary metric."""
    if window_start is not None and window_start > window_end:
        raise RegistryError("window_start is after window_end")
    with transaction.atomic():
        if not model.primary_metric:
            model.primary_metric, model.higher_is_better = metric, higher_is_better
            model.save(update_fields=["primary_metric", "higher_is_better"])
        return Evaluation.objects.create(
            model=model,
            version=version,
            run=run,
            metric=metric,
            value=value,
            higher_is_better=higher_is_better,
            window_start=window_start,
            window_end=window_end,
            labelled=labelled,
            samples=samples,
        )


@dataclass(frozen=True, slots=True)
class FeatureInput:
    """One feature of a drift report: a ``value`` the client computed, or histograms."""

    feature: str
    statistic: str = "js"
    value: float | None = None
    threshold: float | None = None
    importance: float | None = None
    reference_counts: Sequence[float] | None = None
    current_counts: Sequence[float] | None = None
    bin_edges: Sequence[float] | None = None


def drift_report_create(
    *,
    model: MLModel,
    window_end: datetime,
    features: Sequence[FeatureInput],
    version: ModelVersion | None = None,
    window_start: datetime | None = None,
) -> DriftReport:
    """Store a drift report; statistics are computed here where histograms were sent."""
    if not features:
        raise RegistryError("a drift report needs at least one feature")
    names = [f.feature for f in features]
    if len(set(names)) != len(names):
        raise RegistryError("each feature may appear once")
    rows: list[DriftFeature] = []
    scored: list[drift.FeatureDrift] = []
    for f in features:
        from_histograms = f.reference_counts is not None or f.current_counts is not None
        if from_histograms:
            if f.reference_counts is None or f.current_counts is None:
                raise RegistryError(f"{f.feature}: send both reference_counts and current_counts")
            try:
                value = drift.statistic(
                    f.statistic, f.reference_counts, f.current_counts, f.bin_edges
                )
            except drift.BadHistogram as exc:
                raise RegistryError(f"{f.feature}: {exc}") from None
        elif f.value is None:
            raise RegistryError(f"{f.feature}: send a value or histograms")
        else:
            value = f.value
        threshold = f.threshold or drift.DEFAULT_THRESHOLDS.get(f.statistic)
        if threshold is None or threshold <= 0:
            raise RegistryError(f"{f.feature}: statistic {f.statistic!r} needs a threshold > 0")
        scored.append(drift.FeatureDrift(f.feature, value, threshold, f.importance))
        rows.append(
            DriftFeature(
                feature=f.feature,
                statistic=f.statistic,
                value=value,
                threshold=threshold,
                importance=f.importance,
                computed_by_server=from_histograms,
                reference_counts=list(f.reference_counts) if f.reference_counts else None,
                current_counts=list(f.current_counts) if f.current_counts else None,
                bin_edges=list(f.bin_edges) if f.bin_edges else None,
            )
        )
    with transaction.atomic():
        report = DriftReport.objects.create(
            model=model,
            version=version,
            window_start=window_start,
            window_end=window_end,
            score=drift.drift_score(scored),
        )
        for row in rows:
            row.report = report
        DriftFeature.objects.bulk_create(rows)
    return report
