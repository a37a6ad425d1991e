"""Reads of the registry, and of the rollups that give runs their energy and carbon.

A run's totals are sums of ``kpis.HourlyRollup`` rows of its model's organisation and team carrying
its model and run keys: however many hosts and GPUs it ran on, it has one total, and a late sample
changes it when its window is recomputed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from django.db.models import QuerySet, Sum

from greenkpi.kpis.models import HourlyRollup
from greenkpi.workloads.models import (
    TRAINING_KINDS,
    DriftReport,
    Evaluation,
    MLModel,
    ModelVersion,
    RetrainingAssessment,
    RetrainOutcome,
    Run,
    RunStatus,
    Verdict,
    VerdictChange,
    VersionStatus,
)


@dataclass(frozen=True, slots=True)
class RunTotals:
    """Measured totals of one run (all its hosts and devices)."""

    energy_kwh: float = 0.0  # IT energy as measured
    facility_energy_kwh: float = 0.0  # x PUE: what carbon is computed on
    operational_kgco2e: float = 0.0  # location-based (SCI's O)
    embodied_kgco2e: float = 0.0  # SCI's M
    gpu_hours: float = 0.0
    hosts: int = 0
    devices: int = 0

    @property
    def kgco2e(self) -> float:
        """SCI numerator O + M."""
        return self.operational_kgco2e + self.embodied_kgco2e


def models_visible(*, organisation_id: int, team_ids: Iterable[int]) -> QuerySet[MLModel]:
    return (
        MLModel.objects.filter(team__organisation_id=organisation_id, team_id__in=list(team_ids))
        .select_related("team", "assessment")
        .order_by("team__slug", "key")
    )


def deployed_version(*, model: MLModel) -> ModelVersion | None:
    return model.versions.filter(status=VersionStatus.DEPLOYED).first()


def _model_rollups(model: MLModel) -> QuerySet[HourlyRollup]:
    return HourlyRollup.objects.filter(
        organisation_id=model.team.organisation_id, team_id=model.team_id, model_key=model.key
    )


def run_totals(*, model: MLModel, run_keys: Iterable[str]) -> dict[str, RunTotals]:
    """{run key: totals} for the given runs of ``model``, in one GROUP BY (runs without rollups
    are absent)."""
    keys = list(run_keys)
    if not keys:
        return {}
    rows = (
        _model_rollups(model)
        .filter(run_key__in=keys)
        .values("run_key")
        .annotate(
            energy_kwh=Sum("energy_kwh"),
            facility_energy_kwh=Sum("facility_energy_kwh"),
            operational_kgco2e=Sum("operational_location_kgco2e"),
            embodied_kgco2e=Sum("embodied_kgco2e"),
            gpu_hours=Sum("allocated_gpu_h"),
        )
    )
    placement = (
        _model_rollups(model)
        .filter(run_key__in=keys)
        .values_list("run_key", "host_id", "device_id")
        .distinct()
    )
    hosts: dict[str, set[int]] = {}
    devices: dict[str, set[int]] = {}
    for key, host_id, device_id in placement:
        hosts.setdefault(key, set()).add(host_id)
        devices.setdefault(key, set()).add(device_id)
    return {
        row["run_key"]: RunTotals(
            energy_kwh=row["energy_kwh"] or 0.0,
            facility_energy_kwh=row["facility_energy_kwh"] or 0.0,
            operational_kgco2e=row["operational_kgco2e"] or 0.0,
            embodied_kgco2e=row["embodied_kgco2e"] or 0.0,
            gpu_hours=row["gpu_hours"] or 0.0,
            hosts=len(hosts.get(row["run_key"], ())),
            devices=len(devices.get(row["run_key"], ())),
        )
        for row in rows
    }


def runs_with_totals(*, model: MLModel) -> list[tuple[Run, RunTotals]]:
    runs = list(model.runs.select_related("version").order_by("started_at", "pk"))
    totals = run_totals(model=model, run_keys=[r.key for r in runs])
    return [(run, totals.get(run.key, RunTotals())) for run in runs]


def past_training_costs(*, model: MLModel, before: datetime) -> list[tuple[float, float]]:
    """(energy_kwh, kgCO2e) of this model's finished training and fine-tuning runs."""
    runs = model.runs.filter(
        kind__in=TRAINING_KINDS, status=RunStatus.SUCCEEDED, ended_at__lte=before
    )
    totals = run_totals(model=model, run_keys=runs.values_list("key", flat=True))
    return [(t.energy_kwh, t.kgco2e) for t in totals.values()]


