"""The Slurm jobs report: what the "Slurm jobs" page shows and ``/api/v1/slurm/jobs/`` answers,
from one read (``kpis.scheduler``), so the two can never disagree. Scoped: a person sees the jobs
whose energy went to teams they may see, and the unmapped energy of those teams."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from greenkpi.kpis import scheduler as jobs_read

JOB_FIELDS = (
    "run_key",
    "cluster",
    "job_id",
    "user",
    "account",
    "partition",
    "job_name",
    "model_key",
    "started_at",
    "ended_at",
    "energy_kwh",
    "kgco2e",
    "gpu_h",
    "wasted_gpu_h",
    "wasted_energy_kwh",
    "wasted_kgco2e",
    "unmapped_energy_kwh",
)
GROUP_FIELDS = ("jobs", "energy_kwh", "wasted_gpu_h", "wasted_energy_kwh", "wasted_kgco2e")


def jobs_report(
    *,
    organisation_id: int,
    teams: Mapping[int, str],
    start: datetime,
    end: datetime,
    account: str = "",
    user: str = "",
) -> dict[str, Any]:
    """Jobs of [start, end) by wasted GPU-hours, waste per account / user / team, unmapped
    energy; ``teams`` are the visible teams (id -> slug) of the person asking."""
    jobs = jobs_read.jobs_usage(
        organisation_id=organisation_id,
        start=start,
        end=end,
        team_ids=teams.keys(),
        account=account,
        user=user,
        kind="slurm",  # Kubernetes pods are scheduler jobs too (issue 13), not on this report
    )
    slugs = teams
    gap = jobs_read.unmapped(
        organisation_id=organisation_id, start=start, end=end, team_ids=teams.keys()
    )

    def groups(by: str) -> list[dict[str, Any]]:
        return [
            {
                "key": slugs.get(g.key) if by == "team_id" else g.key,  # type: ignore[arg-type]
                **{f: getattr(g, f) for f in GROUP_FIELDS},
            }
            for g in jobs_read.waste_by(jobs, by=by)
        ]

    return {
        "from": start,
        "to": end,
        "account": account,
        "user": user,
        "jobs": [
            {**{f: getattr(j, f) for f in JOB_FIELDS}, "team": slugs.get(j.team_id)} for j in jobs
        ],
        "by_account": groups("account"),
        "by_user": groups("user"),
        "by_team": groups("team_id"),
        "unmapped": {
            "energy_kwh": gap.energy_kwh,
            "total_energy_kwh": gap.total_energy_kwh,
            "share": gap.share,
            "accounts": [{"account": a, "energy_kwh": kwh} for a, kwh in gap.accounts],
        },
    }


POD_FIELDS = (
    "run_key",
    "cluster",
    "model_key",
    "started_at",
    "ended_at",
    "energy_kwh",
    "kgco2e",
    "gpu_h",
    "wasted_gpu_h",
    "wasted_energy_kwh",
    "wasted_kgco2e",
    "unmapped_energy_kwh",
)


def pods_report(
    *,
    organisation_id: int,
    teams: Mapping[int, str],
    start: datetime,
    end: datetime,
    namespace: str = "",
) -> dict[str, Any]:
    """Kubernetes pods of [start, end) by wasted GPU-hours, with waste per namespace and team:
    what the "Kubernetes pods" page shows and ``/api/v1/k8s/pods/`` answers (one read,
    ``kpis.scheduler.pods_usage``). ``teams``: the visible teams (id -> slug) of the person."""
    pods = jobs_read.pods_usage(
        organisation_id=organisation_id,
        start=start,
        end=end,
        team_ids=teams.keys(),
        namespace=namespace,
    )
    jobs = [p.usage for p in pods]

    def groups(by: str) -> list[dict[str, Any]]:
        return [
            {
                "key": teams.get(g.key) if by == "team_id" else g.key,
                **{f: getattr(g, f) for f in GROUP_FIELDS},
            }  # type: ignore[arg-type]
            for g in jobs_read.waste_by(jobs, by=by)
        ]

    return {
        "from": start,
        "to": end,
        "namespace": namespace,
        "pods": [
            {
                "namespace": p.namespace,
                "pod": p.pod,
                "container": p.container,
                "team": teams.get(p.usage.team_id),  # type: ignore[arg-type]
                **{f: getattr(p.usage, f) for f in POD_FIELDS},
                "gpus": p.gpus,
                "scope2_location_kgco2e": p.scope2_location_kgco2e,
                "embodied_kgco2e": p.embodied_kgco2e,
                "share_rules": list(p.share_rules),
                "share_rule_names": [jobs_read.SHARE_RULES[r] for r in p.share_rules],
            }
            for p in pods
        ],
        "by_namespace": groups("namespace"),
        "by_team": groups("team_id"),
    }
