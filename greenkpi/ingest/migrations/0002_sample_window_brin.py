"""A BRIN index on window_start for time-range rollups (PostgreSQL only).

Samples arrive roughly in time order, so a BRIN index is ~40 kB per 10M rows and makes last-hour
scans ~50 ms, where a btree would cost ingest speed (reference/performance-limits.md, section 5).
"""

from django.db import migrations


def create_brin(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "CREATE INDEX IF NOT EXISTS ingest_sample_window_brin ON ingest_sample USING brin (window_start)"
        )


def drop_brin(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS ingest_sample_window_brin")


class Migration(migrations.Migration):
    dependencies = [("ingest", "0001_initial")]
    operations = [migrations.RunPython(create_brin, drop_brin)]
