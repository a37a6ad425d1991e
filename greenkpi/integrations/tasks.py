"""Celery tasks of the integrations: the MLflow write-back (thin, idempotent, acks_late)."""

from __future__ import annotations

from celery import Task, shared_task

from greenkpi.integrations import mlflow_outbox
from greenkpi.lib.retry import bounded_countdown, retrying_task

_RETRY = retrying_task(bind=True)
# The row keeps its own backoff (next_attempt_at); the task follows it a bounded number of times,
# and the periodic sweep picks up whatever is left.
SEND_RETRIES = 10


@shared_task(**_RETRY)
def send_mlflow_export(self: Task, export_id: int) -> str:
    result = mlflow_outbox.export_send(export_id=export_id)
    if result.status in ("retry", "waiting") and self.request.retries < SEND_RETRIES:
        raise self.retry(countdown=bounded_countdown(result.retry_in_s), max_retries=SEND_RETRIES)
    return result.status


@shared_task(**_RETRY)
def sweep_mlflow_exports(self: Task) -> int:
    """Periodic: rows for runs that closed by themselves, and rows a lost message left."""
    return mlflow_outbox.exports_sweep()
