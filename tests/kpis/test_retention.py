"""Raw storage: day partitions (PostgreSQL), retention that never drops an hour not rolled up.

Retention is tested on both backends (a dropped partition on PostgreSQL, deleted rows on SQLite):
two days of samples are rolled up, one hour of the second is made to fail its recompute, and the
job run "later" drops the first day and keeps the second, naming it; the first day's rollups stay
and a recompute of its hours leaves them alone.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import DatabaseError, connection
from django.db.models import Sum
from django.test import override_settings

from greenkpi.ingest import partitions
from greenkpi.ingest.models import Sample
from greenkpi.kpis import dirty, raw_storage, retention, rollup, services
from greenkpi.kpis.models import HourlyRollup, RollupWindow, RunStatus

RETENTION = 40


def two_days(ingest, secret) -> tuple[datetime, datetime]:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    d1, d2 = today - timedelta(days=3), today - timedelta(days=2)
    for day in (d1, d2):
        for h in (1, 5):
            ingest(secret, start=day + timedelta(hours=h, minutes=10))
    return d1, d2


def energy(org, start, end) -> float:
    return HourlyRollup.objects.filter(organisation=org, hour__gte=start, hour__lt=end).aggregate(
        e=Sum("energy_kwh")
    )["e"]


@override_settings(RAW_RETENTION_DAYS=RETENTION)
def test_retention_drops_rolled_up_days_only_and_their_rollups_stay(
    acme, acme_token, ingest, monkeypatch
):
    _, secret = acme_token
    d1, d2 = two_days(ingest, secret)
    assert services.windows_recompute_dirty().windows_done == 4
    before = energy(acme, d1, d1 + timedelta(days=1))
    assert before > 0

    # one hour of the second day is dirtied and its recompute fails
    bad = d2 + timedelta(hours=5)
    real = rollup.windows_insert

    def failing(*, organisation_id, hours, now):
        if bad in hours:
            raise RuntimeError("injected recompute failure")
        return real(organisation_id=organisation_id, hours=hours, now=now)

    monkeypatch.setattr(rollup, "windows_insert", failing)
    dirty.windows_mark_dirty(organisation_id=acme.pk, window_starts=[bad])
    assert services.windows_recompute_dirty().windows_failed == 1

    later = d2 + timedelta(days=RETENTION + 1, hours=12)
    assert retention.raw_horizon(later) == d2 + timedelta(days=1)
    run = raw_storage.raw_storage_maintain(now=later)
    # (on PostgreSQL the empty day partitions older than the horizon go too)
    assert run.windows_done >= 1 and run.windows_failed == 1, run.error
    assert f"kept {d2.date()}: 1 hour(s) not rolled up" in run.error
    assert not Sample.objects.filter(window_start__lt=d2).exists()
    assert Sample.objects.filter(window_start__gte=d2).count() == 12
    if partitions.is_partitioned():
        assert d1.date() not in partitions.day_partitions()
        assert d2.date() in partitions.day_partitions()

    # rollups are kept, and a recompute of a dropped hour (new grid data, say) leaves them alone
    assert energy(acme, d1, d1 + timedelta(days=1)) == before
    dirty.windows_mark_dirty(organisation_id=acme.pk, window_starts=[d1 + timedelta(hours=1)])
    with time_machine.travel(later, tick=False):
        services.windows_recompute_dirty()
    assert energy(acme, d1, d1 + timedelta(days=1)) == before
    window = RollupWindow.objects.get(organisation=acme, hour=d1 + timedelta(hours=1))
    assert window.version == window.computed_version

    # once the failing hour is rolled up, the second day goes too
    monkeypatch.setattr(rollup, "windows_insert", real)
    RollupWindow.objects.filter(hour=bad).update(claimed_until=None)
    services.windows_recompute_dirty()
    run = raw_storage.raw_storage_maintain(now=later)
    assert run.windows_done == 1 and run.windows_failed == 0, run.error
    assert not Sample.objects.exists()
    assert energy(acme, d2, d2 + timedelta(days=1)) > 0


@override_settings(RAW_RETENTION_DAYS=RETENTION)
def test_a_day_with_an_outdated_methodology_is_kept(acme, acme_token, ingest):
    _, secret = acme_token
    d1, _ = two_days(ingest, secret)
    services.windows_recompute_dirty()
    HourlyRollup.objects.filter(hour=d1 + timedelta(hours=1)).update(methodology_version="0.9")
    later = d1 + timedelta(days=RETENTION + 1, hours=12)
    run = raw_storage.raw_storage_maintain(now=later)
    assert run.windows_failed == 1 and f"kept {d1.date()}" in run.error


@pytest.mark.postgres
def test_the_sample_table_is_partitioned_by_day_from_the_late_limit_to_a_week_ahead(
    acme, acme_token, ingest
):
    assert partitions.is_partitioned()
    days = partitions.day_partitions()
    today = datetime.now(UTC).date()
    assert {today - timedelta(days=30), today, today + timedelta(days=6)} <= set(days)
    # a late window (a month old) lands in its own day's partition
    _, secret = acme_token
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
    ingest(secret, start=start, windows=1, devices=1)
    with connection.cursor() as cur:
        cur.execute("SELECT tableoid::regclass::text FROM ingest_sample")
        assert [r[0] for r in cur.fetchall()] == [partitions.name_of(start.date())]


@pytest.mark.postgres
def test_every_partitions_brin_index_summarizes_its_new_ranges_itself(db):
    """Those the migrations made (the default partition, the late range, the days ahead) and one
    made now: a range left unsummarized matches every query (docs/scaling.md)."""
    later = datetime.now(UTC).date() + timedelta(days=60)
    assert partitions.partitions_ensure([later]) == [partitions.name_of(later)]
    with connection.cursor() as cur:
        cur.execute(
            "SELECT x.indrelid::regclass::text, c.reloptions FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_index x ON x.indexrelid = c.oid "
            "WHERE i.inhparent = %s::regclass",
            [partitions.BRIN],
        )
        options = dict(cur.fetchall())
    assert {partitions.DEFAULT, partitions.name_of(later)} < options.keys()
    assert set(options) == {partitions.DEFAULT, *partitions.day_partitions().values()}
    assert {name for name, opts in options.items() if opts != ["autosummarize=on"]} == set()


@pytest.mark.postgres
def test_partition_creation_failing_keeps_ingest_working_and_alerts(
    acme, acme_token, ingest, monkeypatch, caplog
):
    """A missing day lands in the default partition; the failed run is an ALERT; once creation
    works again the day is created and its rows moved out of the default partition."""
    _, secret = acme_token
    today = datetime.now(UTC).date()
    partitions.partition_drop(today)

    def broken(days):
        raise DatabaseError("permission denied for schema public (injected)")

    monkeypatch.setattr(partitions, "partitions_ensure", broken)
    with caplog.at_level(logging.ERROR, logger="greenkpi.kpis.raw_storage"):
        run = raw_storage.raw_storage_maintain()
    assert run.status == RunStatus.FAILED and "ALERT partition creation failed" in run.error
    assert any("ALERT" in r.getMessage() for r in caplog.records)

    # today's windows (from midnight: "an hour ago" is yesterday before 01:00 UTC), no partition
    # for today: still 201
    midnight = datetime.combine(today, datetime.min.time(), tzinfo=UTC)
    ingest(secret, windows=2, devices=2, start=midnight)
    ingest(secret, start=datetime.now(UTC) - timedelta(days=2), windows=1, devices=1)
    with connection.cursor() as cur:
        cur.execute("SELECT tableoid::regclass::text, count(*) FROM ingest_sample GROUP BY 1")
        placed = dict(cur.fetchall())
    assert placed[partitions.DEFAULT] == 4
    assert placed[partitions.name_of(today - timedelta(days=2))] == 1

    monkeypatch.undo()
    run = raw_storage.raw_storage_maintain()
    assert run.status == RunStatus.OK and partitions.name_of(today) in run.error
    with connection.cursor() as cur:
        cur.execute("SELECT tableoid::regclass::text, count(*) FROM ingest_sample GROUP BY 1")
        placed = dict(cur.fetchall())
    assert placed == {
        partitions.name_of(today): 4,
        partitions.name_of(today - timedelta(days=2)): 1,
    }


@override_settings(RAW_RETENTION_DAYS=RETENTION)
def test_a_backfill_past_retention_tells_the_admin(db):
    from io import StringIO

    from django.core.management import call_command

    err = StringIO()
    start = (datetime.now(UTC) - timedelta(days=RETENTION + 5)).date().isoformat()
    call_command(
        "recompute_rollups", start=start, end=start + "T06:00", stdout=StringIO(), stderr=err
    )
    assert "past retention" in err.getvalue() and "cannot be recomputed" in err.getvalue()


def test_retention_shorter_than_the_late_data_limit_is_refused_at_start_up():
    import subprocess
    import sys

    env = {"RAW_RETENTION_DAYS": "20", "INGEST_MAX_AGE_DAYS": "31", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", "import greenkpi.settings"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0 and "RAW_RETENTION_DAYS=20 is below the minimum 33" in done.stderr


def test_the_late_range_of_day_partitions_is_capped():
    now = datetime(2026, 12, 6, 21, tzinfo=UTC)
    days = partitions.late_range(now, 31, 7)
    assert (days[0], days[-1], len(days)) == (
        now.date() - timedelta(days=31),
        now.date() + timedelta(days=7),
        39,
    )
    # a late-data limit of years (a benchmark's) does not mean thousands of partitions
    assert len(partitions.late_range(now, 3650, 7)) == partitions.BACK_MAX_DAYS + 7 + 1
