"""Celery tasks of the dashboard: thin and idempotent (filling a read cache)."""

from __future__ import annotations

from celery import shared_task

from greenkpi.dashboard import selectors_carbon_days
from greenkpi.kpis.services import TRANSIENT_ERRORS


@shared_task(
    acks_late=True,
    ignore_result=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=5,
    retry_backoff_max=300,
    max_retries=3,
)
def warm_carbon_days() -> int:
    """Periodic: cache the recent whole days the carbon pages and the report read
    (selectors_carbon_days); returns the organisations visited."""
    return selectors_carbon_days.warm()
