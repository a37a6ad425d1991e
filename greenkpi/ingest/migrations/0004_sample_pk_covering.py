"""The Sample primary key's index also carries what the host chart reads (PostgreSQL only).

``PRIMARY KEY (device_id, window_start) INCLUDE (power_avg_w, power_peak_w, util_busy)``: the
host page's raw power/utilization series (dashboard/selectors/hosts.py host_series) becomes an
index-only scan instead of one heap page per few rows (ingest writes every host's minutes side by
side, so a host-week of ~80 k windows lies on ~11 k heap pages). INCLUDE columns are payload only:
uniqueness, ON CONFLICT (device_id, window_start) and the key order are unchanged, and no second
btree is maintained on ingest (a separate covering index would be one more index per row).

Index-only scans skip the heap only for all-visible pages, so the table's autovacuum is also told
to vacuum after every 200 k inserted rows (about 1.5 h of a 2,000-GPU fleet) instead of after 20 %
growth, which on a year-long table would leave the last weeks not all-visible. Vacuuming an
append-only table only visits its new pages.

Figures (bench/dashboard.py, bench/ingest.py) are in docs/dashboard.md and docs/api.md. SQLite
keeps its plain key.

The single-column index on device_id goes (on every backend): the key's index starts with
device_id, so it served nothing the key does not; binary COPY runs ~40 % faster without it, which
more than pays for the wider key (within noise, ~3 %).

The constraint is rebuilt under an ACCESS EXCLUSIVE lock: on a large existing table, run this in a
maintenance window.
"""

import django.db.models.deletion
from django.db import migrations, models

COVERING = (
    "ALTER TABLE ingest_sample DROP CONSTRAINT ingest_sample_pkey, "
    "ADD CONSTRAINT ingest_sample_pkey PRIMARY KEY (device_id, window_start) "
    "INCLUDE (power_avg_w, power_peak_w, util_busy)"
)
PLAIN = (
    "ALTER TABLE ingest_sample DROP CONSTRAINT ingest_sample_pkey, "
    "ADD CONSTRAINT ingest_sample_pkey PRIMARY KEY (device_id, window_start)"
)
VACUUM_OFTEN = (
    "ALTER TABLE ingest_sample SET (autovacuum_vacuum_insert_threshold = 200000, "
    "autovacuum_vacuum_insert_scale_factor = 0)"
)
VACUUM_DEFAULT = (
    "ALTER TABLE ingest_sample RESET (autovacuum_vacuum_insert_threshold, "
    "autovacuum_vacuum_insert_scale_factor)"
)


def covering_key(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(COVERING)
        schema_editor.execute(VACUUM_OFTEN)


def plain_key(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(VACUUM_DEFAULT)
        schema_editor.execute(PLAIN)


class Migration(migrations.Migration):
    dependencies = [("ingest", "0003_codecarbonrun"), ("inventory", "0001_initial")]
    operations = [
        migrations.AlterField(
            model_name="sample",
            name="device",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="inventory.device",
            ),
        ),
        migrations.RunPython(covering_key, plain_key),
    ]
