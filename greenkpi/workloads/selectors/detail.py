"""Reads behind one model's page and one run's page (and the API where they overlap): frames with
units in their column names and tz-naive UTC times, which the figure builders and CSVs share."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd

from greenkpi.lib.periods import naive_utc_series
from greenkpi.workloads import lifecycle, need
from greenkpi.workloads.models import (
    DriftFeature,
    DriftReport,
    Evaluation,
    MLModel,
    RetrainingAssessment,
    Run,
    RunKind,
)
from greenkpi.workloads.selectors import RunTotals, run_totals
from greenkpi.workloads.selectors.source import model_sums, run_sums

LIFECYCLE_COLUMNS = [
    "bucket_utc",
    "phase",
    "energy_kwh",
    "operational_kgco2e",
    "embodied_kgco2e",
    "kgco2e",
]
SCI_COLUMNS = [
    "ended_utc",
    "version",
    "run_key",
    "functional_unit",
    "functional_units",
    "kgco2e",
    "sci_kgco2e_per_1000",
]
EVALUATION_COLUMNS = ["window_end_utc", "version", "metric", "value", "labelled", "samples"]
DRIFT_COLUMNS = [
    "window_end_utc",
    "report_id",
    "version",
    "feature",
    "statistic",
    "value",
    "threshold",
    "importance",
    "drifted",
    "report_score",
]
NEED_COLUMNS = ["component", "score", "weight", "contribution"]
STEPS = ("day", "week")
MAX_RUNS_SHOWN = 200


def run_kinds(*, model: MLModel) -> dict[str, str]:
    return dict(model.runs.values_list("key", "kind"))


def lifecycle_frame(
    *, model: MLModel, start: datetime, end: datetime, step: str = "day"
) -> pd.DataFrame:
    """Energy (kWh) and kgCO2e (O + M) of the model per UTC day or ISO week and phase (training,
    inference, evaluation, unregistered run keys), from its rollups in [start, end). Two queries."""
    if step not in STEPS:
        raise ValueError(f"step must be one of {', '.join(STEPS)}")
    frame = model_sums(
        organisation_id=model.team.organisation_id,
        start=start,
        end=end,
        by=["run_key"],
        where={"team_id": [model.team_id], "model_key": [model.key]},
        grain="day",
    ).rename(columns={"bucket_utc": "day"})
    if frame.empty:
        return pd.DataFrame(columns=LIFECYCLE_COLUMNS)
    kinds = run_kinds(model=model)
    frame["phase"] = [lifecycle.phase_of(kinds.get(k)) for k in frame["run_key"]]
    frame["bucket_utc"] = lifecycle.bucket_start(
        naive_utc_series(frame["day"]).dt.normalize(), step
    )
    out = frame.groupby(["bucket_utc", "phase"], as_index=False)[
        ["energy_kwh", "operational_kgco2e", "embodied_kgco2e"]
    ].sum()
    out["kgco2e"] = out["operational_kgco2e"] + out["embodied_kgco2e"]
    order = {p: i for i, p in enumerate(lifecycle.PHASES)}
    out = out.sort_values(
        ["bucket_utc", "phase"], key=lambda s: s.map(order) if s.name == "phase" else s
    )
    return out[LIFECYCLE_COLUMNS].reset_index(drop=True)


def phase_totals(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    """{phase: {"energy_kwh", "kgco2e"}} summed over a lifecycle frame (every phase present)."""
    sums = frame.groupby("phase")[["energy_kwh", "kgco2e"]].sum() if len(frame) else None
    return {
        p: {
            "energy_kwh": float(sums.at[p, "energy_kwh"])
            if sums is not None and p in sums.index
            else 0.0,
            "kgco2e": float(sums.at[p, "kgco2e"]) if sums is not None and p in sums.index else 0.0,
        }
        for p in lifecycle.PHASES
    }


def sci_frame(*, model: MLModel, start: datetime, end: datetime) -> pd.DataFrame:
    """SCI per 1,000 functional units of each finished inference run with a count that ended in
    [start, end): (O + M) x 1000 / R of the run's whole totals (the API's /carbon/ series x 1000,
    ``lifecycle.sci_over_time``, read through ``run_sums``). Three queries."""
    runs = list(
        model.runs.filter(
            kind=RunKind.INFERENCE,
            ended_at__gte=start,
            ended_at__lt=end,
            functional_units__gt=0,
        )
        .select_related("version")
        .order_by("ended_at", "pk")
    )
    if not runs:
        return pd.DataFrame(columns=SCI_COLUMNS)
    sums = _sums_by_key(model, [r.key for r in runs])
    kg = [sums.get(r.key, RunTotals()).kgco2e for r in runs]
    out = pd.DataFrame(
        {
            "ended_utc": naive_utc_series(pd.Series([r.ended_at for r in runs])),
            "version": [r.version.version if r.version else "" for r in runs],
            "run_key": [r.key for r in runs],
            "functional_unit": [r.functional_unit or "inference" for r in runs],
            "functional_units": [float(r.functional_units or 0.0) for r in runs],
            "kgco2e": kg,
        }
    )
    out["sci_kgco2e_per_1000"] = lifecycle.sci_per_thousand(out["kgco2e"], out["functional_units"])
    return out[SCI_COLUMNS]


def _sums_by_key(model: MLModel, run_keys: list[str]) -> dict[str, RunTotals]:
    frame = run_sums(
        organisation_id=model.team.organisation_id,
        team_id=model.team_id,
        model_key=model.key,
        run_keys=run_keys,
    )
    return {
        row.run_key: RunTotals(
            energy_kwh=row.energy_kwh,
            facility_energy_kwh=row.facility_energy_kwh,
            operational_kgco2e=row.operational_kgco2e,
            embodied_kgco2e=row.embodied_kgco2e,
            gpu_hours=row.gpu_hours,
        )
        for row in frame.itertuples(index=False)
    }


def evaluation_frame(*, model: MLModel, start: datetime, end: datetime) -> pd.DataFrame:
    """The model's primary metric (every metric when none is set yet) per version over time."""
    rows = Evaluation.objects.filter(model=model, window_end__gte=start, window_end__lt=end)
    if model.primary_metric:
        rows = rows.filter(metric=model.primary_metric)
    frame = pd.DataFrame.from_records(
        list(
            rows.order_by("window_end", "pk").values_list(
                "window_end", "version__version", "metric", "value", "labelled", "samples"
            )
        ),
        columns=EVALUATION_COLUMNS,
    )
    if frame.empty:
        return pd.DataFrame(columns=EVALUATION_COLUMNS)
    frame["window_end_utc"] = naive_utc_series(frame["window_end_utc"])
    frame["version"] = frame["version"].fillna("(no version)")
    return frame


