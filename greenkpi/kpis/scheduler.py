"""Reads of scheduler jobs' energy and waste, for the Slurm jobs page, the API and the digest.

One GROUP BY over the hourly rollups of a range through the read layer (``kpis.read``: a scheduler
job is a key only the hourly rows carry), joined to the jobs' facts in Python (a few hundred jobs,
not rows); the range's totals beside it (``unmapped``) come from the daily tables for whole days. Waste is the allocated-but-idle energy
(docs/kpis.md, "Allocated-but-idle waste"): kgCO2e = kWh x PUE x location intensity / 1000, the
same operational formula as every other rollup figure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from greenkpi.ingest.models import SchedulerJob
from greenkpi.kpis.read import sums as read


@dataclass(frozen=True, slots=True)
class JobUsage:
    """One scheduler job over a range: its facts, owner and measured totals."""

    job_pk: int
    run_key: str
    cluster: str
    job_id: str
    user: str
    account: str
    partition: str
    job_name: str
    team_id: int | None
    model_key: str
    started_at: datetime | None
    ended_at: datetime | None
    energy_kwh: float
    kgco2e: float  # operational (location) + embodied
    gpu_h: float
    wasted_gpu_h: float
    wasted_energy_kwh: float
    wasted_kgco2e: float
    unmapped_energy_kwh: float

    @property
    def namespace(self) -> str:
        """A pod's namespace (a Kubernetes job id is ``<namespace>/<pod>``); empty for Slurm."""
        return self.job_id.partition("/")[0] if "/" in self.job_id else ""


# The read layer's names of what a job sums (wasted kgCO2e: Σ(kWh x PUE x g/kWh) / 1000, summed
# in grams first as every idle figure).
JOB_COLUMNS = {
    "energy_kwh": "energy_kwh",
    "operational_location_kgco2e": "operational",
    "embodied_kgco2e": "embodied",
    "allocated_gpu_h": "gpu_h",
    "allocated_idle_gpu_h": "wasted_gpu_h",
    "allocated_idle_energy_kwh": "wasted_energy_kwh",
    "allocated_idle_location_kgco2e": "wasted_kgco2e",
    "unmapped_energy_kwh": "unmapped_energy_kwh",
}


