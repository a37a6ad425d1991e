"""Reads of the registry, and of the rollups that give runs their energy and carbon.

A run's totals are sums of ``kpis.HourlyRollup`` rows of its model's organisation and team carrying
its model and run keys: however many hosts and GPUs it ran on, it has one total, and a late sample
changes it when its window is recomputed.

The dashboard's reads live beside this module: ``listing`` (the models list, key -> id lookup),
``detail`` (one model's page), ``runs`` (one run's page), ``source`` (which rollup table a range
reads). The API reads them too where it shows the same numbers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from django.db.models import QuerySet

from greenkpi.carbon.models import GridIntensityHourly
from greenkpi.inventory.models import Device, Site
from greenkpi.kpis.read import sums as read
from greenkpi.lib.periods import hour_floor
from greenkpi.workloads import advice
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


def is_first_version(*, model: MLModel, version: ModelVersion) -> bool:
    """Whether ``version`` is the first version registered for the model (its onboarding)."""
    first = model.versions.order_by("created_at", "pk").values_list("pk", flat=True).first()
    return first == version.pk


# Run keys the scheduler gives (``slurm:<cluster>:<job id>``, ingest.scheduler.run_key_of): one
# per organisation, so such a run's rollups are all rows carrying its key, whatever team and model
# the mappings gave them (an unmapped job's rows have no model key; its run hangs under the team's
# placeholder model, workloads.scheduler_runs).
SCHEDULER_RUN_PREFIXES = ("slurm:", "k8s:")


def runs_sums(
    model: MLModel,
    run_keys: Iterable[str],
    *,
    columns: Sequence[str],
    by: Sequence[str] = (),
    grain: read.Grain = None,
    start: datetime = read.BEGINNING,
    end: datetime | None = None,
) -> pd.DataFrame:
    """Sums of the rollups of these runs of ``model`` (its team and model key, or a scheduler run
    key), through kpis.read: one read per kind of key. The two kinds never share a run key, so
    their frames add up. ``end`` by default: the end of the hour in progress (every rollup)."""
    keys = sorted(set(run_keys))
    scheduler = [k for k in keys if k.startswith(SCHEDULER_RUN_PREFIXES)]
    registered = [k for k in keys if not k.startswith(SCHEDULER_RUN_PREFIXES)]
    end = end or hour_floor(datetime.now(UTC)) + timedelta(hours=1)
    wheres: list[dict[str, list[object]]] = []
    if registered:
        wheres.append(
            {"team_id": [model.team_id], "model_key": [model.key], "run_key": list(registered)}
        )
    if scheduler:
        wheres.append({"run_key": list(scheduler)})
    parts = [
        read.sums(
            organisation_id=model.team.organisation_id,
            start=start,
            end=end,
            columns=columns,
            by=by,
            where=where,
            grain=grain,
        )
        for where in wheres
    ]
    if not parts:
        parts = [read.sums(organisation_id=0, start=start, end=start, columns=columns, by=by)]
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def run_totals(*, model: MLModel, run_keys: Iterable[str]) -> dict[str, RunTotals]:
    """{run key: totals} for the given runs of ``model``, in one read per kind of run key (runs
    without rollups are absent). Per host and device, so the same read counts where it ran."""
    keys = list(run_keys)
    if not keys:
        return {}
    frame = runs_sums(
        model,
        keys,
        columns=[
            "energy_kwh",
            "facility_energy_kwh",
            "operational_location_kgco2e",
            "embodied_kgco2e",
            "allocated_gpu_h",
        ],
        by=["run_key", "host_id", "device_id"],
    )
    if frame.empty:
        return {}
    per_run = frame.groupby("run_key", sort=False).agg(
        energy_kwh=("energy_kwh", "sum"),
        facility_energy_kwh=("facility_energy_kwh", "sum"),
        operational_kgco2e=("operational_location_kgco2e", "sum"),
        embodied_kgco2e=("embodied_kgco2e", "sum"),
        gpu_hours=("allocated_gpu_h", "sum"),
        hosts=("host_id", "nunique"),
        devices=("device_id", "nunique"),
    )
    return {
        str(key): RunTotals(
            energy_kwh=float(row.energy_kwh),
            facility_energy_kwh=float(row.facility_energy_kwh),
            operational_kgco2e=float(row.operational_kgco2e),
            embodied_kgco2e=float(row.embodied_kgco2e),
            gpu_hours=float(row.gpu_hours),
            hosts=int(row.hosts),
            devices=int(row.devices),
        )
        for key, row in per_run.iterrows()
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


# --- Carbon-aware advice for recurring runs (maths in ``advice``, docs/carbon-advice.md) ---

ADVICE_HISTORY_DAYS = 28
NO_HOURLY = (
    "no imported hourly series for this grid zone: the annual fallback is one figure for every "
    "hour, so it gives no hourly advice"
)


@dataclass(frozen=True, slots=True)
class RecurrenceAdvice:
    """Advice for one recurring job (``Run.recurrence``) of a model."""

    recurrence: str
    runs: int
    reference_run: str | None  # the latest measured occurrence, whose hourly energy is replayed
    site: str | None
    start_hour: int | None  # UTC
    energy_kwh_by_hour: list[float]
    hourly: bool  # False: the current site has no hourly series (no advice)
    advice: advice.Advice | None
    sites_skipped: dict[str, str]  # site -> why it is not compared
    move: tuple[list[advice.RunMeasure], list[advice.RunMeasure]] | None
    measured: advice.MeasuredSaving | None
    notes: list[str]


def _hardware(device_ids: Iterable[int]) -> set[tuple[str, str]]:
    """What the run needs elsewhere: its GPU kinds and models, or its device kinds without GPUs."""
    used = set(Device.objects.filter(pk__in=list(device_ids)).values_list("kind", "model_name"))
    gpus = {(kind, name) for kind, name in used if kind == "gpu"}
    return gpus or {(kind, "") for kind, _ in used}


def _sites_with(organisation_id: int, needed: set[tuple[str, str]]) -> list[Site]:
    present: dict[int, set[tuple[str, str]]] = defaultdict(set)
    rows = Device.objects.filter(host__organisation_id=organisation_id, host__site__isnull=False)
    for site_id, kind, name in rows.values_list("host__site_id", "kind", "model_name"):
        present[site_id] |= {(kind, name), (kind, "")}
    ids = [s for s, have in present.items() if needed <= have]
    return list(Site.objects.filter(pk__in=ids).order_by("name"))


def carbon_advice(
    *, model: MLModel, now: datetime | None = None, history_days: int = ADVICE_HISTORY_DAYS
) -> list[RecurrenceAdvice]:
    """Per recurrence of ``model``: where and when its latest occurrence would have emitted least
    over the last ``history_days`` of hourly grid data, and what the latest move measurably saved."""
    now = now or datetime.now(UTC)
    runs = list(
        model.runs.exclude(recurrence="")
        .filter(status=RunStatus.SUCCEEDED, ended_at__isnull=False, started_at__lt=now)
        .order_by("recurrence", "started_at", "pk")
    )
    if not runs:
        return []
    per_hour = read.sums(
        organisation_id=model.team.organisation_id,
        start=read.BEGINNING,
        end=hour_floor(now) + timedelta(hours=1),
        columns=["energy_kwh", "operational_location_kgco2e"],
        by=["run_key", "site_id", "device_id"],
        where={
            "team_id": [model.team_id],
            "model_key": [model.key],
            "run_key": [r.key for r in runs],
        },
        grain="hour",
    )
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    hours = per_hour["bucket_utc"].dt.tz_localize(UTC).dt.to_pydatetime().tolist()
    for run_key, hour, site_id, device_id, kwh, kg in zip(
        per_hour["run_key"].tolist(),
        hours,
        per_hour["site_id"].tolist(),
        per_hour["device_id"].tolist(),
        per_hour["energy_kwh"].tolist(),
        per_hour["operational_location_kgco2e"].tolist(),
        strict=True,
    ):
        rows[run_key].append(
            {
                "run_key": run_key,
                "hour": hour,
                "site_id": None if pd.isna(site_id) else int(site_id),
                "device_id": None if pd.isna(device_id) else int(device_id),
                "kwh": kwh,
                "kg": kg,
            }
        )
    site_names = dict(
        Site.objects.filter(organisation_id=model.team.organisation_id).values_list("pk", "name")
    )
    out = []
    for recurrence in sorted({r.recurrence for r in runs}):
        series = [r for r in runs if r.recurrence == recurrence]
        out.append(
            _recurrence_advice(
                model, recurrence, series, rows, site_names, now, history_days=history_days
            )
        )
    return out


def _measure(run: Run, rows: list[dict[str, Any]], site_names: dict[int, str]) -> advice.RunMeasure:
    by_site: dict[int | None, float] = defaultdict(float)
    for row in rows:
        by_site[row["site_id"]] += row["kwh"] or 0.0
    main = max(by_site, key=lambda s: by_site[s]) if by_site else None  # a run spans one site
    return advice.RunMeasure(
        run_key=run.key,
        site=site_names.get(main, "") if main is not None else "",
        start_hour=run.started_at.astimezone(UTC).hour,
        energy_kwh=sum(by_site.values()),
        operational_kgco2e=sum(row["kg"] or 0.0 for row in rows),
    )


def _recurrence_advice(
    model: MLModel,
    recurrence: str,
    series: list[Run],
    rows: dict[str, list[dict[str, Any]]],
    site_names: dict[int, str],
    now: datetime,
    *,
    history_days: int,
) -> RecurrenceAdvice:
    measured_runs = [
        m
        for m in (_measure(r, rows.get(r.key, []), site_names) for r in series)
        if m.energy_kwh > 0 and m.site
    ]
    move = advice.split_at_move(measured_runs)
    saved = advice.measured_saving(*move) if move else None
    notes: list[str] = []
    empty = RecurrenceAdvice(
        recurrence, len(series), None, None, None, [], False, None, {}, move, saved, notes
    )
    if not measured_runs:
        notes.append("no finished occurrence measured at a site yet")
        return empty
    reference = measured_runs[-1]
    run = next(r for r in series if r.key == reference.run_key)
    start = hour_floor(run.started_at)
    profile: dict[int, float] = defaultdict(float)
    for row in rows[run.key]:
        profile[int((row["hour"] - start).total_seconds() // 3600)] += row["kwh"] or 0.0
    energy = [profile.get(k, 0.0) for k in range(max(profile) + 1)] if profile else []
    sites = _sites_with(
        model.team.organisation_id, _hardware(row["device_id"] for row in rows[run.key])
    )
    since = now - timedelta(days=history_days)
    hourly = defaultdict(list)
    for zone, hour, g in GridIntensityHourly.objects.filter(
        zone__in={s.grid_zone for s in sites}, hour__gte=since, hour__lt=now
    ).values_list("zone", "hour", "intensity_lifecycle_g_per_kwh"):
        hourly[zone].append((hour.astimezone(UTC), g))
    candidates, skipped = [], {}
    for site in sites:
        if not hourly.get(site.grid_zone):
            skipped[site.name] = NO_HOURLY
            continue
        means = advice.hour_of_day_means(hourly[site.grid_zone])
        candidates.append(advice.SiteSeries(site.name, site.grid_zone, site.pue, means))
    advised = advice.advise(
        energy_kwh=energy,
        current_site=reference.site,
        current_hour=reference.start_hour,
        sites=candidates,
    )
    has_hourly = reference.site not in skipped and advised.current is not None
    if not has_hourly:
        notes.append(f"{reference.site}: {NO_HOURLY}")
    notes.append(
        "estimated: the reference run's measured hourly IT energy replayed at each start hour "
        f"against the mean intensity per UTC hour of day over the last {history_days} days; "
        "other sites only where the same hardware is; operational carbon only (embodied is "
        "the same wherever and whenever it runs)"
    )
    return RecurrenceAdvice(
        recurrence=recurrence,
        runs=len(series),
        reference_run=run.key,
        site=reference.site,
        start_hour=reference.start_hour,
        energy_kwh_by_hour=energy,
        hourly=has_hourly,
        advice=advised,
        sites_skipped=skipped,
        move=move,
        measured=saved,
        notes=notes,
    )