def drift_frame(*, model: MLModel, start: datetime, end: datetime) -> pd.DataFrame:
    """Every feature statistic of the model's drift reports ending in [start, end). One query."""
    rows = (
        DriftFeature.objects.filter(
            report__model=model, report__window_end__gte=start, report__window_end__lt=end
        )
        .order_by("report__window_end", "report_id", "feature")
        .values_list(
            "report__window_end",
            "report_id",
            "report__version__version",
            "feature",
            "statistic",
            "value",
            "threshold",
            "importance",
            "report__score",
        )
    )
    frame = pd.DataFrame.from_records(
        list(rows),
        columns=[c for c in DRIFT_COLUMNS if c != "drifted"],
    )
    if frame.empty:
        return pd.DataFrame(columns=DRIFT_COLUMNS)
    frame["window_end_utc"] = naive_utc_series(frame["window_end_utc"])
    frame["version"] = frame["version"].fillna("")
    frame["drifted"] = frame["value"] >= frame["threshold"]
    return frame[DRIFT_COLUMNS]


@dataclass(frozen=True)
class LatestDrift:
    report: DriftReport | None
    features: list[DriftFeature] = field(default_factory=list)


def drift_latest(*, model: MLModel) -> LatestDrift:
    report = (
        DriftReport.objects.filter(model=model)
        .select_related("version")
        .order_by("-window_end", "-pk")
        .first()
    )
    if report is None:
        return LatestDrift(None)
    features = sorted(report.features.all(), key=lambda f: (-(f.value / f.threshold), f.feature))
    return LatestDrift(report, features)


def need_frame(*, assessment: RetrainingAssessment | None) -> pd.DataFrame:
    """The current need score's breakdown (need.breakdown), empty without an assessment."""
    if assessment is None:
        return pd.DataFrame(columns=NEED_COLUMNS)
    parts = need.breakdown(
        perf=assessment.perf_score, drift=assessment.drift_score, age=assessment.age_score
    )
    return pd.DataFrame(
        [(p.component, p.score, p.weight, p.contribution) for p in parts], columns=NEED_COLUMNS
    )


@dataclass(frozen=True)
class RunRow:
    """A run with its measured totals and SCI (kgCO2e per unit, and per 1,000 units)."""

    run: Run
    totals: RunTotals
    phase: str

    @property
    def sci_kgco2e_per_unit(self) -> float | None:
        units = self.run.functional_units
        return self.totals.kgco2e / units if units else None

    @property
    def sci_kgco2e_per_1000(self) -> float | None:
        per_unit = self.sci_kgco2e_per_unit
        return per_unit * lifecycle.PER_UNITS if per_unit is not None else None


def runs_table(
    *, model: MLModel, limit: int | None = None, placement: bool = False
) -> list[RunRow]:
    """The model's runs, newest first, each with its totals. Pages read ``run_sums`` (daily rows
    before today: a year of a team stays fast); ``placement`` (the API's run list) sums the hourly
    rows instead, which also count each run's distinct hosts and devices. Three queries."""
    runs = model.runs.select_related("version").order_by("-started_at", "-pk")
    picked = list(runs[:limit] if limit else runs)
    keys = [r.key for r in picked]
    totals = run_totals(model=model, run_keys=keys) if placement else _sums_by_key(model, keys)
    return [
        RunRow(run, totals.get(run.key, RunTotals()), lifecycle.phase_of(run.kind))
        for run in picked
    ]


def is_inference(run: Run) -> bool:
    return run.kind == RunKind.INFERENCE
