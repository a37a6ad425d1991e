"""Celery tasks of the registry: thin, idempotent (a recompute replaces what it writes), acks_late."""

from __future__ import annotations

from celery import shared_task

from greenkpi.kpis.services import TRANSIENT_ERRORS
from greenkpi.workloads import retraining, scheduler_runs


@shared_task(
    acks_late=True,
    ignore_result=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=5,
)
def recompute_retraining(organisation_id: int | None = None) -> int:
    """Periodic: retraining need and retrain efficiency of every model; returns the run id."""
    return retraining.models_recompute(organisation_id=organisation_id).pk


@shared_task(
    acks_late=True,
    ignore_result=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=5,
)
def sync_scheduler_runs(limit: int = 500) -> int:
    """Periodic: the runs of Slurm jobs follow their jobs and rollups; returns runs written."""
    return scheduler_runs.scheduler_runs_sync(limit=limit)
