"""The raw sample table becomes range-partitioned by day on PostgreSQL (issue 16; ingest/partitions.py).

The existing table is not copied: it is renamed and attached as the DEFAULT partition (its key
and BRIN index match the new parent's, so PostgreSQL adopts them instead of building new ones).
Then the day partitions of the late-data range and the days ahead are created, which moves those
days' rows out of it; older history stays in the default partition until retention deletes it
(or kpis' raw-storage job creates its days). The share view is rebuilt on the new parent.
SQLite keeps one table. On a large database the day moves rewrite up to INGEST_MAX_AGE_DAYS of
rows: run it in a maintenance window.
"""

from datetime import timedelta

from django.conf import settings
from django.db import migrations
from django.utils import timezone

VIEW = __import__(
    "greenkpi.ingest.migrations.0008_sample_shares_on_row", fromlist=["PG_VIEW"]
).PG_VIEW

FORWARD = [
    "DROP VIEW ingest_sampleshare",
    "ALTER TABLE ingest_sample RENAME TO ingest_sample_default",
    "ALTER INDEX ingest_sample_pkey RENAME TO ingest_sample_default_pkey",
    "ALTER INDEX ingest_sample_window_brin RENAME TO ingest_sample_default_window_brin",
    "CREATE TABLE ingest_sample (LIKE ingest_sample_default INCLUDING DEFAULTS) "
    "PARTITION BY RANGE (window_start)",
    "ALTER TABLE ingest_sample ADD CONSTRAINT ingest_sample_pkey PRIMARY KEY (device_id, "
    "window_start) INCLUDE (power_avg_w, power_peak_w, util_busy)",
    "CREATE INDEX ingest_sample_window_brin ON ingest_sample USING brin (window_start)",
    "ALTER TABLE ingest_sample ATTACH PARTITION ingest_sample_default DEFAULT",
    VIEW,
]

BACKWARD = [
    "DROP VIEW ingest_sampleshare",
    "ALTER TABLE ingest_sample DETACH PARTITION ingest_sample_default",
    "INSERT INTO ingest_sample_default SELECT * FROM ingest_sample",
    "DROP TABLE ingest_sample",
    "ALTER TABLE ingest_sample_default RENAME TO ingest_sample",
    "ALTER INDEX ingest_sample_default_pkey RENAME TO ingest_sample_pkey",
    "ALTER INDEX ingest_sample_default_window_brin RENAME TO ingest_sample_window_brin",
    VIEW,
]


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in FORWARD:
        schema_editor.execute(statement)
    from greenkpi.ingest import partitions

    now = timezone.now()
    partitions.partitions_ensure(
        partitions.days_between(
            now - timedelta(days=settings.INGEST_MAX_AGE_DAYS),
            now + timedelta(days=settings.RAW_PARTITIONS_AHEAD_DAYS),
        )
    )


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in BACKWARD:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("ingest", "0008_sample_shares_on_row")]
    operations = [migrations.RunPython(forwards, backwards)]
