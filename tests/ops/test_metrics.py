"""/metrics in process: who may scrape, and that ingest, latency and state figures move.

Counters are shared files (multiprocess mode) that outlive a test, so each test compares the
figures before and after what it does. The real Prometheus scraping gunicorn is test_prometheus.py.
"""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest
from django.test import override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from greenkpi.inventory.models import Host

pytestmark = pytest.mark.django_db
TOKEN = "scrape-secret-0123456789"


def scrape(client, **extra) -> dict[tuple[str, tuple], float]:
    with override_settings(METRICS_TOKEN=TOKEN, METRICS_ALLOW=[]):
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(figures, name: str, **labels) -> float:
    return figures.get((name, tuple(sorted(labels.items()))), 0.0)


class TestAccess:
    def test_off_by_default_a_403_naming_the_settings(self, client):
        response = client.get("/metrics")
        assert response.status_code == 403
        assert response["Content-Type"] == "application/problem+json"
        assert "METRICS_TOKEN" in response.json()["detail"]

    @override_settings(METRICS_TOKEN=TOKEN, METRICS_ALLOW=[])
    def test_the_scrape_token_opens_it_nothing_else_does(self, client, acme_token):
        _, collector_secret = acme_token
        assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
        missing = client.get("/metrics")
        assert missing.status_code == 401
        assert missing["WWW-Authenticate"].startswith("Bearer")
        wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
        assert wrong.status_code == 403
        collector = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {collector_secret}")
        assert collector.status_code == 403
        assert "not the scrape token" in collector.json()["detail"]

    @override_settings(METRICS_TOKEN="", METRICS_ALLOW=["10.0.0.7"])
    def test_an_allow_listed_address_needs_no_token_others_are_refused(self, client):
        assert client.get("/metrics", REMOTE_ADDR="10.0.0.7").status_code == 200
        assert client.get("/metrics", REMOTE_ADDR="10.0.0.8").status_code == 403

    def test_a_logged_in_admin_is_not_a_scraper(self, client, people):
        client.force_login(people["alice"])
        with override_settings(METRICS_TOKEN=TOKEN, METRICS_ALLOW=[]):
            assert client.get("/metrics").status_code == 401


@pytest.mark.django_db(transaction=True)
def test_ingest_counts_requests_samples_bytes_and_rejects(
    client, acme_token, post_batch, make_batch
):
    _, secret = acme_token
    before = scrape(client)
    batch = make_batch(devices=2, windows=3)
    ok = post_batch(secret, batch)
    assert ok.status_code == 201
    bad = make_batch(devices=1, windows=1)
    bad["samples"][0]["energy_j"] = -1
    assert post_batch(secret, bad).status_code == 400
    assert post_batch("gkc_wrong", batch).status_code == 401
    after = scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("greenkpi_ingest_requests_total", endpoint="batch", status="201") == 1
    assert delta("greenkpi_ingest_samples_total", endpoint="batch") == 6
    assert delta("greenkpi_ingest_rejects_total", endpoint="batch", reason="invalid-batch") == 1
    assert (
        delta("greenkpi_ingest_rejects_total", endpoint="batch", reason="authentication-failed")
        == 1
    )
    # Every body counts as sent, the refused ones too (the 401 by its Content-Length).
    sent = 2 * len(orjson.dumps(batch)) + len(orjson.dumps(bad))
    assert delta("greenkpi_ingest_bytes_total", endpoint="batch") == sent
    latency = delta(
        "greenkpi_http_request_duration_seconds_count",
        route="/api/v1/ingest/",
        method="POST",
        status="201",
    )
    assert latency == 1


def test_state_gauges_read_the_database(client, acme, acme_token, post_batch, make_batch):
    Host.objects.create(
        organisation=acme, hostname="quiet", last_seen=timezone.now() - timedelta(hours=2)
    )
    Host.objects.create(organisation=acme, hostname="fresh", last_seen=timezone.now())
    _, secret = acme_token
    assert post_batch(secret, make_batch(devices=1, windows=2)).status_code == 201
    figures = scrape(client)
    assert value(figures, "greenkpi_collectors_silent") == 1
    assert value(figures, "greenkpi_collectors") == 3  # the batch's host reported just now
    assert value(figures, "greenkpi_rollup_dirty_windows") >= 1
    assert value(figures, "greenkpi_rollup_lag_seconds") >= 0
    assert ("greenkpi_outbox_backlog", (("status", "pending"),)) in figures
    assert ("greenkpi_celery_queue_depth", (("queue", "celery"),)) in figures


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_celery_worker_counts_its_tasks_and_their_last_success(client, tmp_path, redis_url):
    """The worker inherits PROMETHEUS_MULTIPROC_DIR (settings put it in the environment), so its
    counters land beside this process's; its last success goes through the shared Redis cache."""
    import time
    import uuid

    from testsupport.celery_workers import forget_queue, start_worker, stop, wait_for

    from greenkpi.celery import app

    task = "greenkpi.alerts.tasks.sweep_outbox"
    before = scrape(client)
    started = time.time()
    worker = start_worker(tmp_path, redis_url, f"metrics-test-{uuid.uuid4().hex[:12]}")
    try:
        app.send_task(task, queue=worker.queue)

        def counted() -> bool:
            figures = scrape(client)
            runs = value(figures, "greenkpi_celery_tasks_total", task=task, state="success")
            return (
                runs - value(before, "greenkpi_celery_tasks_total", task=task, state="success") == 1
            )

        wait_for(counted, "the worker's task count in /metrics", tmp_path)
    finally:
        stop(worker)
        forget_queue(redis_url, worker.queue)
    figures = scrape(client)
    last = value(figures, "greenkpi_periodic_last_success_timestamp_seconds", task=task)
    assert started <= last <= time.time()
    assert value(figures, "greenkpi_celery_task_duration_seconds_count", task=task) >= 1
