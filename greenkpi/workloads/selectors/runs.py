"""Reads behind one run's page: what its rollups measured (energy, carbon, cost, GPU-hours and
utilization per device), its power per device and hour, and its evaluations."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pandas as pd
from django.db.models import Q

from greenkpi.kpis import formulas
from greenkpi.kpis.read import sums as read
from greenkpi.workloads import lifecycle
from greenkpi.workloads.models import Evaluation, MLModel, Run
from greenkpi.workloads.selectors import runs_sums

POWER_COLUMNS = ["hour_utc", "device_id", "device", "host", "energy_kwh", "power_w"]


# Energy is read a day either side of the run's registered span: a run registered late, or a host
# whose clock is off, still counts, without scanning the team's whole history.
RUN_MARGIN = timedelta(days=1)


def _run_sums(
    model: MLModel, run: Run, columns: list[str], by: list[str], grain: read.Grain = None
) -> pd.DataFrame:
    """The run's rollups summed per ``by`` (kpis.read), a margin either side of its span."""
    end = run.ended_at or datetime.now(UTC)
    return runs_sums(
        model,
        [run.key],
        columns=columns,
        by=by,
        grain=grain,
        start=run.started_at - RUN_MARGIN,
        end=end + RUN_MARGIN,
    )


# A device and its labels, grouped by in the same read (no second query for names).
DEVICE_KEYS = ["device_id", "device__uuid", "device__kind", "device__model_name", "host__hostname"]


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
    frame = _run_sums(
        model,
        run,
        [*_SUMMED, "cost", "first_hour_s", "last_hour_s"],
        [*DEVICE_KEYS, "currency"],
    )
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
        first_hour=datetime.fromtimestamp(float(frame["first_hour_s"].min()), UTC),
        last_hour=datetime.fromtimestamp(float(frame["last_hour_s"].max()), UTC),
        functional_units=run.functional_units,
    )


def run_power_frame(*, model: MLModel, run: Run) -> pd.DataFrame:
    """The run's mean power per device and UTC hour: kWh attributed to it in the hour x 1000 W
    (an hour's mean, so a run that covered a quarter of an hour shows a quarter of its draw)."""
    frame = _run_sums(model, run, ["energy_kwh"], DEVICE_KEYS, grain="hour")
    if frame.empty:
        return pd.DataFrame(columns=POWER_COLUMNS)
    frame = frame.rename(
        columns={
            "device__kind": "kind",
            "device__uuid": "uuid",
            "device__model_name": "model",
            "host__hostname": "host",
        }
    )
    frame = frame.sort_values(["device_id", "bucket_utc"], kind="stable").reset_index(drop=True)
    frame["hour_utc"] = frame["bucket_utc"]
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
