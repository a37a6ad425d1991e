"""Evaluation on a real Celery worker through real Redis and PostgreSQL: the rule fires, the group's
flush task runs when group_wait ends, its outbox row is dispatched after commit to the worker's
queue, and the webhook receives exactly one signed notification listing the whole group."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from testsupport.celery_workers import forget_queue, start_worker, stop
from testsupport.celery_workers import wait_for as wait_until

from greenkpi.alerts.channels import webhook
from greenkpi.alerts.models import AlertRule, Notification, RuleKind
from greenkpi.celery import app
from greenkpi.kpis.models import RecomputeRun

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]
REAL_DISPATCH = True  # the send task really goes through Redis (see conftest.dispatched)
ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 60


@pytest.fixture
def worker(tmp_path, redis_url):
    """A solo worker on a queue of this test's own, against the live test database."""
    process = start_worker(tmp_path, redis_url, f"alerts-test-{uuid.uuid4().hex[:12]}")
    yield process
    stop(process)
    forget_queue(redis_url, process.queue)


def wait_for(predicate, what: str, worker) -> None:
    wait_until(predicate, what, worker.log_path.parent)


def test_an_evaluation_on_a_real_worker_fires_and_the_webhook_gets_one_signed_notification(
    acme, rollups, receiver, worker
):
    for i in range(3):  # three collectors go silent together: one grouped message
        rollups.host(
            acme, f"gpu-{i}", team=acme.vision, last_seen=timezone.now() - timedelta(hours=1)
        )
    channel = receiver.channel(
        acme,
        # The group's first message waits group_wait: a flush task dispatched with that countdown
        # sends it, not the next evaluation (none comes in this test).
        group_wait_s=2,
    )
    rule = AlertRule.objects.create(
        organisation=acme, name="silent", kind=RuleKind.COLLECTOR_SILENT, silent_minutes=15, for_s=0
    )
    rule.channels.set([channel])

    app.send_task("greenkpi.alerts.tasks.evaluate_rules", queue=worker.queue)
    wait_for(
        lambda: Notification.objects.filter(status="sent").exists(), "the notification", worker
    )
    note = Notification.objects.get()
    assert note.payload["count"] == 3
    assert (note.created_at - rule.alerts.first().fired_at).total_seconds() >= 2  # group_wait
    assert len(receiver.requests) == 1
    _, headers, body = receiver.requests[0]
    assert headers["webhook-id"] == str(note.pk)
    assert webhook.verify(secret=channel.secret, headers=headers, body=body)
    assert [a.state for a in rule.alerts.all()] == ["firing"] * 3

    # A second evaluation and a sweep change nothing: still one notification, one request.
    app.send_task("greenkpi.alerts.tasks.evaluate_rules", queue=worker.queue)
    app.send_task("greenkpi.alerts.tasks.sweep_outbox", queue=worker.queue)
    wait_for(
        lambda: RecomputeRun.objects.filter(kind="alerts-evaluate", status="ok").count() == 2,
        "the second evaluation",
        worker,
    )
    time.sleep(1.0)
    assert Notification.objects.count() == 1
    assert len(receiver.requests) == 1
