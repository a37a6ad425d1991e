"""The detectors' inputs: frames read through the one read layer (``kpis.read.sums``), the
scheduler waste reader and the registry. Every ORM read of the recommendations lives here; the
detectors themselves are pure (``detectors``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd

from greenkpi.inventory.models import Device, Team
from greenkpi.kpis.read.sums import sums
from greenkpi.kpis.scheduler import jobs_usage, waste_by
from greenkpi.lib.periods import hour_floor
from greenkpi.recommendations import constants as c
from greenkpi.recommendations.detectors import Factors, ShiftAdvice, factors_of
from greenkpi.workloads.models import (
    TRAINING_KINDS,
    MLModel,
    RetrainOutcome,
    Run,
    RunKind,
    RunStatus,
)
from greenkpi.workloads.selectors import carbon_advice

USAGE_COLUMNS = (
    "energy_kwh",
    "allocated_gpu_h",
    "busy_gpu_h",
    "util_known_gpu_h",
    "idle_gpu_h",
    "idle_energy_kwh",
    "operational_location_kgco2e",
    "operational_market_kgco2e",
    "cost",
)


@dataclass
class Inputs:
    """Everything the six detectors read for one organisation and window."""

    start: datetime
    end: datetime
    hours: float  # hours of the window with measurements
    teams: dict[int, str]
    usage: pd.DataFrame
    owners: pd.DataFrame
    accounts: pd.DataFrame
    retrains: pd.DataFrame
    serving: pd.DataFrame
    training: pd.DataFrame
    advices: list[ShiftAdvice]
    factors: dict[tuple[int | None, str], Factors]
    org_factors: Factors


def window(now: datetime) -> tuple[datetime, datetime]:
    end = hour_floor(now)
    return end - timedelta(days=c.HISTORY_DAYS), end


def usage_frame(*, organisation_id: int, start: datetime, end: datetime) -> pd.DataFrame:
    """Per hour x team x model x device x currency, the usage columns, with each device's GPU
    family (None for CPUs, DRAM and unknown GPUs)."""
    frame = sums(
        organisation_id=organisation_id,
        start=start,
        end=end,
        columns=USAGE_COLUMNS,
        by=("team_id", "model_key", "device_id", "currency"),
        grain="hour",
    )
    devices = dict(
        Device.objects.filter(host__organisation_id=organisation_id, kind="gpu").values_list(
            "pk", "model_name"
        )
    )
    families = {pk: c.gpu_family(name) for pk, name in devices.items()}
    frame["gpu_family"] = [families.get(int(d)) for d in frame["device_id"]]
    return frame


def observed_hours(usage: pd.DataFrame) -> float:
    """Hours from the window's first to its last measured hour (the annualisation base)."""
    if usage.empty:
        return 0.0
    first, last = usage["bucket_utc"].min(), usage["bucket_utc"].max()
    return (last - first).total_seconds() / 3600.0 + 1.0


def owners_frame(usage: pd.DataFrame) -> pd.DataFrame:
    """GPU allocation and idle time per (team, model) over the window."""
    gpus = usage[usage["gpu_family"].notna() | (usage["allocated_gpu_h"] > 0)]
    if gpus.empty:
        return pd.DataFrame(
            columns=[
                "team_id",
                "model_key",
                "allocated_gpu_h",
                "idle_gpu_h",
                "idle_energy_kwh",
                "devices",
            ]
        )
    return (
        gpus.groupby(["team_id", "model_key"], dropna=False)
        .agg(
            allocated_gpu_h=("allocated_gpu_h", "sum"),
            idle_gpu_h=("idle_gpu_h", "sum"),
            idle_energy_kwh=("idle_energy_kwh", "sum"),
            devices=("device_id", "nunique"),
        )
        .reset_index()
    )


def accounts_frame(*, organisation_id: int, start: datetime, end: datetime) -> pd.DataFrame:
    """Scheduler jobs' waste per account, with the team that got most of the account's energy."""
    jobs = jobs_usage(organisation_id=organisation_id, start=start, end=end)
    teams: dict[str, dict[int | None, float]] = {}
    for job in jobs:
        mine = teams.setdefault(job.account, {})
        mine[job.team_id] = mine.get(job.team_id, 0.0) + job.energy_kwh
    rows = [
        {
            "account": g.key,
            "team_id": max(teams[str(g.key)], key=lambda t: (teams[str(g.key)][t], -(t or 0))),
            "jobs": g.jobs,
            "gpu_h": sum(j.gpu_h for j in jobs if j.account == g.key),
            "wasted_gpu_h": g.wasted_gpu_h,
            "wasted_energy_kwh": g.wasted_energy_kwh,
        }
        for g in waste_by(jobs, by="account")
        if g.key
    ]
    columns = ["account", "team_id", "jobs", "gpu_h", "wasted_gpu_h", "wasted_energy_kwh"]
    return pd.DataFrame(rows, columns=columns)


