"""Celery wiring (in process; the real worker is in test_worker.py) and the backfill command."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import InterfaceError, OperationalError

from greenkpi.kpis import services, tasks
from greenkpi.kpis.models import HourlyRollup, RecomputeRun
from greenkpi.lib.retry import TRANSIENT_ERRORS
from greenkpi.schedule import BEAT_SCHEDULE


def test_tasks_ack_late_and_retry_only_transient_database_errors():
    for task in (tasks.recompute_dirty_windows, tasks.recompute_window):
        assert task.acks_late is True
        assert (
            set(task.autoretry_for) == set(TRANSIENT_ERRORS) >= {OperationalError, InterfaceError}
        )
        assert task.max_retries == 5


def test_the_beat_entry_expires_before_the_next_run_is_due():
    entry = BEAT_SCHEDULE["kpis-recompute-dirty-windows"]
    assert entry["task"] == tasks.recompute_dirty_windows.name
    assert 0 < entry["options"]["expires"] < entry["schedule"]


def test_a_transient_database_error_is_retried_and_then_succeeds(db, monkeypatch):
    calls = []
    real = services.windows_recompute_dirty

    def flaky(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real(**kwargs)

    monkeypatch.setattr(services, "windows_recompute_dirty", flaky)
    result = tasks.recompute_dirty_windows.apply(throw=False)
    assert result.successful()
    assert len(calls) == 2


def test_a_programming_error_is_not_retried(db, monkeypatch):
    calls = []

    def broken(**kwargs):
        calls.append(kwargs)
        raise TypeError("a bug")

    monkeypatch.setattr(services, "windows_recompute_dirty", broken)
    result = tasks.recompute_dirty_windows.apply(throw=False)
    assert result.failed()
    assert len(calls) == 1


def test_the_window_task_recomputes_one_window(acme, acme_token, ingest, hour):
    _, secret = acme_token
    ingest(secret, start=hour)
    assert tasks.recompute_window.apply(args=[acme.pk, hour.isoformat()]).get() == "ok"
    assert HourlyRollup.objects.filter(organisation=acme, hour=hour).count() == 2


def test_backfill_recomputes_a_range_with_a_progress_bar_and_twice_changes_nothing(
    acme, globex, acme_token, globex_token, ingest, hour
):
    _, acme_secret = acme_token
    _, globex_secret = globex_token
    for h in (hour - timedelta(hours=2), hour - timedelta(hours=1), hour):
        ingest(acme_secret, devices=1, start=h)
    ingest(globex_secret, devices=1, start=hour)
    HourlyRollup.objects.all().delete()
    start, end = (hour - timedelta(hours=2)).isoformat(), (hour + timedelta(hours=1)).isoformat()
    out, err = StringIO(), StringIO()

    call_command("recompute_rollups", start=start, end=end, org="acme", stdout=out, stderr=err)

    assert "ok: 3 window(s) recomputed, 0 failed, 3 row(s)" in out.getvalue()
    assert "3/3 windows" in err.getvalue()
    assert HourlyRollup.objects.filter(organisation=acme).count() == 3
    assert not HourlyRollup.objects.filter(organisation=globex).exists()  # --org scopes it
    before = sorted(HourlyRollup.objects.values_list("hour", "device_id", "energy_kwh"))
    call_command("recompute_rollups", start=start, end=end, stdout=StringIO(), stderr=StringIO())
    assert (
        sorted(
            HourlyRollup.objects.filter(organisation=acme).values_list(
                "hour", "device_id", "energy_kwh"
            )
        )
        == before
    )
    assert HourlyRollup.objects.filter(organisation=globex).count() == 1
    assert RecomputeRun.objects.filter(kind="backfill", status="ok").count() == 2


def test_backfill_refuses_a_bad_range(db):
    with pytest.raises(CommandError, match="after"):
        call_command("recompute_rollups", start="2026-02-01", end="2026-01-01")
    with pytest.raises(CommandError, match="no organisation"):
        call_command("recompute_rollups", start="2026-01-01", end="2026-01-02", org="nope")
