"""Real Celery worker processes for tests: one home for starting, stopping and waiting on them.

A worker runs as a subprocess against the *live test database* (pytest-django's), on Redis when a
URL is given or on the file-system broker otherwise, optionally on a queue of the test's own so no
other worker takes its tasks. Tests wait on observable database state with a deadline.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 60.0


def live_database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def worker_env(tmp_path: Path, redis_url: str | None) -> dict[str, str]:
    """The environment of a worker (or of a process sending to it): no REDIS_URL = file broker."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(
        DATABASE_URL=live_database_url(),
        GREENKPI_VAR_DIR=str(tmp_path / "var"),
        CELERY_TASK_ALWAYS_EAGER="0",
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def start_worker(
    tmp_path: Path,
    redis_url: str | None,
    queue: str | None = None,
    name: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen:
    """A solo worker; its log is tmp_path/worker[-queue][-name].log. Several workers on one queue
    each need a ``name`` (their Celery node name and log); ``env`` adds to their environment."""
    suffix = "".join(f"-{part}" for part in (queue, name) if part)
    log_path = tmp_path / f"worker{suffix}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "greenkpi", "worker", "--pool=solo"),
                *(("-Q", queue) if queue else ()),
                *(("-n", f"{name}@%h") if name else ()),
                *("--loglevel=INFO", "--without-heartbeat", "--without-gossip", "--without-mingle"),
            ],
            cwd=ROOT,
            env={**worker_env(tmp_path, redis_url), **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    process.queue, process.log_path = queue, log_path  # type: ignore[attr-defined]
    return process


def start_beat(
    tmp_path: Path,
    redis_url: str,
    name: str,
    queue: str,
    lease_s: float,
    env: dict[str, str] | None = None,
) -> subprocess.Popen:
    """A real `celery beat` with the production scheduler class (greenkpi/beat.py) and the
    shortened schedule of testsupport/beat_app.py (recompute, evaluate, sweep every second) on the
    test's queue and lease key; its log is tmp_path/beat-<name>.log."""
    beat_env = {**worker_env(tmp_path, redis_url), **(env or {})}
    beat_env.update(
        TEST_BEAT_QUEUE=queue,
        BEAT_LEASE_S=str(lease_s),
        BEAT_LEASE_KEY=f"greenkpi-test:{queue}",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "tests"), beat_env.get("PYTHONPATH")])),
    )
    log_path = tmp_path / f"beat-{name}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "testsupport.beat_app", "beat"),
                *("--loglevel=INFO", "-s", str(tmp_path / f"beat-{name}-schedule")),
            ],
            cwd=ROOT,
            env=beat_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    process.log_path = log_path  # type: ignore[attr-defined]
    return process


def stop(worker: subprocess.Popen) -> None:
    """SIGTERM (a warm shutdown), then SIGKILL if it does not stop in time."""
    if worker.poll() is None:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)


def wait_for(
    predicate: Callable[[], object], what: str, tmp_path: Path, timeout: float = DEADLINE_S
) -> None:
    """Poll until the predicate holds; on timeout fail with the workers' logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    logs = "\n".join(p.read_text()[-2000:] for p in sorted(tmp_path.glob("worker*.log")))
    pytest.fail(f"timed out waiting for {what}; worker logs:\n{logs}")


def forget_queue(redis_url: str, queue: str) -> None:
    """Drop a test's queue and any message a killed worker left unacknowledged on it."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.delete(queue)
    for tag, raw in client.hgetall("unacked").items():
        try:
            message = orjson.loads(raw)[0]
        except (orjson.JSONDecodeError, IndexError, TypeError):
            continue
        if message.get("properties", {}).get("delivery_info", {}).get("routing_key") == queue:
            client.hdel("unacked", tag)
            client.zrem("unacked_index", tag)
