"""A real Prometheus (Debian's `prometheus`) scrapes /metrics of a live gunicorn with 3 workers.

Batches go to gunicorn over HTTP (spread over its workers by the kernel), Prometheus scrapes every
second with the scrape token, and the test asks Prometheus' HTTP API for the series: the counters
must equal what was sent whichever worker answered each scrape (multiprocess mode; without it a
scrape sees one worker's share). A collector token on /metrics gets 403, and Prometheus with a
wrong token sees the target down.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from django.conf import settings
from django.db import connection
from testsupport.celery_workers import worker_env
from testsupport.gunicorn import free_port, running

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
TOKEN = "scrape-" + uuid.uuid4().hex
BATCHES = 12


def prometheus_binary() -> str:
    found = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if os.path.exists("/usr/bin/prometheus") else None
    )
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Debian's prometheus is missing: .ci/run installs it")
        pytest.skip("needs Debian's prometheus (apt-get install prometheus)")
    return found


@pytest.fixture
def gunicorn(transactional_db, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("gunicorn needs the live PostgreSQL test database (a skip fails CI)")
    env = worker_env(tmp_path, None)
    env.update(
        METRICS_TOKEN=TOKEN,
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom-multiproc"),  # this server's alone
        INGEST_RATE_PER_MINUTE="100000",
        SECRET_KEY=settings.SECRET_KEY,
    )
    with running(env, tmp_path / "gunicorn.log", workers=3) as server:
        yield server


@pytest.fixture
def prometheus(gunicorn, tmp_path):
    binary = prometheus_binary()
    port = free_port()
    target = f"127.0.0.1:{gunicorn.port}"
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n"
        "  - job_name: greenkpi\n    metrics_path: /metrics\n"
        f"    authorization:\n      credentials: {TOKEN}\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
        "  - job_name: greenkpi-wrong-token\n    metrics_path: /metrics\n"
        "    authorization:\n      credentials: not-the-token\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as answer:
                if answer.status == 200:
                    break
        except (urllib.error.URLError, ConnectionError):
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            log.close()
            pytest.fail(f"prometheus did not start:\n{(tmp_path / 'prometheus.log').read_text()}")
        time.sleep(0.2)
    process.url = url  # type: ignore[attr-defined]
    yield process
    process.terminate()
    process.wait(timeout=30)
    log.close()


def query(prometheus, expr: str) -> list[dict]:
    params = urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(f"{prometheus.url}/api/v1/query?{params}", timeout=5) as answer:
        body = json.loads(answer.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


def scalar(prometheus, expr: str) -> float | None:
    result = query(prometheus, expr)
    return float(result[0]["value"][1]) if result else None


def wait_for_value(prometheus, expr: str, expected: float, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = scalar(prometheus, expr)
        if seen == expected:
            return
        time.sleep(0.5)
    pytest.fail(f"{expr} = {seen}, expected {expected}")


def post(url: str, secret: str, body: dict) -> int:
    request = urllib.request.Request(
        f"{url}/api/v1/ingest/",
        data=orjson.dumps(body),
        headers={
            "Authorization": f"Bearer {secret}",
            "Content-Type": "application/json",
            "Idempotency-Key": str(uuid.uuid4()),
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def test_prometheus_scrapes_the_sum_of_every_worker(gunicorn, prometheus, acme_token, make_batch):
    _, secret = acme_token
    base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
    batches = [
        make_batch(devices=2, windows=2, start=base + timedelta(minutes=2 * i))
        for i in range(BATCHES)
    ]  # distinct windows: 4 new samples each
    statuses = [post(gunicorn.url, secret, batch) for batch in batches]
    bad = make_batch(devices=1, windows=1)
    bad["samples"][0]["energy_j"] = -5
    statuses.append(post(gunicorn.url, secret, bad))
    assert statuses == [201] * BATCHES + [400]

    # A collector token is not a scrape token.
    request = urllib.request.Request(
        f"{gunicorn.url}/metrics", headers={"Authorization": f"Bearer {secret}"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403

    job = 'job="greenkpi"'
    wait_for_value(prometheus, f"up{{{job}}}", 1)
    wait_for_value(prometheus, 'up{job="greenkpi-wrong-token"}', 0)
    # Sums over every worker's files: exact, whichever worker answered the scrape.
    wait_for_value(
        prometheus, f'greenkpi_ingest_samples_total{{{job},endpoint="batch"}}', BATCHES * 4
    )
    wait_for_value(
        prometheus,
        f'greenkpi_ingest_requests_total{{{job},endpoint="batch",status="201"}}',
        BATCHES,
    )
    wait_for_value(
        prometheus,
        f'greenkpi_ingest_rejects_total{{{job},endpoint="batch",reason="invalid-batch"}}',
        1,
    )
    sent = sum(len(orjson.dumps(b)) for b in batches) + len(orjson.dumps(bad))
    wait_for_value(prometheus, f'greenkpi_ingest_bytes_total{{{job},endpoint="batch"}}', sent)
    wait_for_value(
        prometheus,
        "sum(greenkpi_http_request_duration_seconds_count"
        f'{{{job},route="/api/v1/ingest/",method="POST",status="201"}})',
        BATCHES,
    )
    # Stable across scrapes: the lowest value of the last 5 s is the total, never one worker's.
    time.sleep(5)
    assert (
        scalar(
            prometheus,
            f'min_over_time(greenkpi_ingest_samples_total{{{job},endpoint="batch"}}[5s])',
        )
        == BATCHES * 4
    )

    # The gauges read at scrape time: windows waiting for the rollup, and their age.
    assert scalar(prometheus, f"greenkpi_rollup_dirty_windows{{{job}}}") >= 1
    assert scalar(prometheus, f"greenkpi_rollup_lag_seconds{{{job}}}") >= 0
    assert scalar(prometheus, f"greenkpi_collectors{{{job}}}") == 1
    assert scalar(prometheus, f"greenkpi_collectors_silent{{{job}}}") == 0
    assert scalar(prometheus, f'greenkpi_outbox_backlog{{{job},status="pending"}}') == 0
    assert scalar(prometheus, f'greenkpi_celery_queue_depth{{{job},queue="celery"}}') is not None
