"""Column order and PostgreSQL types of the measurement tables, for binary COPY.

Django-free, so bench/ingest.py measures raw COPY of exactly the rows the ingest path writes.
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
)
SHARE_COLUMNS = (
    "device_id",
    "window_start",
    "position",
    "team_id",
    "model_key",
    "run_key",
    "pid",
    "energy_j",
    "method",
    "tags",
    "scheduler_job_id",
)
SHARE_PG_TYPES = (
    "int8",
    "timestamptz",
    "int2",
    "int8",
    "text",
    "text",
    "int4",
    "float8",
    "text",
    "jsonb",
    "int8",
)
