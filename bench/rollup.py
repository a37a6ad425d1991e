"""Rollup benchmark: the full hourly rollup versus a bare SQL GROUP BY over the same rows.

    .venv/bin/python bench/rollup.py [--gpus 1000] [--hours 24] [--repeat 5] [--share-every 0]
                                     [--serial]

What it does (issue 4, "Benchmark: bench/rollup.py"):

1. (Re)creates the PostgreSQL database ``greenkpi_bench_rollup`` and migrates it.
2. Creates one organisation (site FR, PUE 1.3, a tariff) with ``--gpus`` GPUs on hosts of 10, and
   generates one-minute samples for ``--hours`` hours in SQL (1,000 GPUs x 24 h = 1.44 M rows),
   with varying energy, busy and SM fractions and idle seconds. ``--share-every N`` gives every
   N-th GPU two attribution shares per window (0 = none, as the issue's fleet).
3. Times the full rollup of every window (``kpis.services.windows_recompute``: claims, the
   batch's sums and priced insert (24 hours per batch: one batch here), delete + insert and the
   windows' bookkeeping in one transaction, run record), and checks the rollup's energy equals
   the samples' energy. It replaces, so every repeat does the same work.
4. Times ``SELECT device_id, date_trunc('hour', window_start), sum(energy_j) ... GROUP BY 1, 2``
   over the same rows, fetching every result row.

Paired and interleaved: one untimed warm-up of each, then ``--repeat`` pairs (rollup then
group-by, group-by then rollup, alternately), each pair's ratio measured back to back, so that
load from other processes on the machine moves both sides of a ratio alike. Prints every pair,
the range of the ratios, and last three lines: ``rollup_s`` and ``groupby_s`` (medians) and
``rollup_vs_groupby_ratio`` (the median of the pairs' ratios; issue 16's target <= 2). ``--serial``
runs both sides without parallel workers (``max_parallel_workers_per_gather = 0``): the ratio of the
work done rather than of the wall-clock time on an idle machine.

With ``--serial`` and the server on this machine, also ``rollup_vs_groupby_cpu_ratio``: the same
pairs in the CPU seconds of each side's PostgreSQL backend (/proc/PID/schedstat), which the load
of a shared box does not move. (On such a box the wall-clock ratio moves with the load: a serial
statement, such as the rollup's INSERT, gets one process's share of the CPU, a parallel one three.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import UTC, datetime, timedelta

import benchdb
import psycopg

# BENCH_DB_NAME (as bench/ingest.py): helpers sharing one PostgreSQL each bench in their own database.
DB_NAME = os.environ.get("BENCH_DB_NAME", "greenkpi_bench") + "_rollup"
DB_URL = benchdb.url_of(DB_NAME)
VAR_DIR = os.environ.get("GREENKPI_VAR_DIR", "/tmp/gk-bench-rollup-var")
GPUS_PER_HOST = 10


def recreate_database() -> None:
    benchdb.recreate_database(DB_NAME, VAR_DIR)


def setup_django() -> None:
    benchdb.setup_django(DB_NAME, VAR_DIR)


def populate(*, gpus: int, hours: int, start: datetime, share_every: int) -> int:
    """Inventory through the ORM, samples generated inside PostgreSQL; returns the org id."""
    from django.db import connection

    from greenkpi.carbon.models import ElectricityTariff
    from greenkpi.ingest.models import IngestBatch
    from greenkpi.inventory.models import Device, Host
    from greenkpi.inventory.services import organisation_create, site_create, team_create

    org = organisation_create(name="Bench", slug="bench")
    teams = [team_create(organisation=org, name=n, slug=n) for n in ("vision", "nlp", "speech")]
    site = site_create(organisation=org, name="paris", grid_zone="FR", pue=1.3)
    ElectricityTariff.objects.create(
        site=site, valid_from=start - timedelta(days=1), price_per_kwh=0.2, currency="EUR"
    )
    hosts = Host.objects.bulk_create(
        [
            Host(organisation=org, site=site, hostname=f"node-{h:04d}", default_team=teams[h % 3])
            for h in range((gpus + GPUS_PER_HOST - 1) // GPUS_PER_HOST)
        ]
    )
    Device.objects.bulk_create(
        [
            Device(host=hosts[g // GPUS_PER_HOST], kind="gpu", uuid=f"GPU-{g:05d}")
            for g in range(gpus)
        ]
    )
    batch = IngestBatch.objects.create(organisation=org, idempotency_key="bench", fingerprint="-")
    with connection.cursor() as cur:
        # One row per GPU and minute; values vary with the device and the minute, deterministically.
        cur.execute(
            """
            INSERT INTO ingest_sample (device_id, window_start, window_end, energy_j, method,
                power_avg_w, power_peak_w, util_busy, util_sm, mem_used_bytes, mem_total_bytes,
                temperature_c, idle_s, batch_id)
            SELECT d.id, t, t + interval '60 seconds',
                   e, 'counter', e / 60, e / 50, u, u * 0.6, 10737418240, 85899345920, 60,
                   CASE WHEN u < 0.05 THEN 60 ELSE 0 END, %s
            FROM (SELECT id FROM inventory_device WHERE host_id IN
                    (SELECT id FROM inventory_host WHERE organisation_id = %s)) d
            CROSS JOIN generate_series(%s::timestamptz, %s::timestamptz - interval '1 minute',
                                       interval '1 minute') t
            CROSS JOIN LATERAL (SELECT ((d.id * 7 + extract(epoch FROM t)::bigint / 60) %% 100)
                                       / 100.0 AS u) uu
            CROSS JOIN LATERAL (SELECT 6000 + 30000 * u AS e) ee
            ORDER BY t, d.id
            """,
            [batch.pk, org.pk, start, start + timedelta(hours=hours)],
        )
        if share_every:
            # Two shares per window for every N-th GPU: 70 % to a model run, 30 % unattributed.
            cur.execute(
                """
                UPDATE ingest_sample s SET shares = jsonb_build_array(
                    jsonb_build_object('e', s.energy_j * 0.7, 'k', 'utilization', 't', %s::bigint,
                                       'm', 'llama-7b', 'r', 'run-1'),
                    jsonb_build_object('e', s.energy_j * 0.3, 'k', 'unattributed'))
                WHERE s.device_id %% %s = 0
                """,
                [teams[1].pk, share_every],
            )
    with psycopg.connect(DB_URL, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return org.pk


class ServerCpu:
    """CPU seconds one PostgreSQL backend has spent, from /proc/PID/schedstat (ns); None when
    /proc does not have it (the server runs elsewhere). Only with ``--serial``: parallel workers
    are other processes, and the postmaster's count of its reaped children mixes in every other
    session's."""

    def __init__(self, backend_pid: int, *, serial: bool) -> None:
        self.path = f"/proc/{backend_pid}/schedstat" if serial else ""

    def now(self) -> float | None:
        try:
            with open(self.path) as f:
                return int(f.read().split()[0]) / 1e9
        except (OSError, IndexError, ValueError):
            return None


