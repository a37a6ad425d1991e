"""The KPI tasks on a real Celery worker through real Redis and PostgreSQL, including a worker
SIGKILLed in the middle of a rollup: the rerun must give exactly the right rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from testsupport.celery_workers import (
    forget_queue,
    live_database_url,
    start_worker,
    stop,
    wait_for,
)

from greenkpi.celery import app
from greenkpi.kpis import services
from greenkpi.kpis.models import HourlyRollup, RecomputeRun, RollupWindow

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]
ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 60
HOLD_KEY = 4_242_001  # advisory lock the test-only trigger waits on


@pytest.fixture
def queue(redis_url):
    """A queue of this test's own, so no other worker takes its tasks and none of ours leak."""
    name = f"kpi-test-{uuid.uuid4().hex[:12]}"
    yield name
    forget_queue(redis_url, name)


def _dsn() -> str:
    return live_database_url().replace("postgres://", "postgresql://", 1)


def window(org, hour) -> RollupWindow:
    return RollupWindow.objects.get(organisation=org, hour=hour)


def is_clean(org, hour) -> bool:
    w = window(org, hour)
    return w.computed_version == w.version and w.claimed_by == ""


def energy_by_device(org, hour) -> dict[int, tuple[float, int]]:
    rows = HourlyRollup.objects.filter(organisation=org, hour=hour)
    return {r.device_id: (round(r.energy_kwh, 9), r.samples) for r in rows}


def test_the_periodic_task_recomputes_dirty_windows_on_a_real_worker(
    acme, acme_token, ingest, hour, tmp_path, redis_url, queue
):
    _, secret = acme_token
    ingest(secret, site="paris-dc", start=hour + timedelta(minutes=1))
    assert not is_clean(acme, hour)
    worker = start_worker(tmp_path, redis_url, queue)
    try:
        app.send_task("greenkpi.kpis.tasks.recompute_dirty_windows", queue=queue)
        wait_for(lambda: is_clean(acme, hour), "the worker to recompute the window", tmp_path)
    finally:
        stop(worker)
    rows = HourlyRollup.objects.filter(organisation=acme, hour=hour)
    assert rows.count() == 2
    assert {round(r.energy_kwh, 9) for r in rows} == {0.01}
    run = RecomputeRun.objects.get(kind="periodic")
    assert (run.status, run.windows_done, run.rows_written) == ("ok", 1, 2)


def test_a_worker_killed_mid_rollup_leaves_the_old_rows_and_the_rerun_gives_exactly_the_right_ones(
    acme, acme_token, ingest, hour, tmp_path, redis_url, queue
):
    _, secret = acme_token
    ingest(secret, start=hour + timedelta(minutes=1))
    services.windows_recompute_dirty()
    before = energy_by_device(acme, hour)
    assert sorted(before.values()) == [(0.01, 3), (0.01, 3)]
    # A late window for one GPU: the hour is dirty again.
    late = ingest(secret, devices=1, windows=1, start=hour + timedelta(minutes=50))
    assert late["accepted"] == 1
    assert not is_clean(acme, hour)

    # Stop the worker inside its replace transaction, after it deleted the old rows and while it
    # inserts the new ones: a test-only trigger waits on an advisory lock this test holds.
    locker = psycopg.connect(_dsn(), autocommit=True)
    locker.execute(
        "CREATE OR REPLACE FUNCTION kpi_test_hold() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$BEGIN PERFORM pg_advisory_xact_lock_shared({HOLD_KEY}); RETURN NULL; END$$"
    )
    locker.execute(
        "CREATE TRIGGER kpi_test_hold BEFORE INSERT ON kpis_hourlyrollup "
        "FOR EACH STATEMENT EXECUTE FUNCTION kpi_test_hold()"
    )
    locker.execute(f"SELECT pg_advisory_lock({HOLD_KEY})")
    backend = None
    worker = start_worker(tmp_path, redis_url, queue)
    try:
        app.send_task(
            "greenkpi.kpis.tasks.recompute_window",
            args=[acme.pk, hour.isoformat(), 2.0],  # a 2 s lease, so the test need not wait long
            queue=queue,
        )

        def blocked_pid():
            with connection.cursor() as cur:
                cur.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event = 'advisory' AND (query LIKE 'INSERT INTO %%kpis_hourlyrollup%%' "
                    "OR query LIKE 'COPY kpis_hourlyrollup%%')"
                )
                row = cur.fetchone()
            return row[0] if row else None

        wait_for(lambda: blocked_pid() is not None, "the worker to block mid-rollup", tmp_path)
        backend = blocked_pid()
        assert window(acme, hour).claimed_by != ""  # it claimed the window before it blocked
        worker.kill()  # SIGKILL: no cleanup, no ack
        worker.wait(timeout=10)
    finally:
        locker.execute(f"SELECT pg_advisory_unlock({HOLD_KEY})")
        stop(worker)

        def backend_gone() -> bool:
            with connection.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [backend])
                return cur.fetchone()[0] == 0

        try:
            wait_for(backend_gone, "PostgreSQL to end the killed worker's session", tmp_path)
        finally:
            locker.execute("DROP TRIGGER IF EXISTS kpi_test_hold ON kpis_hourlyrollup")
            locker.execute("DROP FUNCTION IF EXISTS kpi_test_hold()")
            locker.close()
    # Nothing of the half-done recompute is visible: the old rows stand, the window stays dirty.
    assert energy_by_device(acme, hour) == before
    assert not is_clean(acme, hour)

    # Its claim lapses on its own; a new worker's periodic run picks the window up.
    wait_for(
        lambda: window(acme, hour).claimed_until < datetime.now(UTC),
        "the killed worker's lease to lapse",
        tmp_path,
    )
    rerun = start_worker(tmp_path, redis_url, queue)
    try:
        app.send_task("greenkpi.kpis.tasks.recompute_dirty_windows", queue=queue)
        wait_for(lambda: is_clean(acme, hour), "the rerun to recompute the window", tmp_path)
    finally:
        stop(rerun)
    after = energy_by_device(acme, hour)
    assert sorted(after.values()) == [(0.01, 3), (round(0.01 + 12_000 / 3.6e6, 9), 4)]
    assert HourlyRollup.objects.filter(organisation=acme, hour=hour).count() == 2
