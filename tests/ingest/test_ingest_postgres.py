"""What only a real PostgreSQL can show: COPY, concurrent replays, commit-before-2xx."""

from __future__ import annotations

import re
import threading
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from django.db import connection, connections
from django.test import Client

from greenkpi.ingest.models import IngestBatch, Sample, SampleShare
from greenkpi.inventory.models import Device, Host

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _require_postgres():
    assert connection.vendor == "postgresql", "this layer runs with DATABASE_URL=postgres://..."


def post(secret: str, body: bytes, key: str):
    response = Client().post(
        "/api/v1/ingest/",
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
        HTTP_IDEMPOTENCY_KEY=key,
    )
    connections.close_all()  # each thread has its own connection; leave none open
    return response


def run_concurrently(count: int, target) -> list:
    results: list = [None] * count
    barrier = threading.Barrier(count)

    def worker(i: int) -> None:
        barrier.wait()
        results[i] = target(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    return results


def test_concurrent_replays_of_one_key_write_once_and_all_get_the_same_answer(
    acme_token, make_batch
):
    _, secret = acme_token
    body = orjson.dumps(
        make_batch(
            devices=4,
            windows=50,
            # minute-aligned windows never straddle an hour (one row per window)
            start=datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2),
            shares=[{"energy_j": 12000.0, "team": "vision"}],
        )
    )
    responses = run_concurrently(8, lambda i: post(secret, body, "the-key"))
    assert [r.status_code for r in responses] == [201] * 8
    answers = {orjson.dumps(r.json(), option=orjson.OPT_SORT_KEYS) for r in responses}
    assert len(answers) == 1
    assert sum(1 for r in responses if "Idempotent-Replayed" not in r) == 1
    assert Sample.objects.count() == 200
    assert SampleShare.objects.count() == 200
    assert IngestBatch.objects.count() == 1


def test_concurrent_overlapping_batches_under_different_keys_store_each_window_once(
    acme_token, make_batch
):
    _, secret = acme_token
    from datetime import UTC, datetime, timedelta

    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3)
    body = orjson.dumps(make_batch(devices=2, windows=100, start=start))
    responses = run_concurrently(6, lambda i: post(secret, body, f"key-{i}"))
    assert [r.status_code for r in responses] == [201] * 6
    assert sum(r.json()["accepted"] for r in responses) == 200
    assert sum(r.json()["duplicates"] for r in responses) == 5 * 200
    assert Sample.objects.count() == 200
    assert Host.objects.count() == 1
    assert Device.objects.count() == 2


def test_a_new_host_posting_concurrently_is_registered_once(acme_token, make_batch):
    from datetime import UTC, datetime, timedelta

    _, secret = acme_token
    base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
    bodies = [
        orjson.dumps(make_batch(hostname="fresh", start=base + timedelta(minutes=10 * i)))
        for i in range(5)
    ]
    responses = run_concurrently(5, lambda i: post(secret, bodies[i], str(uuid.uuid4())))
    assert [r.status_code for r in responses] == [201] * 5
    assert Host.objects.filter(hostname="fresh").count() == 1
    assert Sample.objects.count() == 30


def test_a_failure_mid_batch_leaves_nothing_behind(acme_token, make_batch, monkeypatch):
    """Samples (shares on their rows) are COPYed, then marking their hours dirty fails in the
    database, in the query string that also records the answer and commits: no host, device,
    batch, sample or share."""
    from greenkpi.kpis import dirty

    _, secret = acme_token
    real_statement = dirty.mark_dirty_statement

    def failing_statement(**kwargs):
        assert Sample.objects.count() == 6  # the COPY went through, in the transaction
        return "SELECT 1 / 0", [], 1  # the upsert fails (division by zero, injected)

    monkeypatch.setattr(dirty, "mark_dirty_statement", failing_statement)
    body = orjson.dumps(make_batch(shares=[{"energy_j": 12000.0, "team": "vision"}]))
    client = Client(raise_request_exception=False)
    response = client.post(
        "/api/v1/ingest/",
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
        HTTP_IDEMPOTENCY_KEY="k",
    )
    assert response.status_code == 500
    assert (Host.objects.count(), Device.objects.count(), IngestBatch.objects.count()) == (0, 0, 0)
    assert (Sample.objects.count(), SampleShare.objects.count()) == (0, 0)
    # The collector retries the same batch: it is stored whole.
    monkeypatch.setattr(dirty, "mark_dirty_statement", real_statement)
    assert post(secret, body, "k").status_code == 201
    assert (Sample.objects.count(), SampleShare.objects.count()) == (6, 6)


def test_the_duplicate_fallback_keeps_shares_of_new_windows_only(acme_token, make_batch):
    from datetime import datetime

    _, secret = acme_token
    shares = [
        {"energy_j": 8000.0, "team": "vision", "run": "a"},
        {"energy_j": 4000.0, "team": "nlp", "run": "b"},
    ]
    first = make_batch(devices=1, windows=2, shares=shares)
    post(secret, orjson.dumps(first), "1")
    overlap = make_batch(
        devices=1,
        windows=3,
        start=datetime.fromisoformat(first["samples"][0]["start"]),
        shares=shares,
    )
    response = post(secret, orjson.dumps(overlap), "2")
    assert (response.json()["accepted"], response.json()["duplicates"]) == (1, 2)
    assert SampleShare.objects.count() == 6
    assert Sample.objects.filter(batch_id=response.json()["batch_id"]).count() == 1