def last_retrain_end(*, model: MLModel, before: datetime) -> datetime | None:
    """When the latest finished (succeeded or failed) training run ended: the minimum interval
    counts from it, since a failed retrain spent its energy too."""
    return (
        model.runs.filter(kind__in=TRAINING_KINDS, ended_at__isnull=False, ended_at__lte=before)
        .exclude(status=RunStatus.RUNNING)
        .order_by("-ended_at")
        .values_list("ended_at", flat=True)
        .first()
    )


def primary_evaluations(*, model: MLModel, version: ModelVersion) -> list[Evaluation]:
    return list(
        Evaluation.objects.filter(
            model=model, version=version, metric=model.primary_metric
        ).order_by("window_end", "pk")
    )


def drift_reports_since(
    *, model: MLModel, version: ModelVersion, since: datetime | None
) -> list[DriftReport]:
    """Reports about ``version`` or about the model without a version, after it was deployed."""
    reports = DriftReport.objects.filter(model=model).filter(
        version__isnull=True
    ) | DriftReport.objects.filter(model=model, version=version)
    if since is not None:
        reports = reports.filter(window_end__gte=since)
    return list(reports.order_by("window_end", "pk"))


def retraining_alert_candidates(
    *, organisation_id: int | None = None
) -> QuerySet[RetrainingAssessment]:
    """The alert hook: models whose current verdict is *retrain recommended* or *overdue*, with
    ``verdict_since`` telling since when (greenkpi/alerts can evaluate this each tick)."""
    rows = RetrainingAssessment.objects.filter(
        verdict__in=[Verdict.RECOMMENDED, Verdict.OVERDUE]
    ).select_related("model__team__organisation", "version")
    if organisation_id is not None:
        rows = rows.filter(model__team__organisation_id=organisation_id)
    return rows.order_by("model_id")


def verdict_history(*, model: MLModel) -> list[VerdictChange]:
    return list(model.verdict_changes.order_by("changed_at", "pk"))


def outcomes(*, model: MLModel) -> list[RetrainOutcome]:
    return list(
        RetrainOutcome.objects.filter(run__model=model)
        .select_related("run", "previous_version", "new_version")
        .order_by("run__ended_at", "pk")
    )


def run_frame(*, model: MLModel) -> pd.DataFrame:
    """One row per run with its phase inputs and totals, for the lifecycle formulas."""
    produced = dict(
        ModelVersion.objects.filter(model=model, trained_by__isnull=False).values_list(
            "trained_by_id", "version"
        )
    )
    records = []
    for run, totals in runs_with_totals(model=model):
        version = produced.get(run.pk) or (run.version.version if run.version else "")
        records.append(
            {
                "run_key": run.key,
                "kind": run.kind,
                "version": version,
                "started_at": run.started_at,
                "ended_at": run.ended_at,
                "functional_unit": run.functional_unit,
                "functional_units": run.functional_units,
                "energy_kwh": totals.energy_kwh,
                "operational_location_kgco2e": totals.operational_kgco2e,
                "embodied_kgco2e": totals.embodied_kgco2e,
            }
        )
    columns = [
        "run_key",
        "kind",
        "version",
        "started_at",
        "ended_at",
        "functional_unit",
        "functional_units",
        "energy_kwh",
        "operational_location_kgco2e",
        "embodied_kgco2e",
    ]
    return pd.DataFrame.from_records(records, columns=columns)
