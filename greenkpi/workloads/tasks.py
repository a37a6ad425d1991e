"""Celery tasks of the registry: thin, idempotent (a recompute replaces what it writes), acks_late."""

from __future__ import annotations

from celery import shared_task

from greenkpi.lib.retry import retrying_task
from greenkpi.workloads import retraining, scheduler_runs


@shared_task(**retrying_task())
def recompute_retraining(organisation_id: int | None = None) -> int:
    """Periodic: retraining need and retrain efficiency of every model; returns the run id."""
    return retraining.models_recompute(organisation_id=organisation_id).pk


@shared_task(**retrying_task())
def sync_scheduler_runs(limit: int = 500) -> int:
    """Periodic: the runs of Slurm jobs follow their jobs and rollups; returns runs written."""
    return scheduler_runs.scheduler_runs_sync(limit=limit)
