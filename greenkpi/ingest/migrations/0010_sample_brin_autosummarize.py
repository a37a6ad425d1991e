"""Every partition's BRIN index on window_start summarizes new page ranges as they fill
(``autosummarize``; ingest/partitions.py, BRIN): a one-hour rollup then rechecks its hour's rows,
not every row written since the partition's last vacuum. Partitions made later get it when they
are created. Only the option changes (no rebuild); SQLite has no BRIN index."""

from django.db import migrations

EACH_PARTITION = """
DO $$
DECLARE child regclass;
BEGIN
    FOR child IN SELECT inhrelid::regclass FROM pg_inherits
                 WHERE inhparent = 'ingest_sample_window_brin'::regclass LOOP
        EXECUTE 'ALTER INDEX ' || child::text || ' {action}';
    END LOOP;
END $$
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(EACH_PARTITION.format(action="SET (autosummarize = on)"))


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(EACH_PARTITION.format(action="RESET (autosummarize)"))


class Migration(migrations.Migration):
    dependencies = [("ingest", "0009_sample_day_partitions")]

    operations = [migrations.RunPython(forwards, backwards)]
