"""A window's shares move onto its sample row (issue 16): one COPY writes one row per window.

``ingest_sample.shares`` holds the window's shares as one JSON array (jsonb on PostgreSQL), each an
object with one-letter keys and empty values left out (greenkpi/ingest/columns.py). The share table
becomes a read-only view of the same name that unnests the arrays, so readers that think in share
rows (admin, tests, the demo's checks) keep working; the rollups read the arrays directly.

Existing shares are moved in place (one UPDATE on PostgreSQL; row by row on SQLite, whose
databases are small) before the table is dropped. Reversible: the table is rebuilt from the view.
On a large database the UPDATE rewrites every shared sample row: run it in a maintenance window.
"""

import json

from django.db import migrations, models

# Object with the share's non-empty values, under the keys of columns.SHARE_KEYS.
PG_SHARE_OBJECT = """jsonb_build_object('e', energy_j, 'k', method)
    || CASE WHEN team_id IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('t', team_id) END
    || CASE WHEN model_key = '' THEN '{}'::jsonb ELSE jsonb_build_object('m', model_key) END
    || CASE WHEN run_key = '' THEN '{}'::jsonb ELSE jsonb_build_object('r', run_key) END
    || CASE WHEN pid IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('p', pid) END
    || CASE WHEN tags IS NULL OR tags = '{}'::jsonb THEN '{}'::jsonb
            ELSE jsonb_build_object('g', tags) END
    || CASE WHEN scheduler_job_id IS NULL THEN '{}'::jsonb
            ELSE jsonb_build_object('j', scheduler_job_id) END"""

PG_MOVE = f"""UPDATE ingest_sample s SET shares = x.shares
FROM (SELECT device_id, window_start, jsonb_agg({PG_SHARE_OBJECT} ORDER BY position) AS shares
      FROM ingest_sampleshare GROUP BY device_id, window_start) x
WHERE s.device_id = x.device_id AND s.window_start = x.window_start"""

PG_VIEW = """CREATE VIEW ingest_sampleshare AS
SELECT s.device_id, s.window_start, (e.n - 1)::smallint AS position,
       (e.v ->> 't')::bigint AS team_id,
       COALESCE(e.v ->> 'm', '') AS model_key,
       COALESCE(e.v ->> 'r', '') AS run_key,
       (e.v ->> 'p')::integer AS pid,
       (e.v ->> 'e')::float8 AS energy_j,
       e.v ->> 'k' AS method,
       COALESCE(e.v -> 'g', '{}'::jsonb) AS tags,
       (e.v ->> 'j')::bigint AS scheduler_job_id
FROM ingest_sample s CROSS JOIN LATERAL jsonb_array_elements(s.shares) WITH ORDINALITY AS e(v, n)"""

SQLITE_VIEW = """CREATE VIEW ingest_sampleshare AS
SELECT s.device_id AS device_id, s.window_start AS window_start,
       CAST(e.key AS INTEGER) AS position,
       json_extract(e.value, '$.t') AS team_id,
       COALESCE(json_extract(e.value, '$.m'), '') AS model_key,
       COALESCE(json_extract(e.value, '$.r'), '') AS run_key,
       json_extract(e.value, '$.p') AS pid,
       CAST(json_extract(e.value, '$.e') AS REAL) AS energy_j,
       json_extract(e.value, '$.k') AS method,
       COALESCE(json_extract(e.value, '$.g'), '{}') AS tags,
       json_extract(e.value, '$.j') AS scheduler_job_id
FROM ingest_sample s, json_each(s.shares) e
WHERE s.shares IS NOT NULL"""

# The table as migration 0005 left it, to move back into.
PG_TABLE = """CREATE TABLE ingest_sampleshare_old (
    device_id bigint NOT NULL, window_start timestamptz NOT NULL, position smallint NOT NULL
        CHECK (position >= 0),
    team_id bigint NULL, model_key varchar(200) NOT NULL, run_key varchar(200) NOT NULL,
    pid integer NULL, energy_j double precision NOT NULL, method varchar(16) NOT NULL,
    tags jsonb NOT NULL, scheduler_job_id bigint NULL,
    PRIMARY KEY (device_id, window_start, position))"""
SQLITE_TABLE = """CREATE TABLE ingest_sampleshare_old (
    device_id bigint NOT NULL, window_start datetime NOT NULL, position smallint unsigned NOT NULL
        CHECK (position >= 0),
    team_id bigint NULL, model_key varchar(200) NOT NULL, run_key varchar(200) NOT NULL,
    pid integer NULL, energy_j real NOT NULL, method varchar(16) NOT NULL,
    tags text NOT NULL CHECK ((JSON_VALID(tags) OR tags IS NULL)), scheduler_job_id bigint NULL,
    PRIMARY KEY (device_id, window_start, position))"""
COLUMNS = (
    "device_id, window_start, position, team_id, model_key, run_key, pid, energy_j, method, "
    "tags, scheduler_job_id"
)


def _sqlite_share(row: tuple) -> dict:
    """One share row as the ingest path encodes it (columns.SHARE_KEYS, empties left out)."""
    team_id, model_key, run_key, pid, energy_j, method, tags, job_id = row
    share: dict = {"e": float(energy_j), "k": method}
    if team_id is not None:
        share["t"] = team_id
    if model_key:
        share["m"] = model_key
    if run_key:
        share["r"] = run_key
    if pid is not None:
        share["p"] = pid
    tags = json.loads(tags) if isinstance(tags, str) else tags
    if tags:
        share["g"] = tags
    if job_id is not None:
        share["j"] = job_id
    return share


def forwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    with schema_editor.connection.cursor() as cur:
        if vendor == "postgresql":
            cur.execute(PG_MOVE)
            cur.execute("DROP TABLE ingest_sampleshare")
            cur.execute(PG_VIEW)
            return
        cur.execute(
            "SELECT device_id, window_start, team_id, model_key, run_key, pid, energy_j, method, "
            "tags, scheduler_job_id FROM ingest_sampleshare ORDER BY device_id, window_start, "
            "position"
        )
        grouped: dict[tuple, list[dict]] = {}
        for row in cur.fetchall():
            grouped.setdefault((row[0], row[1]), []).append(_sqlite_share(row[2:]))
        for (device_id, window_start), shares in grouped.items():
            cur.execute(
                "UPDATE ingest_sample SET shares = %s WHERE device_id = %s AND window_start = %s",
                [json.dumps(shares), device_id, window_start],
            )
        cur.execute("DROP TABLE ingest_sampleshare")
        cur.execute(SQLITE_VIEW)


def backwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    with schema_editor.connection.cursor() as cur:
        cur.execute(PG_TABLE if vendor == "postgresql" else SQLITE_TABLE)
        cur.execute(
            f"INSERT INTO ingest_sampleshare_old ({COLUMNS}) SELECT {COLUMNS} FROM ingest_sampleshare"
        )
        cur.execute("DROP VIEW ingest_sampleshare")
        cur.execute("ALTER TABLE ingest_sampleshare_old RENAME TO ingest_sampleshare")


class Migration(migrations.Migration):
    dependencies = [("ingest", "0007_scheduler_job_k8s_ids")]

    operations = [
        migrations.AddField(
            model_name="sample",
            name="shares",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.RunPython(forwards, backwards),
        migrations.AlterModelOptions(name="sampleshare", options={"managed": False}),
    ]