def cpu_spent(meter: ServerCpu, before: float | None) -> float | None:
    after = meter.now()
    return None if before is None or after is None else after - before


def time_rollup(
    org_id: int, start: datetime, hours: int, *, serial: bool
) -> tuple[float, float | None]:
    from django.db import connection

    from greenkpi.kpis import dirty, services

    windows = [(org_id, start + timedelta(hours=h)) for h in range(hours)]
    dirty.windows_mark_dirty(organisation_id=org_id, window_starts=[w[1] for w in windows])
    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        meter = ServerCpu(cur.fetchone()[0], serial=serial)
    cpu0, t0 = meter.now(), time.perf_counter()
    run = services.windows_recompute(windows=windows, kind="bench")
    elapsed, cpu = time.perf_counter() - t0, cpu_spent(meter, cpu0)
    assert run.windows_done == hours and run.windows_failed == 0, run.error
    return elapsed, cpu


def time_groupby(*, serial: bool) -> tuple[float, int, float | None]:
    options = "-c max_parallel_workers_per_gather=0" if serial else ""
    with psycopg.connect(DB_URL, autocommit=True, options=options) as conn:
        meter = ServerCpu(conn.info.backend_pid, serial=serial)
        cpu0, t0 = meter.now(), time.perf_counter()
        rows = conn.execute(
            "SELECT device_id, date_trunc('hour', window_start), sum(energy_j) "
            "FROM ingest_sample GROUP BY 1, 2"
        ).fetchall()
        return time.perf_counter() - t0, len(rows), cpu_spent(meter, cpu0)


