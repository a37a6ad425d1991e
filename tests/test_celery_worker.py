"""Real Celery workers: on Redis (production) and on the file-system broker (make demo, no server)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from django.db import connection

from greenkpi.ingest.models import IngestBatch

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parent.parent


def worker_env(tmp_path: Path, redis_url: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("REDIS_URL", None)
    db = connection.settings_dict
    env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env["GREENKPI_VAR_DIR"] = str(tmp_path / "var")
    env["CELERY_TASK_ALWAYS_EAGER"] = "0"
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def start_worker(env: dict[str, str], tmp_path: Path) -> subprocess.Popen:
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "greenkpi",
            "worker",
            "--pool=solo",
            "--loglevel=INFO",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


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


def wait_for(predicate, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}; worker log:\n{log.read_text()[-3000:]}")


def stale_batch(acme_token, post_batch, make_batch) -> int:
    _, secret = acme_token
    assert post_batch(secret, make_batch(windows=1), key="old-key").status_code == 201
    IngestBatch.objects.update(received_at=datetime.now(UTC) - timedelta(days=30))
    return IngestBatch.objects.get().pk


@pytest.mark.redis
def test_a_task_runs_on_a_real_worker_through_redis(tmp_path, acme_token, post_batch, make_batch):
    redis_url = os.environ.get("REDIS_URL")
    assert redis_url, "this layer runs with REDIS_URL=redis://..."
    batch_id = stale_batch(acme_token, post_batch, make_batch)
    env = worker_env(tmp_path, redis_url.rsplit("/", 1)[0] + "/7")
    worker = start_worker(env, tmp_path)
    try:
        send_task(env, "greenkpi.ingest.tasks.expire_idempotency_keys")
        wait_for(
            lambda: IngestBatch.objects.get(pk=batch_id).idempotency_key.startswith("expired:"),
            60,
            "the worker to expire the key",
            tmp_path / "worker.log",
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)


def test_the_demo_broker_needs_no_server(tmp_path, acme_token, post_batch, make_batch):
    """No REDIS_URL: messages travel as files under var/, and a real worker still runs them."""
    batch_id = stale_batch(acme_token, post_batch, make_batch)
    env = worker_env(tmp_path, None)
    worker = start_worker(env, tmp_path)
    try:
        send_task(env, "greenkpi.ingest.tasks.expire_idempotency_keys")
        wait_for(
            lambda: IngestBatch.objects.get(pk=batch_id).idempotency_key.startswith("expired:"),
            60,
            "the worker to expire the key",
            tmp_path / "worker.log",
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert orjson.loads(orjson.dumps(IngestBatch.objects.get(pk=batch_id).response)) == {}
