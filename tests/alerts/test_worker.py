"""Evaluation on a real Celery worker through real Redis and PostgreSQL: the rule fires, the outbox
row is dispatched after commit to the worker's queue, and the webhook receives exactly one signed
notification."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from greenkpi.alerts.channels import webhook
from greenkpi.alerts.models import AlertRule, Channel, Notification, RuleKind, new_webhook_secret
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
def redis_url() -> str:
    assert connection.vendor == "postgresql", "this layer runs with DATABASE_URL=postgres://..."
    url = os.environ.get("REDIS_URL", "")
    assert url.startswith("redis"), "this layer runs with REDIS_URL=redis://..."
    return url


@pytest.fixture
def worker(tmp_path, redis_url):
    """A solo worker on a queue of this test's own, against the live test database."""
    import redis

    queue = f"alerts-test-{uuid.uuid4().hex[:12]}"
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": redis_url,
        "GREENKPI_VAR_DIR": str(tmp_path / "var"),
        "CELERY_TASK_ALWAYS_EAGER": "0",
    }
    log_path = tmp_path / "worker.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "greenkpi", "worker", "--pool=solo"),
                *("-Q", queue, "--loglevel=INFO", "--without-heartbeat", "--without-gossip"),
                "--without-mingle",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    process.queue, process.log_path = queue, log_path
    yield process
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    redis.Redis.from_url(redis_url).delete(queue)


def wait_for(predicate, what: str, worker) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}; worker log:\n{worker.log_path.read_text()[-3000:]}")


def test_an_evaluation_on_a_real_worker_fires_and_the_webhook_gets_one_signed_notification(
    acme, rollups, receiver, worker
):
    rollups.host(acme, "gpu-7", team=acme.vision, last_seen=timezone.now() - timedelta(hours=1))
    channel = Channel.objects.create(
        organisation=acme,
        name="hook",
        kind="webhook",
        url=receiver.url,
        secret=new_webhook_secret(),
        allow_private_network=True,  # the receiver is on loopback
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
    assert len(receiver.requests) == 1
    _, headers, body = receiver.requests[0]
    assert headers["webhook-id"] == str(note.pk)
    assert webhook.verify(secret=channel.secret, headers=headers, body=body)
    assert rule.alerts.get().state == "firing"

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
