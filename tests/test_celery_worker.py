"""Real Celery workers: on Redis (production) and on the file-system broker (make demo, no server)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from testsupport.celery_workers import start_worker, stop, wait_for, worker_env

from greenkpi.ingest.models import IngestBatch

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parent.parent


def send_task(env: dict[str, str], name: str) -> None:
    """Send from a separate process with the worker's settings (as beat or a web process would)."""
    code = (
        f"import django; django.setup(); from greenkpi.celery import app; app.send_task({name!r})"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "greenkpi.settings"},
        check=True,
        timeout=60,
    )


def stale_batch(acme_token, post_batch, make_batch) -> int:
    _, secret = acme_token
    assert post_batch(secret, make_batch(windows=1), key="old-key").status_code == 201
    IngestBatch.objects.update(received_at=datetime.now(UTC) - timedelta(days=30))
    return IngestBatch.objects.get().pk


@pytest.mark.redis
def test_a_task_runs_on_a_real_worker_through_redis(
    tmp_path, redis_url, acme_token, post_batch, make_batch
):
    batch_id = stale_batch(acme_token, post_batch, make_batch)
    broker = redis_url.rsplit("/", 1)[0] + "/7"
    env = worker_env(tmp_path, broker)
    worker = start_worker(tmp_path, broker)
    try:
        send_task(env, "greenkpi.ingest.tasks.expire_idempotency_keys")
        wait_for(
            lambda: IngestBatch.objects.get(pk=batch_id).idempotency_key.startswith("expired:"),
            "the worker to expire the key",
            tmp_path,
        )
    finally:
        stop(worker)


def test_the_demo_broker_needs_no_server(tmp_path, acme_token, post_batch, make_batch):
    """No REDIS_URL: messages travel as files under var/, and a real worker still runs them."""
    batch_id = stale_batch(acme_token, post_batch, make_batch)
    env = worker_env(tmp_path, None)
    worker = start_worker(tmp_path, None)
    try:
        send_task(env, "greenkpi.ingest.tasks.expire_idempotency_keys")
        wait_for(
            lambda: IngestBatch.objects.get(pk=batch_id).idempotency_key.startswith("expired:"),
            "the worker to expire the key",
            tmp_path,
        )
    finally:
        stop(worker)
    assert orjson.loads(orjson.dumps(IngestBatch.objects.get(pk=batch_id).response)) == {}
