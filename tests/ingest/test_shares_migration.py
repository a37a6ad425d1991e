"""Migration 0008 moves the shares of a populated database onto their sample rows, and back.

Runs on both backends (the move is one UPDATE on PostgreSQL, Python on SQLite). The rows are
written with raw SQL in the layout before the migration, as a live database holds them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from greenkpi.ingest.models import Sample, SampleShare

BEFORE = [("ingest", "0007_scheduler_job_k8s_ids")]
AFTER = [("ingest", "0008_sample_shares_on_row")]
T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def migrate(targets) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def old_layout_rows() -> None:
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cur:
        for device in (1, 2):
            for minute in range(3):
                start = T0 + timedelta(minutes=minute)
                cur.execute(
                    "INSERT INTO ingest_sample (device_id, window_start, window_end, energy_j, "
                    "method, batch_id) VALUES (%s, %s, %s, %s, 'counter', 1)",
                    [device, adapt(start), adapt(start + timedelta(minutes=1)), 600.0 + minute],
                )
        start = adapt(T0 + timedelta(minutes=1))
        share = (
            "INSERT INTO ingest_sampleshare (device_id, window_start, position, team_id, "
            "model_key, run_key, pid, energy_j, method, tags, scheduler_job_id) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        )
        # two shares on one window (positions out of order on purpose), one on another device
        cur.execute(share, [1, start, 1, None, "", "", None, 0.1 + 0.2, "unattributed", "{}", None])
        cur.execute(
            share,
            [1, start, 0, 7, "bert", "r1", 4242, 600.7, "utilization", '{"k": "v"}', 99],
        )
        cur.execute(share, [2, start, 0, 8, "", "", None, 601.0, "declared", "{}", None])


@pytest.mark.django_db(transaction=True)
def test_existing_shares_move_onto_their_rows_and_read_back_as_before():
    migrate(BEFORE)
    old_layout_rows()
    migrate(AFTER)

    rows = {
        (d, s): shares
        for d, s, shares in Sample.objects.values_list("device_id", "window_start", "shares")
    }
    assert len(rows) == 6
    second = T0 + timedelta(minutes=1)
    assert rows[(1, second)] == [
        {"e": 600.7, "k": "utilization", "t": 7, "m": "bert", "r": "r1", "p": 4242,
         "g": {"k": "v"}, "j": 99},
        {"e": 0.1 + 0.2, "k": "unattributed"},  # the float survives bit for bit
    ]  # fmt: skip
    assert rows[(2, second)] == [{"e": 601.0, "k": "declared", "t": 8}]
    assert sum(v is None for v in rows.values()) == 4
    # the view gives the rows the table held
    view = list(
        SampleShare.objects.order_by("device_id", "position").values_list(
            "device_id", "position", "team_id", "model_key", "run_key", "pid", "energy_j",
            "method", "tags", "scheduler_job_id",
        )
    )  # fmt: skip
    assert view == [
        (1, 0, 7, "bert", "r1", 4242, 600.7, "utilization", {"k": "v"}, 99),
        (1, 1, None, "", "", None, 0.1 + 0.2, "unattributed", {}, None),
        (2, 0, 8, "", "", None, 601.0, "declared", {}, None),
    ]

    # and back: the table again, with the same rows
    migrate(BEFORE)
    with connection.cursor() as cur:
        cur.execute("SELECT count(*), sum(energy_j) FROM ingest_sampleshare")
        assert cur.fetchone() == (3, pytest.approx(600.7 + 0.3 + 601.0))
    migrate(AFTER)
    assert SampleShare.objects.count() == 3