def retrains_frame(*, organisation_id: int, start: datetime, end: datetime) -> pd.DataFrame:
    rows = RetrainOutcome.objects.filter(
        run__model__team__organisation_id=organisation_id,
        run__ended_at__gte=start,
        run__ended_at__lt=end,
    ).values_list(
        "run__model__team_id", "run__model__key", "gain", "energy_kwh", "kgco2e", "flagged",
        "run__model__min_gain_per_kgco2e",
    )  # fmt: skip
    columns = ["team_id", "model_key", "gain", "energy_kwh", "kgco2e", "flagged", "floor_per_kg"]
    return pd.DataFrame(list(rows), columns=columns)


def runs_frames(
    *, organisation_id: int, start: datetime, end: datetime
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(finished inference runs, finished training runs) of the window with their IT kWh (one
    read of the run sums)."""
    runs = list(
        Run.objects.filter(
            model__team__organisation_id=organisation_id,
            status=RunStatus.SUCCEEDED,
            started_at__gte=start,
            ended_at__lte=end,
            kind__in=[RunKind.INFERENCE, *TRAINING_KINDS],
        ).values_list(
            "model__team_id", "model__key", "key", "kind", "started_at", "ended_at",
            "functional_units",
        )
    )  # fmt: skip
    energy = sums(
        organisation_id=organisation_id,
        start=start,
        end=end,
        columns=("energy_kwh",),
        by=("team_id", "model_key", "run_key"),
    )
    kwh = {
        (int(t), str(m), str(r)): float(e)
        for t, m, r, e in energy[["team_id", "model_key", "run_key", "energy_kwh"]].itertuples(
            index=False
        )
        if not pd.isna(t)
    }
    serving, training = [], []
    for team_id, model_key, key, kind, started, ended, units in runs:
        row = {
            "team_id": team_id,
            "model_key": model_key,
            "run_key": key,
            "started_at": started,
            "run_hours": (ended - started).total_seconds() / 3600.0,
            "energy_kwh": kwh.get((team_id, model_key, key), 0.0),
            "requests": float(units or 0.0),
        }
        (serving if kind == RunKind.INFERENCE else training).append(row)
    columns = [
        "team_id",
        "model_key",
        "run_key",
        "started_at",
        "run_hours",
        "energy_kwh",
        "requests",
    ]
    return pd.DataFrame(serving, columns=columns), pd.DataFrame(training, columns=columns)


def shift_advices(*, organisation_id: int, start: datetime, now: datetime) -> list[ShiftAdvice]:
    """The existing carbon-aware advice of every model with recurring runs, flattened."""
    out = []
    models = MLModel.objects.filter(team__organisation_id=organisation_id).filter(
        pk__in=Run.objects.exclude(recurrence="").values("model_id")
    )
    for model in models.select_related("team"):
        for a in carbon_advice(model=model, now=now):
            if a.advice is None or a.advice.best is None or not a.hourly:
                continue
            if a.site is None or a.start_hour is None or a.advice.saving_kgco2e is None:
                continue
            occurrences = model.runs.filter(
                recurrence=a.recurrence, started_at__gte=start, started_at__lt=now
            ).count()
            out.append(
                ShiftAdvice(
                    team_id=model.team_id,
                    model_key=model.key,
                    recurrence=a.recurrence,
                    occurrences=occurrences,
                    site=a.site,
                    start_hour=a.start_hour,
                    best_site=a.advice.best.site,
                    best_hour=a.advice.best.start_hour,
                    saving_kg=a.advice.saving_kgco2e,
                    saving_pct=a.advice.saving_pct or 0.0,
                )
            )
    return out


def inputs(*, organisation_id: int, now: datetime | None = None) -> Inputs:
    now = now or datetime.now(UTC)
    start, end = window(now)
    usage = usage_frame(organisation_id=organisation_id, start=start, end=end)
    serving, training = runs_frames(organisation_id=organisation_id, start=start, end=end)
    factors = factors_of(usage)
    whole = factors_of(usage.assign(team_id=pd.NA, model_key=""))
    return Inputs(
        start=start,
        end=end,
        hours=observed_hours(usage),
        teams=dict(Team.objects.filter(organisation_id=organisation_id).values_list("pk", "slug")),
        usage=usage,
        owners=owners_frame(usage),
        accounts=accounts_frame(organisation_id=organisation_id, start=start, end=end),
        retrains=retrains_frame(organisation_id=organisation_id, start=start, end=end),
        serving=serving,
        training=training,
        advices=shift_advices(organisation_id=organisation_id, start=start, now=end),
        factors=factors,
        org_factors=next(iter(whole.values()), Factors()),
    )


def team_slugs(organisation_id: int) -> Mapping[int, str]:
    return dict(Team.objects.filter(organisation_id=organisation_id).values_list("pk", "slug"))