def check(org_id: int, gpus: int, hours: int) -> None:
    from django.db.models import Sum

    from greenkpi.ingest.models import Sample
    from greenkpi.kpis.models import HourlyRollup

    rolled = HourlyRollup.objects.filter(organisation_id=org_id).aggregate(e=Sum("energy_kwh"))["e"]
    raw = Sample.objects.aggregate(e=Sum("energy_j"))["e"] / 3.6e6
    assert abs(rolled - raw) <= 1e-9 * raw, (rolled, raw)
    devices = HourlyRollup.objects.filter(organisation_id=org_id).values("device_id").distinct()
    assert devices.count() == gpus
    assert HourlyRollup.objects.values("hour").distinct().count() == hours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gpus", type=int, default=1000)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--share-every", type=int, default=0)
    parser.add_argument("--serial", action="store_true", help="no parallel workers on either side")
    args = parser.parse_args()

    start = datetime(2026, 1, 5, tzinfo=UTC)
    print(f"database {DB_NAME}: migrating", flush=True)
    recreate_database()
    setup_django()
    t0 = time.perf_counter()
    org_id = populate(gpus=args.gpus, hours=args.hours, start=start, share_every=args.share_every)
    with psycopg.connect(DB_URL) as conn:
        samples = conn.execute("SELECT count(*) FROM ingest_sample").fetchone()[0]
        shares = conn.execute(
            "SELECT coalesce(sum(jsonb_array_length(shares)), 0) FROM ingest_sample"
        ).fetchone()[0]
    print(f"generated {samples:,} samples, {shares:,} shares in {time.perf_counter() - t0:.1f} s")

    if args.serial:
        from django.db import connection

        with connection.cursor() as cur:
            cur.execute("SET max_parallel_workers_per_gather = 0")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    time_rollup(
        org_id, start, args.hours, serial=args.serial
    )  # warm-up: caches, plans, connections
    time_groupby(serial=args.serial)
    rollups, groupbys, ratios, cpu_ratios = [], [], [], []
    for i in range(args.repeat):
        if i % 2 == 0:
            rollup_s, rollup_cpu = time_rollup(org_id, start, args.hours, serial=args.serial)
            groupby_s, rows, groupby_cpu = time_groupby(serial=args.serial)
        else:
            groupby_s, rows, groupby_cpu = time_groupby(serial=args.serial)
            rollup_s, rollup_cpu = time_rollup(org_id, start, args.hours, serial=args.serial)
        rollups.append(rollup_s)
        groupbys.append(groupby_s)
        ratios.append(rollup_s / groupby_s)
        cpu = ""
        if rollup_cpu is not None and groupby_cpu:
            cpu_ratios.append(rollup_cpu / groupby_cpu)
            cpu = f"; CPU {rollup_cpu:.2f} s vs {groupby_cpu:.2f} s, ratio {cpu_ratios[-1]:.2f}"
        print(
            f"pair {i + 1}: rollup {rollup_s:.3f} s, group-by {groupby_s:.3f} s ({rows:,} rows), "
            f"ratio {ratios[-1]:.2f}{cpu}",
            flush=True,
        )
    check(org_id, args.gpus, args.hours)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"ratio_range: {min(ratios):.2f}-{max(ratios):.2f}")
    if cpu_ratios:
        print(f"rollup_vs_groupby_cpu_ratio: {statistics.median(cpu_ratios):.2f}")
    print(f"rollup_s: {statistics.median(rollups):.3f}")
    print(f"groupby_s: {statistics.median(groupbys):.3f}")
    print(f"rollup_vs_groupby_ratio: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
