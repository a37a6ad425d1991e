"""Scheduler jobs become runs by themselves: one ``Run`` per Slurm job (key ``slurm:<cluster>:<id>``).

Ingest stores the jobs (``ingest.SchedulerJob``) and clears ``runs_synced_at`` whenever a batch
mentions one; a mapping change clears it too (kpis.attribution). ``scheduler_runs_sync`` then makes
each due job's run agree with it: opened with the job's start, closed with its end, under the
model of the team and model key its rollups carry (where most of its energy went: the mappings'
answer, or an explicit ``GREENKPI_TEAM`` / ``GREENKPI_MODEL``), of the kind a mapping gives
(``training`` otherwise), linked to MLflow when a share was tagged ``mlflow_run_id``.

A job whose windows are still dirty waits (its rollups are not final, so neither is its owner);
a job with no rollup yet waits too. A multi-node, multi-GPU job is one run: its energy is every
rollup row carrying its key, and the run page breaks it down per host and device.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from greenkpi.ingest.models import SchedulerJob
from greenkpi.inventory.attribution import resolve, rules_from
from greenkpi.inventory.mappings import mappings_rows
from greenkpi.inventory.models import Team
from greenkpi.kpis.attribution import identity_of
from greenkpi.kpis.models import RollupWindow
from greenkpi.kpis.read import sums as read
from greenkpi.lib.periods import hour_floor
from greenkpi.workloads.models import MLModel, Run, RunKind, RunStatus

# The model a team's jobs hang under when no mapping (and no GREENKPI_MODEL) names one.
UNMAPPED_MODEL_KEY = "slurm-jobs"
UNMAPPED_MODEL_NAME = "Slurm jobs without a model mapping"


def _dirty(job: dict) -> bool:
    start = hour_floor(job["first_window"])
    return (
        RollupWindow.objects.filter(
            organisation_id=job["organisation_id"],
            hour__gte=start,
            hour__lte=job["last_window"],
        )
        .filter(version__gt=F("computed_version"))
        .exists()
    )


def scheduler_runs_sync(
    *, organisation_id: int | None = None, now: datetime | None = None, limit: int = 500
) -> int:
    """Open, move or close the runs of due scheduler jobs; returns how many runs it wrote."""
    now = now or timezone.now()
    due = SchedulerJob.objects.filter(runs_synced_at__isnull=True).order_by("last_seen")
    if organisation_id is not None:
        due = due.filter(organisation_id=organisation_id)
    jobs = list(
        due.values(
            "id",
            "organisation_id",
            "kind",
            "cluster",
            "job_id",
            "run_key",
            "user",
            "account",
            "job_name",
            "comment",
            "started_at",
            "ended_at",
            "attributes",
            "first_window",
            "last_window",
            "last_seen",
        )[:limit]
    )
    rules_by_org: dict[int, list] = {}
    written = 0
    for job in jobs:
        if _dirty(job):
            continue
        # The owner: the (team, model) with most of the job's energy over its whole life.
        owners = read.sums(
            organisation_id=job["organisation_id"],
            start=read.BEGINNING,
            end=hour_floor(now) + timedelta(days=1),
            columns=["energy_kwh"],
            by=["team_id", "model_key"],
            where={"run_key": [job["run_key"]]},
        )
        if owners.empty:
            continue
        top = owners.sort_values(
            ["energy_kwh", "team_id", "model_key"],
            ascending=[False, True, True],
            kind="stable",
            na_position="last",
        )
        if pd.isna(top["team_id"].iloc[0]):  # most of it went to no team: nothing to hang it on
            continue
        org = job["organisation_id"]
        if org not in rules_by_org:
            rules_by_org[org] = rules_from(mappings_rows(organisation_id=org))
        kind = resolve(identity_of(job), rules_by_org[org]).run_kind or RunKind.TRAINING
        with transaction.atomic():
            _run_write(job, int(top["team_id"].iloc[0]), str(top["model_key"].iloc[0]), kind, now)
            # Only if no batch touched the job since we read it (ingest clears the mark again).
            SchedulerJob.objects.filter(pk=job["id"], last_seen__lte=job["last_seen"]).update(
                runs_synced_at=now
            )
        written += 1
    return written


def _run_write(job: dict, team_id: int, model_key: str, kind: str, now: datetime) -> Run:
    team = Team.objects.get(pk=team_id)
    model, _ = MLModel.objects.get_or_create(
        team=team,
        key=model_key or UNMAPPED_MODEL_KEY,
        defaults={"name": "" if model_key else UNMAPPED_MODEL_NAME},
    )
    ended = job["ended_at"] is not None and job["ended_at"] <= now
    started = job["started_at"] or job["first_window"]
    fields = {
        "model": model,
        "kind": kind,
        "started_at": started,
        "ended_at": job["ended_at"] if ended else None,
        # The payload says when a job ended, not how: an ended job's run counts as succeeded.
        "status": RunStatus.SUCCEEDED if ended else RunStatus.RUNNING,
        "mlflow_run_id": (job["attributes"] or {}).get("mlflow_run_id", ""),
    }
    run = (
        Run.objects.select_for_update()
        .filter(model__team__organisation_id=job["organisation_id"], key=job["run_key"])
        .first()
    )
    if run is None:
        return Run.objects.create(key=job["run_key"], recurrence="", **fields)
    for name, value in fields.items():
        if name == "mlflow_run_id" and not value:
            continue
        setattr(run, name, value)
    run.save()
    return run


def jobs_due(*, organisation_id: int) -> int:
    """How many jobs wait for their run (for the Slurm page's status line)."""
    return SchedulerJob.objects.filter(
        organisation_id=organisation_id, runs_synced_at__isnull=True
    ).count()
