"""Scale benchmark: does ingest or a one-hour rollup get dearer as raw history grows? (issue 16)

    .venv/bin/python bench/scale.py [--days 30] [--gpus 500] [--batches 50] [--reps 12]
                                    [--explain DIR]

Two databases on the same PostgreSQL, each driven by its own process: ``<BENCH_DB_NAME>_scale``
gets ``--days`` days of raw history for every GPU, ``<BENCH_DB_NAME>_scale_empty`` none; the two
are otherwise alike, and the measurements alternate between them, so a change in the machine's
speed (a shared box's neighbours) moves both sides of each ratio alike.

1. Both databases are (re)created and migrated, with one organisation of ``--gpus`` GPUs on hosts
   of 10 and a collector token; every GPU is registered by one batch at the *registering hour*
   (the hour before the first round's), and that hour is rolled up once (the first
   rollup in a process pays imports, catalog caches and first plans).
2. The full database is filled with one window per GPU per minute for the ``--days`` days before
   the registering hour (generated in SQL inside PostgreSQL, a day per INSERT ... SELECT
   generate_series, in time order, day partitions created for them).
3. ``VACUUM ANALYZE`` on both, then a ``CHECKPOINT`` (one for the cluster, so both): the first
   change to a page after a checkpoint writes the whole page to the WAL, and unanalyzed tables
   get other plans.
4. ``--reps`` rounds, one per hour after the registering hour, in time order, the last ending
   at midnight UTC (so the full side's day partition holds that day's earlier hours of history,
   whatever the time of day the bench runs). Each ingests ``--batches`` batches (one host x 60
   one-minute windows of that hour each; one host fewer with ``--explain``) through the real
   ingest service (in process: validation, host/device registration, overlap guard, hour pieces,
   binary COPY, dirty marks, one transaction each; no HTTP, so the box's noise moves it less)
   into each database, then rolls the hour up (``windows_batch_recompute``) in each; which side
   goes first alternates. The measured hours' rows all arrive after the last ANALYZE, on both
   sides, as the current hour's do in production (an hour the statistics already hold gets
   another plan).
5. Prints per round and as medians ``scale_ingest_ratio`` (full samples/s / empty samples/s) and
   ``scale_rollup_ratio`` (empty seconds / full seconds): goal >= 0.9, i.e. cost does not grow
   with history; ``bytes_per_window`` (all of ingest_sample's partitions, indexes and TOAST
   included, over its rows); and ``drop_partition_s``, the time to drop one full day partition.

``--explain DIR`` adds, after the rounds, one more batch and the last hour's rollup again on each
side under auto_explain (ANALYZE, BUFFERS), untimed, and writes the plans to DIR.

Everything shares the machine's cores; the script prints the load average with each round. The
defaults (30 days x 500 GPUs: 21.6 M windows, ~5.8 GB) take ~4 minutes on an idle 2-core box,
nearly all of it the fill; ``--days`` and ``--gpus`` size it up (the fill grows linearly; the
measured parts do not, which is the point).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time
import traceback
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import benchdb
import orjson
import psycopg

DB_NAME = os.environ.get("BENCH_DB_NAME", "greenkpi_bench") + "_scale"
EMPTY_DB_NAME = DB_NAME + "_empty"
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


def hosts_of(gpus: int) -> int:
    return (gpus + GPUS_PER_HOST - 1) // GPUS_PER_HOST


def bodies(gpus: int, hour: datetime, hosts: range) -> list[bytes]:
    """One body per host in ``hosts``: its GPUs x 60 one-minute windows of ``hour``."""
    out = []
    for h in hosts:
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


def fill_history(org_id: int, *, start: datetime, end: datetime) -> int:
    """One window per GPU per minute in [start, end), in SQL, a day per statement: plain INSERTs,
    no ON CONFLICT (its speculative insertion per row was part of a 30-day fill's ~20 minutes)."""
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
                -- in time order, as collectors send them (the BRIN index and the heap's layout)
                ORDER BY t, d.id
                """,
                [org_id, day, stop],
            )
            rows += cur.rowcount
            day = stop
    return rows


@contextmanager
def plans(path: Path):
    """Every statement run inside, its plan with actual rows, times and buffers (auto_explain at
    NOTICE on this process's connection), written to ``path``. COPY is not planned, so a batch's
    COPY is not among them."""
    from django.db import connection

    connection.ensure_connection()
    notices: list[str] = []

    def keep(diag) -> None:
        notices.append(diag.message_primary or "")

    pg = connection.connection
    pg.add_notice_handler(keep)
    with connection.cursor() as cur:
        cur.execute("LOAD 'auto_explain'")
        for name, value in EXPLAIN_SETTINGS.items():
            cur.execute(f"SET auto_explain.{name} = {value}")
    try:
        yield
    finally:
        with connection.cursor() as cur:
            cur.execute("SET auto_explain.log_min_duration = -1")
        pg.remove_notice_handler(keep)
        path.write_text("\n\n".join(notices))


EXPLAIN_SETTINGS = {
    "log_min_duration": 0,
    "log_analyze": "on",
    "log_buffers": "on",
    "log_timing": "on",
    "log_nested_statements": "on",
    "log_level": "notice",
}


class Driver:
    """What one side's process does, one command at a time (``serve``)."""

    def __init__(self, gpus: int) -> None:
        self.gpus = gpus

    def set_up(self, registering: datetime) -> None:
        from greenkpi.ingest.services import ingest_batch

        self.org, self.token = set_up(self.gpus)
        # every GPU registered by one batch, so the rounds ingest for known devices (as in
        # steady state); then that hour's rollup, the process's first (imports, catalog caches)
        for h, body in enumerate(bodies(self.gpus, registering, range(hosts_of(self.gpus)))):
            result = ingest_batch(token=self.token, idempotency_key=f"register-{h}", body=body)
            assert result.status == 201, result.body
        time_rollup(self.org.pk, registering)

    def fill(self, start: datetime, end: datetime) -> int:
        return fill_history(self.org.pk, start=start, end=end)

    def ingest(self, hour: datetime, hosts: range) -> tuple[float, int]:
        return time_ingest(
            self.token, bodies(self.gpus, hour, hosts), f"at-{hour:%Y%m%d%H}-from-{hosts.start}"
        )

    def rollup(self, hour: datetime) -> float:
        return time_rollup(self.org.pk, hour)

    def storage(self, day: date) -> tuple[int, int, str, int, float]:
        """ingest_sample's bytes (all partitions, indexes and TOAST) and rows; then ``day``'s
        partition: its name and rows, and the time to drop it."""
        from django.db import connection

        from greenkpi.ingest import partitions

        name = partitions.name_of(day)
        with connection.cursor() as cur:
            cur.execute(
                "SELECT (SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) "
                "FROM pg_inherits WHERE inhparent = 'ingest_sample'::regclass) "
                "+ pg_total_relation_size('ingest_sample'), (SELECT count(*) FROM ingest_sample)"
            )
            size, count = cur.fetchone()
            cur.execute(f"SELECT count(*) FROM {name}")
            day_rows = cur.fetchone()[0]
            t0 = time.perf_counter()
            cur.execute(f"DROP TABLE {name}")
            return size, count, name, day_rows, time.perf_counter() - t0

    def explain(self, directory: Path, side: str, hour: datetime, host: int) -> None:
        with plans(directory / f"{side}-ingest.txt"):
            self.ingest(hour, range(host, host + 1))
        with plans(directory / f"{side}-rollup.txt"):
            self.rollup(hour)


def serve(db_name: str, var_dir: str, gpus: int, pipe) -> None:
    benchdb.setup_django(db_name, var_dir)
    driver = Driver(gpus)
    while (message := pipe.recv()) is not None:
        command, args = message
        try:
            pipe.send((True, getattr(driver, command)(*args)))
        except Exception:
            pipe.send((False, traceback.format_exc()))


class Side:
    """One database and the process that drives it (its own Django and connection)."""

    def __init__(self, name: str, db_name: str, gpus: int) -> None:
        self.name, self.db_name = name, db_name
        benchdb.recreate_database(db_name, f"{VAR_DIR}-{name}")
        context = multiprocessing.get_context("spawn")
        self.pipe, theirs = context.Pipe()
        self.process = context.Process(
            target=serve, args=(db_name, f"{VAR_DIR}-{name}", gpus, theirs), daemon=True
        )
        self.process.start()

    def __call__(self, command: str, *args):
        self.pipe.send((command, args))
        ok, value = self.pipe.recv()
        if not ok:
            raise RuntimeError(f"{self.name} side, {command}:\n{value}")
        return value

    def sql(self, statement: str) -> None:
        with psycopg.connect(benchdb.url_of(self.db_name), autocommit=True) as conn:
            conn.execute(statement)

    def close(self) -> None:
        self.pipe.send(None)
        self.process.join(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=30, help="days of raw history")
    parser.add_argument("--gpus", type=int, default=500)
    # 50: every host of the default 500 GPUs; 20 batches were ~0.1 s of work, too little to time
    # on a shared box
    parser.add_argument("--batches", type=int, default=50, help="hosts ingested per round")
    parser.add_argument("--reps", type=int, default=12, choices=range(1, 24), metavar="1..23",
                        help="rounds, one hour of yesterday each")  # fmt: skip
    parser.add_argument("--explain", type=Path, metavar="DIR", help="write both sides' plans here")
    args = parser.parse_args()
    hosts = hosts_of(args.gpus)
    # the explained batch is one more host of the last round's hour
    batches = min(args.batches, hosts - 1 if args.explain else hosts)

    # The rounds' hours end yesterday at midnight, whatever the time now: their day partition then
    # holds the day's earlier hours of history on the full side (late in a day, the worst case),
    # and only the registering hour on the empty side.
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    hours = [midnight - timedelta(hours=args.reps - i) for i in range(args.reps)]
    registering = hours[0] - timedelta(hours=1)

    empty = Side("empty", EMPTY_DB_NAME, args.gpus)
    full = Side("full", DB_NAME, args.gpus)
    try:
        for side in (empty, full):
            side("set_up", registering)
        t0 = time.perf_counter()
        rows = full("fill", registering - timedelta(days=args.days), registering)
        print(f"history: {rows:,} windows ({args.days} days x {args.gpus} GPUs) in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip
        for side in (empty, full):
            side.sql("VACUUM ANALYZE ingest_sample")
        full.sql("CHECKPOINT")  # the cluster's: both databases

        ingest_ratios, rollup_ratios = [], []
        for i, hour in enumerate(hours):
            # which side goes first alternates (the second may find the other's work in caches)
            order = (empty, full) if i % 2 == 0 else (full, empty)
            ingested = {side.name: side("ingest", hour, range(batches)) for side in order}
            rolled = {side.name: side("rollup", hour) for side in order}
            rate = {name: samples / s for name, (s, samples) in ingested.items()}
            ingest_ratios.append(rate["full"] / rate["empty"])
            rollup_ratios.append(rolled["empty"] / rolled["full"])
            print(f"{hour:%H:%M}: ingest {rate['empty']:,.0f} -> {rate['full']:,.0f} samples/s "
                  f"({ingest_ratios[-1]:.2f}); one-hour rollup {rolled['empty']:.3f} -> "
                  f"{rolled['full']:.3f} s ({rollup_ratios[-1]:.2f}); load {load()}",
                  flush=True)  # fmt: skip

        if args.explain:
            args.explain.mkdir(parents=True, exist_ok=True)
            for side in (empty, full):
                side("explain", args.explain, side.name, hours[-1], batches)
            print(f"plans of one batch and one rollup per side in {args.explain}")

        # a whole day of the history (its first is partial)
        oldest = (registering - timedelta(days=args.days - 1)).date()
        size, count, dropped, day_rows, drop_s = full("storage", oldest)
    finally:
        for side in (empty, full):
            side.close()
    print(f"dropped {dropped} ({day_rows:,} windows, a full day) in {drop_s * 1000:.1f} ms")
    print(f"load average at the end: {load()}")
    print(f"scale_ingest_ratio: {statistics.median(ingest_ratios):.2f}")
    print(f"scale_rollup_ratio: {statistics.median(rollup_ratios):.2f}")
    print(f"bytes_per_window: {size / count:.0f}")
    print(f"drop_partition_s: {drop_s:.4f}")


if __name__ == "__main__":
    main()