def _job_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The groups of rows that carry a scheduler job (the read also returns the others' groups:
    "carries a job" is no filter the read layer has, and the range is read whole either way)."""
    frame = frame[frame["scheduler_job_id"].notna()]
    return frame.astype({"scheduler_job_id": "int64"})


def jobs_usage(
    *,
    organisation_id: int,
    start: datetime,
    end: datetime,
    team_ids: Iterable[int] | None = None,
    account: str = "",
    user: str = "",
    kind: str | None = None,
) -> list[JobUsage]:
    """Jobs with windows in [start, end), most wasted GPU-hours first (then kgCO2e, energy).

    ``team_ids`` limits to the jobs whose energy went (mostly) to those teams: a person sees the
    jobs of the teams they may see, like every page. ``kind``: one scheduler (``slurm``, ``k8s``).
    """
    frame = _job_rows(
        read.sums(
            organisation_id=organisation_id,
            start=start,
            end=end,
            columns=list(JOB_COLUMNS),
            by=["scheduler_job_id", "team_id", "model_key"],
        ).rename(columns=JOB_COLUMNS)
    )
    per_job: dict[int, dict] = {}
    columns = [frame[c].tolist() for c in ("scheduler_job_id", "team_id", "model_key", *_SUMS)]
    for job_pk, team_id, model_key, *values in zip(*columns, strict=True):
        job = per_job.setdefault(job_pk, {"owners": {}, "sums": dict.fromkeys(_SUMS, 0.0)})
        owner = (None if pd.isna(team_id) else int(team_id), model_key)
        job["owners"][owner] = job["owners"].get(owner, 0.0) + values[0]  # energy_kwh
        for name, value in zip(_SUMS, values, strict=True):
            job["sums"][name] += value
    if not per_job:
        return []
    facts = SchedulerJob.objects.filter(organisation_id=organisation_id, pk__in=list(per_job))
    if kind:
        facts = facts.filter(kind=kind)
    if account:
        facts = facts.filter(account=account)
    if user:
        facts = facts.filter(user=user)
    visible = set(team_ids) if team_ids is not None else None
    out = []
    for fact in facts.values(
        "pk",
        "run_key",
        "cluster",
        "job_id",
        "user",
        "account",
        "partition",
        "job_name",
        "started_at",
        "ended_at",
    ):
        job = per_job[fact["pk"]]
        # the owner with the most energy (ties: lowest team id, then model key) names the job
        team_id, model_key = min(job["owners"], key=lambda o: (-job["owners"][o], o[0] or 0, o[1]))
        if visible is not None and team_id not in visible:
            continue
        sums = job["sums"]
        out.append(
            JobUsage(
                job_pk=fact["pk"],
                run_key=fact["run_key"],
                cluster=fact["cluster"],
                job_id=fact["job_id"],
                user=fact["user"],
                account=fact["account"],
                partition=fact["partition"],
                job_name=fact["job_name"],
                team_id=team_id,
                model_key=model_key,
                started_at=fact["started_at"],
                ended_at=fact["ended_at"],
                energy_kwh=sums["energy_kwh"],
                kgco2e=sums["operational"] + sums["embodied"],
                gpu_h=sums["gpu_h"],
                wasted_gpu_h=sums["wasted_gpu_h"],
                wasted_energy_kwh=sums["wasted_energy_kwh"],
                wasted_kgco2e=sums["wasted_kgco2e"],
                unmapped_energy_kwh=sums["unmapped_energy_kwh"],
            )
        )
    out.sort(key=lambda j: (-j.wasted_gpu_h, -j.wasted_kgco2e, -j.energy_kwh, j.run_key))
    return out


_SUMS = tuple(JOB_COLUMNS.values())  # energy_kwh first (a job's owners are weighed by it)


@dataclass(frozen=True, slots=True)
class WasteGroup:
    """Waste of the jobs of one account, user or team over a range."""

    key: str | int | None
    jobs: int
    energy_kwh: float
    wasted_gpu_h: float
    wasted_energy_kwh: float
    wasted_kgco2e: float


def waste_by(jobs: Iterable[JobUsage], *, by: str) -> list[WasteGroup]:
    """Jobs' waste summed per ``by`` ("account", "user", "team_id" or a pod's "namespace"),
    most wasted first."""
    groups: dict[str | int | None, list[JobUsage]] = {}
    for job in jobs:
        groups.setdefault(getattr(job, by), []).append(job)
    out = [
        WasteGroup(
            key=key,
            jobs=len(members),
            energy_kwh=sum(j.energy_kwh for j in members),
            wasted_gpu_h=sum(j.wasted_gpu_h for j in members),
            wasted_energy_kwh=sum(j.wasted_energy_kwh for j in members),
            wasted_kgco2e=sum(j.wasted_kgco2e for j in members),
        )
        for key, members in groups.items()
    ]
    out.sort(key=lambda g: (-g.wasted_gpu_h, -g.wasted_kgco2e, str(g.key)))
    return out


@dataclass(frozen=True, slots=True)
class Unmapped:
    """Energy of scheduler jobs no mapping gave a team (it stayed with the hosts' teams)."""

    energy_kwh: float
    total_energy_kwh: float
    accounts: list[tuple[str, float]]  # (Slurm account, kWh), most first

    @property
    def share(self) -> float | None:
        return self.energy_kwh / self.total_energy_kwh if self.total_energy_kwh else None


def unmapped(
    *,
    organisation_id: int,
    start: datetime,
    end: datetime,
    team_ids: Iterable[int] | None = None,
) -> Unmapped:
    """Unmapped kWh of the range against all kWh of the same rows' scope, and per account."""
    where = {} if team_ids is None else {"team_id": list(team_ids)}
    # The totals: whole days from DailyTeamRollup (the daily tables carry unmapped kWh).
    total = read.sums(
        organisation_id=organisation_id,
        start=start,
        end=end,
        columns=["energy_kwh", "unmapped_energy_kwh"],
        where=where,
    )
    total_kwh, unmapped_kwh = (
        (float(total[c].sum()) for c in ("energy_kwh", "unmapped_energy_kwh"))
        if not total.empty
        else (0.0, 0.0)
    )
    # Per job: hourly rows (a job is an hourly key).
    jobs = _job_rows(
        read.sums(
            organisation_id=organisation_id,
            start=start,
            end=end,
            columns=["unmapped_energy_kwh"],
            by=["scheduler_job_id"],
            where=where,
        )
    )
    jobs = jobs[jobs["unmapped_energy_kwh"] > 0]
    per_job = dict(
        zip(jobs["scheduler_job_id"].tolist(), jobs["unmapped_energy_kwh"].tolist(), strict=True)
    )
    accounts: dict[str, float] = {}
    for job_pk, account in SchedulerJob.objects.filter(pk__in=list(per_job)).values_list(
        "pk", "account"
    ):
        accounts[account] = accounts.get(account, 0.0) + per_job[job_pk]
    return Unmapped(
        energy_kwh=unmapped_kwh,
        total_energy_kwh=total_kwh,
        accounts=sorted(accounts.items(), key=lambda a: (-a[1], a[0])),
    )


# How a pod's windows were split, as its SchedulerJob records them (ingest.scheduler's
# ``share_rule:<rule>`` attributes), in the words of the pods page; most specific first.
SHARE_RULE_PREFIX = "share_rule:"
SHARE_RULES = {
    "mig-slice": "MIG slice",
    "utilization": "utilization split",
    "equal": "equal split",
    "declared": "declared",
    "allocated-idle": "allocated, idle",
}


@dataclass(frozen=True, slots=True)
class PodUsage:
    """A Kubernetes pod over a range: the job's usage, its pod facts, GPUs and split rules."""

    usage: JobUsage
    namespace: str
    pod: str
    container: str
    gpus: int  # distinct GPUs whose energy the pod had a share of in the range
    scope2_location_kgco2e: float
    embodied_kgco2e: float
    share_rules: tuple[str, ...]  # keys of SHARE_RULES


def pods_usage(
    *,
    organisation_id: int,
    start: datetime,
    end: datetime,
    team_ids: Iterable[int] | None = None,
    namespace: str = "",
) -> list[PodUsage]:
    """Pods with windows in [start, end), in ``jobs_usage``'s order (most wasted GPU-hours
    first); ``namespace`` keeps one namespace's. Two small queries on top of ``jobs_usage``: the
    pods' facts and their per-pod device count and carbon split."""
    jobs = jobs_usage(
        organisation_id=organisation_id, start=start, end=end, team_ids=team_ids, kind="k8s"
    )
    if not jobs:
        return []
    pks = [j.job_pk for j in jobs]
    facts = dict(SchedulerJob.objects.filter(pk__in=pks).values_list("pk", "attributes").order_by())
    # Per pod and device: the pod's distinct devices are its groups, its sums their total.
    devices = read.sums(
        organisation_id=organisation_id,
        start=start,
        end=end,
        columns=["operational_location_kgco2e", "embodied_kgco2e"],
        by=["scheduler_job_id", "device_id"],
        where={"scheduler_job_id": pks},
    )
    sums: dict[int, dict[str, float]] = {}
    for job_pk, location, embodied in zip(
        devices["scheduler_job_id"].tolist(),
        devices["operational_location_kgco2e"].tolist(),
        devices["embodied_kgco2e"].tolist(),
        strict=True,
    ):
        row = sums.setdefault(int(job_pk), {"gpus": 0, "location": 0.0, "embodied": 0.0})
        row["gpus"] += 1
        row["location"] += location
        row["embodied"] += embodied
    out = []
    for job in jobs:
        attributes = facts.get(job.job_pk) or {}
        name_space, _, pod = job.job_id.partition("/")
        if namespace and name_space != namespace:
            continue
        row = sums.get(job.job_pk, {})
        out.append(
            PodUsage(
                usage=job,
                namespace=str(attributes.get("namespace") or name_space),
                pod=str(attributes.get("pod") or pod),
                container=str(attributes.get("container") or ""),
                gpus=int(row.get("gpus") or 0),
                scope2_location_kgco2e=row.get("location") or 0.0,
                embodied_kgco2e=row.get("embodied") or 0.0,
                share_rules=tuple(
                    rule for rule in SHARE_RULES if attributes.get(SHARE_RULE_PREFIX + rule)
                ),
            )
        )
    return out
