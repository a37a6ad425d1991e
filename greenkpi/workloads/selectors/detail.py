"""Reads behind one model's page and one run's page (and the API where they overlap): frames with
units in their column names and tz-naive UTC times, which the figure builders and CSVs share."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
from django.db.models import Max, Min, Q, Sum

from greenkpi.kpis import formulas
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
from greenkpi.workloads.selectors import RunTotals, _model_rollups, run_frame, run_totals
from greenkpi.workloads.selectors.source import rollups_between

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
POWER_COLUMNS = ["hour_utc", "device_id", "device", "host", "energy_kwh", "power_w"]
STEPS = ("day", "week")
MAX_RUNS_SHOWN = 200


def _naive_utc(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True).dt.tz_localize(None)


def run_kinds(*, model: MLModel) -> dict[str, str]:
    return dict(model.runs.values_list("key", "kind"))


def lifecycle_frame(
    *, model: MLModel, start: datetime, end: datetime, step: str = "day"
) -> pd.DataFrame:
    """Energy (kWh) and kgCO2e (O + M) of the model per UTC day or ISO week and phase (training,
    inference, evaluation, unregistered run keys), from its rollups in [start, end). Two queries."""
    if step not in STEPS:
        raise ValueError(f"step must be one of {', '.join(STEPS)}")
    rows = (
        rollups_between(organisation_id=model.team.organisation_id, start=start, end=end)
        .filter(team_id=model.team_id, model_key=model.key)
        .values("day", "run_key")
        .annotate(
            energy_kwh=Sum("energy_kwh"),
            operational_kgco2e=Sum("operational_location_kgco2e"),
            embodied_kgco2e=Sum("embodied_kgco2e"),
        )
        .order_by()
    )
    frame = pd.DataFrame.from_records(
        list(rows),
        columns=["day", "run_key", "energy_kwh", "operational_kgco2e", "embodied_kgco2e"],
    )
    if frame.empty:
        return pd.DataFrame(columns=LIFECYCLE_COLUMNS)
    kinds = run_kinds(model=model)
    frame["phase"] = [lifecycle.phase_of(kinds.get(k)) for k in frame["run_key"]]
    frame["bucket_utc"] = lifecycle.bucket_start(_naive_utc(frame["day"]).dt.normalize(), step)
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
    [start, end): (O + M) x 1000 / R of the run's whole totals (the API's /carbon/ series x 1000)."""
    runs = run_frame(model=model)
    series = lifecycle.sci_over_time(runs)
    if series.empty:
        return pd.DataFrame(columns=SCI_COLUMNS)
    ended = pd.to_datetime(series["ended_at"], utc=True)
    series = series[(ended >= pd.Timestamp(start)) & (ended < pd.Timestamp(end))]
    runs = runs.set_index("run_key")
    kg = runs["operational_location_kgco2e"] + runs["embodied_kgco2e"]
    out = pd.DataFrame(
        {
            "ended_utc": _naive_utc(series["ended_at"]),
            "version": series["version"].fillna(""),
            "run_key": series["run_key"],
            "functional_unit": series["functional_unit"].replace("", "inference"),
            "functional_units": [float(runs.at[k, "functional_units"]) for k in series["run_key"]],
            "kgco2e": [float(kg[k]) for k in series["run_key"]],
        }
    )
    out["sci_kgco2e_per_1000"] = lifecycle.sci_per_thousand(out["kgco2e"], out["functional_units"])
    return out[SCI_COLUMNS].reset_index(drop=True)


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
    frame["window_end_utc"] = _naive_utc(frame["window_end_utc"])
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
    frame["window_end_utc"] = _naive_utc(frame["window_end_utc"])
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


def runs_table(*, model: MLModel, limit: int | None = None) -> list[RunRow]:
    """The model's runs, newest first, each with its totals (what the API's run list returns).
    Three queries whatever the number of runs."""
    runs = model.runs.select_related("version").order_by("-started_at", "-pk")
    picked = list(runs[:limit] if limit else runs)
    totals = run_totals(model=model, run_keys=[r.key for r in picked])
    return [
        RunRow(run, totals.get(run.key, RunTotals()), lifecycle.phase_of(run.kind))
        for run in picked
    ]


def run_for(*, model: MLModel, run_id: int) -> Run | None:
    return model.runs.select_related("version").filter(pk=run_id).first()


@dataclass(frozen=True)
class RunDevice:
    host: str
    device: str
    kind: str
    energy_kwh: float
    gpu_hours: float


@dataclass(frozen=True)
class RunDetail:
    """Everything measured about one run, from its rollups (energy IT and facility, carbon
    location / market / embodied, cost per currency, GPU-hours and utilization)."""

    energy_kwh: float = 0.0
    facility_energy_kwh: float = 0.0
    estimated_share: float | None = None
    operational_location_kgco2e: float = 0.0
    operational_market_kgco2e: float = 0.0
    embodied_kgco2e: float = 0.0
    allocated_gpu_h: float = 0.0
    busy_gpu_h: float = 0.0
    idle_gpu_h: float = 0.0
    avg_gpu_utilization: float | None = None
    cost: list[tuple[str, float]] = field(default_factory=list)  # (currency, amount)
    uncosted_energy_kwh: float = 0.0
    devices: list[RunDevice] = field(default_factory=list)
    first_hour: datetime | None = None
    last_hour: datetime | None = None
    functional_units: float | None = None

    @property
    def kgco2e(self) -> float:
        """SCI numerator O + M (location-based)."""
        return self.operational_location_kgco2e + self.embodied_kgco2e

    @property
    def hosts(self) -> list[str]:
        return sorted({d.host for d in self.devices})

    @property
    def sci_kgco2e_per_unit(self) -> float | None:
        return self.kgco2e / self.functional_units if self.functional_units else None

    @property
    def sci_kgco2e_per_1000(self) -> float | None:
        per_unit = self.sci_kgco2e_per_unit
        return per_unit * lifecycle.PER_UNITS if per_unit is not None else None


