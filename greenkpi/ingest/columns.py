"""Column order and PostgreSQL types of the measurement tables, for binary COPY.

Django-free, so bench/ingest.py measures raw COPY of exactly the rows the ingest path writes.

A window's attribution shares travel on its sample row (``shares``, one jsonb array), so one COPY
writes one row per window (issue 16: the separate share table cost 58 % of COPY speed). Each share
is an object with one-letter keys, empty values left out (they are most of a share's bytes):
``e`` energy_j, ``k`` method, ``t`` team id, ``m`` model key, ``r`` run key, ``p`` pid, ``g`` tags,
``j`` scheduler job id (SHARE_KEYS). The SampleShare model reads them back as rows (a view).
"""

from __future__ import annotations

SAMPLE_COLUMNS = (
    "device_id",
    "window_start",
    "window_end",
    "energy_j",
    "method",
    "power_avg_w",
    "power_peak_w",
    "util_busy",
    "util_sm",
    "mem_used_bytes",
    "mem_total_bytes",
    "temperature_c",
    "idle_s",
    "batch_id",
    "shares",
)
SAMPLE_PG_TYPES = (
    "int8",
    "timestamptz",
    "timestamptz",
    "float8",
    "text",
    "float8",
    "float8",
    "float8",
    "float8",
    "int8",
    "int8",
    "float8",
    "float8",
    "int8",
    "jsonb",
)
SHARE_KEYS = {
    "team_id": "t",
    "model_key": "m",
    "run_key": "r",
    "pid": "p",
    "energy_j": "e",
    "method": "k",
    "tags": "g",
    "scheduler_job_id": "j",
}