def test_the_sample_table_has_the_brin_index_for_time_ranges():
    with connection.cursor() as cur:
        cur.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'ingest_sample'")
        definitions = " ".join(row[0] for row in cur.fetchall())
    assert "USING brin (window_start)" in definitions


def test_the_sample_primary_key_carries_what_the_host_chart_reads():
    # Migration 0004: the key is still (device_id, window_start) (ON CONFLICT and dedup use it),
    # with the chart's columns as INCLUDE payload so its series is an index-only scan.
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT pg_get_indexdef(i.indexrelid), i.indnkeyatts
            FROM pg_index i JOIN pg_constraint c ON c.conindid = i.indexrelid
            WHERE c.conrelid = 'ingest_sample'::regclass AND c.contype = 'p'
            """
        )
        definition, key_columns = cur.fetchone()
    assert key_columns == 2
    assert "(device_id, window_start) INCLUDE (power_avg_w, power_peak_w, util_busy)" in definition


def test_the_host_week_chart_is_an_index_only_scan(acme):
    """The 7-day raw series reads the key's index only (no heap pages) once the table is vacuumed.

    Two hosts' minutes written side by side, as ingest does, so the heap order is no help.
    """
    from datetime import UTC, datetime, timedelta

    from django.test.utils import CaptureQueriesContext

    from greenkpi.dashboard.fleet.selectors import host_series
    from greenkpi.lib.periods import Period

    hosts = [Host.objects.create(organisation=acme, hostname=f"h{i}") for i in range(2)]
    devices = [
        Device.objects.create(host=host, kind="gpu", uuid=f"GPU-{host.pk}-{i}")
        for host in hosts
        for i in range(2)
    ]
    end = datetime(2026, 11, 22, tzinfo=UTC)
    with connection.cursor() as cur:
        cur.execute(
            """
            INSERT INTO ingest_sample (device_id, window_start, window_end, energy_j, method,
                power_avg_w, power_peak_w, util_busy, batch_id)
            SELECT d, t, t + interval '60 seconds', 6000, 'counter', 100, 120, 0.5, 0
            FROM unnest(%s::bigint[]) d
            CROSS JOIN generate_series(%s::timestamptz, %s::timestamptz, interval '1 minute') t
            ORDER BY t, d
            """,
            [[d.pk for d in devices], end - timedelta(days=7), end - timedelta(minutes=1)],
        )
        cur.execute("VACUUM ANALYZE ingest_sample")  # the visibility map autovacuum keeps
    period = Period(end - timedelta(days=7), end, "7d")
    with CaptureQueriesContext(connection) as queries:
        frame = host_series(hosts[0], period)
    assert frame["windows"].sum() == 2 * 7 * 1440
    series_sql = next(q["sql"] for q in queries.captured_queries if "ingest_sample" in q["sql"])
    with connection.cursor() as cur:
        cur.execute(f"EXPLAIN (ANALYZE, COSTS OFF) {series_sql}")
        plan = "\n".join(row[0] for row in cur.fetchall())
    # every day partition (or the default one) read by its own primary key, index only
    scans = re.findall(r"-> +(.+?) on ingest_sample_\w+", plan)
    assert scans and all(s.startswith("Index Only Scan using ingest_sample_") for s in scans), plan
    assert all(s.endswith("_pkey") for s in scans), plan
    assert set(re.findall(r"Heap Fetches: (\d+)", plan)) == {"0"}, plan


def test_a_dead_persistent_connection_is_replaced_not_a_500(acme_token, make_batch, settings):
    """The token lookup stands in for Django's per-request health check (auth.py): when the
    server ended the connection since the last request, the request still succeeds, on a new
    connection, as with the health check's SELECT 1. Without the retry this is a 500."""
    import psycopg
    from django.db import close_old_connections

    _, secret = acme_token
    assert settings.DATABASES["default"]["CONN_HEALTH_CHECKS"]
    client = Client(raise_request_exception=False)

    def send(key: str, hostname: str):
        return client.post(
            "/api/v1/ingest/",
            orjson.dumps(make_batch(hostname=hostname)),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {secret}",
            HTTP_IDEMPOTENCY_KEY=key,
        )

    connection.close()
    settings.DATABASES["default"]["CONN_MAX_AGE"] = 600  # persistent, as in production
    connection.settings_dict["CONN_MAX_AGE"] = 600
    try:
        assert send("first", "a").status_code == 201
        old_pid = connection.connection.info.backend_pid
        with psycopg.connect(connection.connection.info.dsn, password=None) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [old_pid])
        # What the WSGI handler does at each request's start (the test client leaves it out).
        close_old_connections()
        response = send("second", "b")
        assert response.status_code == 201, response.content[:500]
        assert connection.connection.info.backend_pid != old_pid
        assert Sample.objects.count() == 12
    finally:
        connection.settings_dict["CONN_MAX_AGE"] = 0
        connection.close()
