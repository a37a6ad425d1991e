"""Scale benchmark: does ingest or a one-hour rollup get dearer as raw history grows? (issue 16)

    .venv/bin/python bench/scale.py [--days 30] [--gpus 500] [--batches 50]

1. (Re)creates ``<BENCH_DB_NAME>_scale`` (default ``greenkpi_bench_scale``), migrates it, creates one
   organisation with ``--gpus`` GPUs on hosts of 10 and a collector token.
2. **Empty tables**: after one warm-up batch, ``VACUUM ANALYZE`` and a ``CHECKPOINT`` (the full
   side gets the same), ingests ``--batches`` batches through the real ingest service (in process:
   validation, host/device registration, overlap guard, hour pieces, binary COPY, dirty marks,
   one transaction each; no HTTP, so the box's noise moves it less), each one host x 60 one-minute
   windows of hour A (today), then times the rollup of hour A (``windows_batch_recompute``) after
   an untimed one of the registering hour (the first rollup in a process pays its warm-up).
3. Fills ``--days`` days of raw history for every GPU (one window per GPU per minute, generated in
   SQL inside PostgreSQL, a day per INSERT ... SELECT generate_series, in time order, day
   partitions created for them), ``VACUUM ANALYZE``, ``CHECKPOINT``.
4. **Full tables**: the same warm-ups (a batch of hour B, the registering hour's rollup), a
   ``CHECKPOINT``, then the same ingest into hour B (today, after A) and the rollup of hour B,
   which holds as many windows as A did.
5. Prints ``scale_ingest_ratio`` (full samples/s / empty samples/s) and ``scale_rollup_ratio``
   (empty seconds / full seconds): goal >= 0.9, i.e. cost does not grow with history;
   ``bytes_per_window`` (all of ingest_sample's partitions, indexes and TOAST included, over its
   rows); and ``drop_partition_s``, the time to drop one full day partition.

Everything shares the machine's cores; the script prints the load average with each figure.
The defaults (30 days x 500 GPUs: 21.6 M windows, ~5.8 GB) take ~20 minutes on the shared 2-core
development box at load 8-10, nearly all of it the fill; ``--days`` and ``--gpus`` size it up
(the fill grows linearly; the measured parts do not, which is the point).
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime, timedelta

import benchdb
import orjson
import psycopg

DB_NAME = os.environ.get("BENCH_DB_NAME", "greenkpi_bench") + "_scale"
DB_URL = benchdb.url_of(DB_NAME)
VAR_DIR = os.environ.get("GREENKPI_VAR_DIR", "/tmp/gk-bench-scale-var")
GPUS_PER_HOST = 10


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def set_up(gpus: int):
    from greenkpi.inventory.services import (
        organisation_create,
        site_create,
        team_create,
        token_create,
    )

    org = organisation_create(name="Scale", slug="scale")
    team = team_create(organisation=org, name="ML", slug="ml")
    site = site_create(organisation=org, name="paris", grid_zone="FR", pue=1.3)
    token, _ = token_create(organisation=org, name="bench", default_team=team, default_site=site)
    return org, token


def bodies(gpus: int, hour: datetime, batches: int) -> list[bytes]:
    """One body per host: its GPUs x 60 one-minute windows of ``hour``."""
    out = []
    for h in range(min(batches, (gpus + GPUS_PER_HOST - 1) // GPUS_PER_HOST)):
        samples = []
        for minute in range(60):
            start = hour + timedelta(minutes=minute)
            for g in range(GPUS_PER_HOST):
                energy = 6000.0 + 300.0 * ((g + minute) % 10)
                samples.append(
                    {
                        "device_uuid": f"GPU-{h:04d}-{g:02d}",
                        "device_kind": "gpu",
                        "start": start.isoformat().replace("+00:00", "Z"),
                        "end": (start + timedelta(minutes=1)).isoformat().replace("+00:00", "Z"),
                        "energy_j": energy,
                        "method": "counter",
                        "power_avg_w": energy / 60,
                        "util_busy": 0.6,
                        "shares": [
                            {"energy_j": energy * 0.75, "team": "ml", "run": f"run-{h}"},
                            {"energy_j": energy * 0.25, "method": "unattributed"},
                        ],
                    }
                )
        body = {
            "schema_version": 1,
            "host": {"hostname": f"node-{h:04d}", "agent_version": "bench"},
            "samples": samples,
        }
        out.append(orjson.dumps(body))
    return out


def checkpoint() -> None:
    with psycopg.connect(DB_URL, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def time_ingest(token, payloads: list[bytes], tag: str) -> tuple[float, int]:
    from greenkpi.ingest.services import ingest_batch

    samples = 0
    t0 = time.perf_counter()
    for i, body in enumerate(payloads):
        result = ingest_batch(token=token, idempotency_key=f"{tag}-{i}", body=body)
        assert result.status == 201, result.body
        samples += result.body["accepted"]
    return time.perf_counter() - t0, samples


def time_rollup(org_id: int, hour: datetime) -> float:
    from greenkpi.kpis import services

    t0 = time.perf_counter()
    results = services.windows_batch_recompute(organisation_id=org_id, hours=[hour])
    elapsed = time.perf_counter() - t0
    assert results[hour].status == "done", results[hour]
    return elapsed


def fill_history(org_id: int, *, start: datetime, end: datetime, skip: datetime) -> int:
    """One window per GPU per minute in [start, end), in SQL, a day per statement, except the hour
    ``skip`` (the registering batches' hour, which they filled already): plain INSERTs, no
    ON CONFLICT (its speculative insertion per row was part of a 30-day fill's ~20 minutes)."""
    from django.db import connection

    from greenkpi.ingest import partitions

    partitions.partitions_ensure(partitions.days_between(start, end - timedelta(seconds=1)))
    rows = 0
    day = start
    with connection.cursor() as cur:
        while day < end:
            stop = min(day + timedelta(days=1), end)
            cur.execute(
                """
                INSERT INTO ingest_sample (device_id, window_start, window_end, energy_j, method,
                    power_avg_w, util_busy, batch_id, shares)
                SELECT d.id, t, t + interval '1 minute', 6000 + (d.id %% 10) * 300, 'counter',
                       100, 0.6, 0,
                       CASE WHEN d.id %% 2 = 0 THEN NULL ELSE jsonb_build_array(
                           jsonb_build_object('e', 4500, 'k', 'utilization', 'r', 'run-x'),
                           jsonb_build_object('e', 1500, 'k', 'unattributed')) END
                FROM (SELECT d.id FROM inventory_device d JOIN inventory_host h
                      ON h.id = d.host_id WHERE h.organisation_id = %s) d
                CROSS JOIN generate_series(%s::timestamptz, %s::timestamptz - interval '1 minute',
                                           interval '1 minute') t
                WHERE NOT (t >= %s::timestamptz AND t < %s::timestamptz + interval '1 hour')
                -- in time order, as collectors send them (the BRIN index and the heap's layout)
                ORDER BY t, d.id
                """,
                [org_id, day, stop, skip, skip],
            )
            rows += cur.rowcount
            day = stop
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=30, help="days of raw history")
    parser.add_argument("--gpus", type=int, default=500)
    # 50: every host of the default 500 GPUs (one is the warm-up); 20 batches were ~0.1 s of work,
    # too little to time on a shared box
    parser.add_argument("--batches", type=int, default=50, help="hosts ingested per measurement")
    args = parser.parse_args()

    benchdb.recreate_database(DB_NAME, VAR_DIR)
    benchdb.setup_django(DB_NAME, VAR_DIR)
    from greenkpi.ingest.services import ingest_batch

    org, token = set_up(args.gpus)
    now = datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    # two whole hours of today that have ended (before 02:00 UTC: yesterday's last two)
    hour_b = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    hour_a = hour_b - timedelta(hours=1)
    history_end = min(today, hour_a)
    # every GPU registered by one batch at a past hour of hour A's day, so both measurements
    # ingest for known devices (as in steady state)
    hosts = (args.gpus + GPUS_PER_HOST - 1) // GPUS_PER_HOST
    registering = hour_a - timedelta(hours=3)
    for h, body in enumerate(bodies(args.gpus, registering, hosts)):
        ingest_batch(token=token, idempotency_key=f"register-{h}", body=body)
    payload_a = bodies(args.gpus, hour_a, args.batches)
    payload_b = bodies(args.gpus, hour_b, args.batches)

    time_ingest(token, payload_a[:1], "warm")  # imports, first COPY
    # Both sides are measured on analyzed tables right after a CHECKPOINT, as the full side must
    # be (its fill's WAL and statistics): the first change to a page after a checkpoint writes
    # the whole page to the WAL, and unanalyzed tables get other plans.
    with psycopg.connect(DB_URL, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE ingest_sample")  # as the full side gets after its fill
    checkpoint()
    empty_ingest_s, empty_samples = time_ingest(token, payload_a[1:], "empty")
    empty_rate = empty_samples / empty_ingest_s
    print(f"empty: ingest {empty_samples} samples in {empty_ingest_s:.2f} s = {empty_rate:,.0f}/s "
          f"(load {load()})", flush=True)  # fmt: skip
    # warm-up: the first rollup in a process pays imports, catalog caches and first plans, which
    # the full-table measurement would not (a 30-day run measured 0.84 s empty vs 0.50 s full)
    time_rollup(org.pk, registering)
    empty_rollup_s = time_rollup(org.pk, hour_a)
    print(f"empty: one-hour rollup {empty_rollup_s:.3f} s (load {load()})", flush=True)

    t0 = time.perf_counter()
    start = history_end - timedelta(days=args.days)
    rows = fill_history(org.pk, start=start, end=history_end, skip=registering)
    with psycopg.connect(DB_URL, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE ingest_sample")
    checkpoint()  # the fill's WAL flushed now, not during the measurement that follows
    print(f"history: {rows:,} windows ({args.days} days x {args.gpus} GPUs) in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip

    # The same warm-ups as the empty side had (one batch, the registering hour's rollup): the
    # fill and its VACUUM cycled today's partition out of shared_buffers, as a live server's hot
    # partition never is.
    time_ingest(token, payload_b[:1], "warm-full")
    time_rollup(org.pk, registering)
    checkpoint()
    full_ingest_s, full_samples = time_ingest(token, payload_b[1:], "full")
    full_rate = full_samples / full_ingest_s
    print(f"full: ingest {full_samples} samples in {full_ingest_s:.2f} s = {full_rate:,.0f}/s "
          f"(load {load()})", flush=True)  # fmt: skip
    full_rollup_s = time_rollup(org.pk, hour_b)
    print(f"full: one-hour rollup {full_rollup_s:.3f} s (load {load()})", flush=True)

    with psycopg.connect(DB_URL, autocommit=True) as conn:
        size, count = conn.execute(
            "SELECT (SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits "
            "WHERE inhparent = 'ingest_sample'::regclass) "
            "+ pg_total_relation_size('ingest_sample'), (SELECT count(*) FROM ingest_sample)"
        ).fetchone()
        from greenkpi.ingest import partitions

        # a whole day of the history (its first day may be partly the registering windows')
        oldest = partitions.name_of((start + timedelta(days=1)).date())
        day_rows = conn.execute(f"SELECT count(*) FROM {oldest}").fetchone()[0]
        t0 = time.perf_counter()
        conn.execute(f"DROP TABLE {oldest}")
        drop_s = time.perf_counter() - t0
    print(f"dropped {oldest} ({day_rows:,} windows, a full day) in {drop_s * 1000:.1f} ms")
    print(f"load average at the end: {load()}")
    print(f"scale_ingest_ratio: {full_rate / empty_rate:.2f}")
    print(f"scale_rollup_ratio: {empty_rollup_s / full_rollup_s:.2f}")
    print(f"bytes_per_window: {size / count:.0f}")
    print(f"drop_partition_s: {drop_s:.4f}")


if __name__ == "__main__":
    main()