_SUMMED = [
    "energy_kwh",
    "facility_energy_kwh",
    "estimated_energy_kwh",
    "operational_location_kgco2e",
    "operational_market_kgco2e",
    "embodied_kgco2e",
    "allocated_gpu_h",
    "busy_gpu_h",
    "util_known_gpu_h",
    "idle_gpu_h",
    "sm_active_gpu_h",
    "sm_known_gpu_h",
]


def _device_label(kind: str, uuid: str, model_name: str) -> str:
    short = uuid if len(uuid) <= 24 else "…" + uuid[-8:]
    name = short if uuid.upper().startswith(kind.upper()) else f"{kind.upper()} {short}"
    return f"{name} · {model_name}" if model_name else name


def run_detail(*, model: MLModel, run: Run) -> RunDetail:
    """One GROUP BY per (device, currency) over the run's rollups; totals and ratios from it with
    the KPI formulas (ratios of sums, never means of ratios)."""
    rows = (
        _model_rollups(model)
        .filter(run_key=run.key)
        .values(
            "device_id",
            "device__uuid",
            "device__kind",
            "device__model_name",
            "host__hostname",
            "currency",
        )
        .annotate(
            **{c: Sum(c) for c in _SUMMED},
            cost=Sum("cost"),
            first_hour=Min("hour"),
            last_hour=Max("hour"),
        )
        .order_by()
    )
    frame = pd.DataFrame.from_records(list(rows))
    if frame.empty:
        return RunDetail(functional_units=run.functional_units)
    energy = formulas.energy(frame).iloc[0]
    carbon = formulas.co2e(frame).iloc[0]
    gpu = formulas.gpu_utilization(frame).iloc[0]
    costs = formulas.cost(frame.assign(cost=frame["cost"].astype("float64")))
    per_device = frame.groupby(
        ["device_id", "device__uuid", "device__kind", "device__model_name", "host__hostname"],
        as_index=False,
    )[["energy_kwh", "allocated_gpu_h"]].sum()
    devices = [
        RunDevice(
            host=row.host__hostname,
            device=_device_label(row.device__kind, row.device__uuid, row.device__model_name),
            kind=row.device__kind,
            energy_kwh=float(row.energy_kwh),
            gpu_hours=float(row.allocated_gpu_h),
        )
        for row in per_device.sort_values(["host__hostname", "device__uuid"]).itertuples()
    ]
    share = energy["estimated_share"]
    util = gpu["avg_gpu_utilization"]
    return RunDetail(
        energy_kwh=float(energy["energy_kwh"]),
        facility_energy_kwh=float(energy["facility_energy_kwh"]),
        estimated_share=None if pd.isna(share) else float(share),
        operational_location_kgco2e=float(carbon["operational_location_kgco2e"]),
        operational_market_kgco2e=float(carbon["operational_market_kgco2e"]),
        embodied_kgco2e=float(carbon["embodied_kgco2e"]),
        allocated_gpu_h=float(gpu["allocated_gpu_h"]),
        busy_gpu_h=float(gpu["busy_gpu_h"]),
        idle_gpu_h=float(frame["idle_gpu_h"].sum()),
        avg_gpu_utilization=None if pd.isna(util) else float(util),
        cost=[
            (str(c), float(v)) for c, v in zip(costs["currency"], costs["cost"], strict=True) if c
        ],
        uncosted_energy_kwh=float(costs["uncosted_energy_kwh"].sum()),
        devices=devices,
        first_hour=pd.Timestamp(frame["first_hour"].min()).to_pydatetime(),
        last_hour=pd.Timestamp(frame["last_hour"].max()).to_pydatetime(),
        functional_units=run.functional_units,
    )


def run_power_frame(*, model: MLModel, run: Run) -> pd.DataFrame:
    """The run's mean power per device and UTC hour: kWh attributed to it in the hour x 1000 W
    (an hour's mean, so a run that covered a quarter of an hour shows a quarter of its draw)."""
    rows = (
        _model_rollups(model)
        .filter(run_key=run.key)
        .values(
            "hour",
            "device_id",
            "device__uuid",
            "device__kind",
            "device__model_name",
            "host__hostname",
        )
        .annotate(energy_kwh=Sum("energy_kwh"))
        .order_by("device_id", "hour")
        .values_list(
            "hour",
            "device_id",
            "device__kind",
            "device__uuid",
            "device__model_name",
            "host__hostname",
            "energy_kwh",
        )
    )
    frame = pd.DataFrame.from_records(
        list(rows), columns=["hour", "device_id", "kind", "uuid", "model", "host", "energy_kwh"]
    )
    if frame.empty:
        return pd.DataFrame(columns=POWER_COLUMNS)
    frame["hour_utc"] = _naive_utc(frame["hour"])
    frame["device"] = [
        _device_label(k, u, m)
        for k, u, m in zip(frame["kind"], frame["uuid"], frame["model"], strict=True)
    ]
    frame["power_w"] = frame["energy_kwh"] * 1000.0  # kWh in one hour -> mean W over that hour
    return frame[POWER_COLUMNS]


def run_evaluations(*, model: MLModel, run: Run) -> list[Evaluation]:
    """Evaluations posted for the run, and those of the version it produced (a training run)."""
    return list(
        Evaluation.objects.filter(model=model)
        .filter(Q(run=run) | Q(version__trained_by=run))
        .select_related("version")
        .order_by("window_end", "pk")
    )


def is_inference(run: Run) -> bool:
    return run.kind == RunKind.INFERENCE
