"""Celery task of the recommendations: thin and idempotent (a recompute replaces its findings)."""

from __future__ import annotations

from celery import shared_task

from greenkpi.lib.retry import retrying_task
from greenkpi.recommendations import services


@shared_task(**retrying_task())
def recompute_recommendations() -> int:
    """Periodic: findings and the savings ledger of every organisation; returns the run id."""
    return services.recompute_all().pk
