"""Celery tasks of the KPI engine: thin, idempotent (a recompute replaces its window), acks_late.

Only transient database errors are retried, with exponential backoff; anything else is recorded on
the window or run (see services) instead of being retried blindly.
"""

from __future__ import annotations

from datetime import datetime

from celery import shared_task

from greenkpi.kpis import services
from greenkpi.lib.retry import retrying_task

_RETRY = retrying_task()


@shared_task(**_RETRY)
def recompute_dirty_windows(limit: int = 500, lease_s: float = services.DEFAULT_LEASE_S) -> int:
    """Periodic: recompute up to ``limit`` dirty windows; returns the RecomputeRun id."""
    return services.windows_recompute_dirty(limit=limit, lease_s=lease_s).pk


@shared_task(**_RETRY)
def recompute_window(
    organisation_id: int, hour: str, lease_s: float = services.DEFAULT_LEASE_S
) -> str:
    """Recompute one (organisation, ISO hour) window; returns done / busy / failed."""
    run = services.windows_recompute(
        windows=[(organisation_id, datetime.fromisoformat(hour))], kind="window", lease_s=lease_s
    )
    return run.status


@shared_task(**_RETRY)
def maintain_raw_storage() -> int:
    """Periodic: day partitions ahead, raw days past retention dropped; returns the run id."""
    from greenkpi.kpis.raw_storage import raw_storage_maintain

    return raw_storage_maintain().pk
