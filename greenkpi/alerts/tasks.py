"""Celery tasks of the alerts app: thin, idempotent, acks_late.

Database hiccups are retried with backoff (autoretry); a transient delivery error is retried after
the row's own backoff (``next_attempt_at``), permanent ones are recorded on the row. Work a task
dispatches goes to the queue the task itself came from, so a dedicated alerts queue keeps it all.
"""

from __future__ import annotations

from celery import Task, shared_task
from django.utils import timezone

from greenkpi.alerts import digest, evaluation, grouping, outbox, system
from greenkpi.lib.retry import bounded_countdown, retrying_task

_RETRY = retrying_task(bind=True)
# Delivery retries stay far below the broker's visibility timeout (2 h): the longest backoff is 1 h.
DELIVERY_RETRIES = 10


def _queue(task: Task) -> str | None:
    info = task.request.delivery_info or {}
    return info.get("routing_key") or None


@shared_task(**_RETRY)
def evaluate_rules(self: Task) -> int:
    """Periodic: evaluate every enabled rule, then the system checks (told once per episode);
    returns the RecomputeRun id."""
    run = evaluation.rules_evaluate(queue=_queue(self))
    system.raw_storage_alerts(queue=_queue(self))
    return run.pk


@shared_task(**_RETRY)
def send_notification(self: Task, notification_id: str) -> str:
    """Send one outbox row (claimed, so a duplicate message sends nothing)."""
    result = outbox.notification_send(notification_id=notification_id)
    if result.status == "retry" and self.request.retries < DELIVERY_RETRIES:
        raise self.retry(
            countdown=bounded_countdown(result.retry_in_s), max_retries=DELIVERY_RETRIES
        )
    return result.status


@shared_task(**_RETRY)
def sweep_outbox(self: Task) -> int:
    """Periodic: re-dispatch rows a lost broker message left unsent; returns how many."""
    return outbox.notifications_sweep(queue=_queue(self))


@shared_task(**_RETRY)
def flush_alert_group(self: Task, group_id: int) -> int:
    """Dispatched with a countdown of group_wait when a group is born: its first message goes
    out then rather than at the next evaluation tick. Idempotent (the group row is locked and
    compared with what it last told); returns the notifications written."""
    return grouping.groups_flush(now=timezone.now(), group_ids=[group_id], queue=_queue(self))


@shared_task(**_RETRY)
def send_daily_digests(self: Task) -> int:
    """Hourly: one digest per recipient about yesterday, in each organisation's local morning; a
    second run the same day writes nothing (dedup per organisation, day and address). Returns the
    rows written."""
    return digest.digests_send(queue=_queue(self))
