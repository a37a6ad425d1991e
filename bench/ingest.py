"""End-to-end ingest benchmark: the real stack over HTTP versus raw binary COPY, in one run.

    .venv/bin/python bench/ingest.py [--seconds 20] [--workers 2] [--connections 2] [--batch 1000]

What it does (issue 2, "Benchmark: bench/ingest.py"):

1. (Re)creates the PostgreSQL database ``greenkpi_bench``, migrates it with the project's own
   migrations and creates an organisation, teams and a collector token with the management commands.
2. Starts gunicorn (``greenkpi.wsgi:application``, the project's settings, sync workers, persistent
   DB connections) on a free port and waits until it answers.
3. Pre-generates realistic batches (one host each: ~10 GPUs x 60 s windows, 1-2 attribution shares
   per sample, every (device, window) distinct so nothing is a duplicate), then a SEPARATE process
   posts them over ``--connections`` concurrent keep-alive clients for ``--seconds``. It counts the
   201s, keeps per-request latencies, and the bench checks the stored row count equals the samples
   the server accepted.
4. Reads the stored rows back, TRUNCATEs, and times raw binary COPY (psycopg, FORMAT BINARY,
   batches of 10k, one client, commit per batch) of the SAME rows into the SAME table (same PK,
   same BRIN index; a window's shares are on its row since issue 16). Then once more without the
   shares (the baseline's definition before issue 16, when shares had a table of their own).

5. Then ``--rounds`` short paired rounds (``--round-batches`` POSTs, then COPY of the rows they
   stored, each into an emptied table): each round's ratio, and their median as
   ``ingest_vs_copy_paired_ratio`` (same definition, read as a median with its range).

The last lines are the figures: ``ingest_samples_per_s``, ``copy_rows_per_s`` (the rows as stored,
shares on them), ``ingest_vs_copy_paired_ratio`` (with ``--rounds``) and, last,
``ingest_vs_copy_ratio``, the one-run figure issue 16 asks for.
Everything (server, client, PostgreSQL) shares the machine's cores, so compare ratios within one
run rather than absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing as mp
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg

from greenkpi.ingest.columns import SAMPLE_COLUMNS, SAMPLE_PG_TYPES

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")
# BENCH_DB_NAME: helpers sharing one PostgreSQL each bench in their own database.
DB_NAME = os.environ.get("BENCH_DB_NAME", "greenkpi_bench")
DB_URL = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + DB_NAME
VAR_DIR = os.environ.get("GREENKPI_VAR_DIR", "/tmp/gk-bench-var")
COPY_BATCH = 10_000
TEAMS = ("vision", "nlp", "speech")
MODELS = ("resnet50", "llama-7b", "whisper-large", "bert-base", "vit-h14")
GPUS_PER_HOST = 10
WINDOW_S = 60

SAMPLE_TYPES = SAMPLE_PG_TYPES


def log(message: str) -> None:
    print(message, flush=True)


# --- set-up ------------------------------------------------------------------------------------


def bench_env(rate_limit: int) -> dict[str, str]:
    """The server's environment: the project's settings module, pointed at the bench database."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="greenkpi.settings",
        DATABASE_URL=DB_URL,
        GREENKPI_VAR_DIR=VAR_DIR,
        INGEST_RATE_PER_MINUTE=str(rate_limit),  # the bench measures throughput, not the limiter
        # Batches reach back in time (~4 days at the defaults): keep them all inside the limit;
        # RAW_RETENTION_DAYS (400) must exceed it, and day partitions are made for this range.
        INGEST_MAX_AGE_DAYS="60",
        DB_CONN_MAX_AGE=env.get("DB_CONN_MAX_AGE", "600"),
        # The production stack: Redis is the cache the per-token rate limiter counts in.
        REDIS_URL=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"),
        LOG_LEVEL="WARNING",
        DEBUG="false",
    )
    return env


def recreate_database() -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")


def drop_database() -> None:
    with suppress(Exception), psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


def manage(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [PY, str(ROOT / "manage.py"), *args],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def set_up_tenant(env: dict[str, str]) -> str:
    """Migrate, create the organisation, its teams and a token; the token's secret."""
    manage(env, "migrate", "--verbosity", "0")
    org = manage(env, "create_org", "Bench ML", "--slug", "bench")
    for team in TEAMS:
        manage(env, "create_team", org, team.title(), "--slug", team)
    return manage(env, "create_token", org, "--team", TEAMS[0]).splitlines()[-1].strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def gunicorn(env: dict[str, str], workers: int) -> Iterator[tuple[int, int]]:
    """A gunicorn serving the project on a free port (its port and master pid); always stopped,
    with its workers."""
    port = free_port()
    log_path = Path(VAR_DIR) / "bench-gunicorn.log"
    log_file = log_path.open("w")
    proc = subprocess.Popen(
        [
            str(Path(PY).parent / "gunicorn"),
            "greenkpi.wsgi:application",
            "--worker-class",
            "sync",
            "--workers",
            str(workers),
            "--bind",
            f"127.0.0.1:{port}",
            "--timeout",
            "120",
            # gunicorn writes no access log unless asked: it is not part of the measured path.
        ],
        env=env,
        cwd=ROOT,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # one process group: master and workers are stopped together
    )
    try:
        wait_until_up(port, proc, log_path)
        yield port, proc.pid
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log_file.close()


def wait_until_up(port: int, proc: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"gunicorn exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}"
            )
        with suppress(OSError):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/api/schema/")
            conn.getresponse().read()
            conn.close()
            return
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer on port {port} within 60 s")


# --- where the CPU goes (a breakdown print; not part of the figures) -----------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 if it is gone or unreadable)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children(pid: int) -> list[int]:
    """The direct children of a process (gunicorn's workers), from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with suppress(OSError), open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
    return found


def backend_pids(conn: psycopg.Connection) -> list[int]:
    """The PostgreSQL backends connected to the bench database, this connection's excluded."""
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
    ).fetchall()
    return [row[0] for row in rows]


def cpu_total(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# --- realistic batches ---------------------------------------------------------------------------


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def make_bodies(count: int, batch: int, hosts: int, seed: int = 7) -> list[bytes]:
    """``count`` JSON bodies; batch k belongs to host k % hosts and covers that host's next windows.

    A batch is one host's facts plus ``batch`` samples: GPUS_PER_HOST GPUs x consecutive 60 s
    windows. Each sample's measurements come from a pool of varied readings (most GPUs run one job,
    a quarter two processes, a few are idle and unclaimed), so bodies are built by joining bytes:
    a few seconds for thousands of batches instead of minutes.
    """
    rng = random.Random(seed)
    pool = [sample_tail(rng) for _ in range(4096)]
    windows_per_batch = -(-batch // GPUS_PER_HOST)
    batches_per_host = -(-count // hosts)
    # Oldest data first, ending an hour ago, so no window is in the future or too old.
    span = timedelta(seconds=batches_per_host * windows_per_batch * WINDOW_S)
    origin = datetime.now(UTC).replace(second=0, microsecond=0) - span - timedelta(hours=1)
    clock = iso(datetime.now(UTC))
    bodies = []
    for k in range(count):
        host, nth = k % hosts, k // hosts
        hostname = f"gpu-node-{host:04d}.bench"
        uuids = [f"GPU-{uuid.UUID(int=(host << 16) + g + 1)}" for g in range(GPUS_PER_HOST)]
        heads = [f'{{"device_uuid":"{u}","device_kind":"gpu",'.encode() for u in uuids]
        facts = {
            "hostname": hostname,
            "agent_version": "greenkpi-collector/0.1.0",
            "clock": clock,
            "spool_depth": 0,
            "devices": [
                {"uuid": u, "kind": "gpu", "model": "NVIDIA H100 80GB HBM3", "power_limit_w": 700}
                for u in uuids
            ],
        }
        first = origin + timedelta(seconds=nth * windows_per_batch * WINDOW_S)
        parts: list[bytes] = []
        for w in range(windows_per_batch):
            t0 = first + timedelta(seconds=w * WINDOW_S)
            times = f'"start":"{iso(t0)}","end":"{iso(t0 + timedelta(seconds=WINDOW_S))}",'.encode()
            for g in range(min(GPUS_PER_HOST, batch - len(parts))):
                parts.append(heads[g] + times + pool[rng.randrange(len(pool))])
        bodies.append(
            b'{"schema_version":1,"host":'
            + orjson.dumps(facts)
            + b',"samples":['
            + b",".join(parts)
            + b"]}"
        )
    return bodies


def sample_tail(rng: random.Random) -> bytes:
    """The measurement part of one GPU window (after device and times), as JSON object members."""
    busy = rng.random()
    power = 70.0 + 630.0 * busy * rng.uniform(0.8, 1.0)
    energy = round(power * WINDOW_S, 3)
    sample: dict[str, Any] = {
        "energy_j": energy,
        "method": "counter",
        "power_avg_w": round(power, 2),
        "power_peak_w": round(min(power * rng.uniform(1.0, 1.3), 700.0), 2),
        "util_busy": round(busy, 4),
        "util_sm": round(busy * rng.uniform(0.5, 1.0), 4),
        "mem_used_bytes": rng.randrange(1, 80) * 2**30,
        "mem_total_bytes": 80 * 2**30,
        "temperature_c": round(35 + 50 * busy, 1),
        "idle_s": round(WINDOW_S * (1 - busy) * 0.5, 2),
    }
    roll = rng.random()
    if roll < 0.7:  # one job owns the GPU
        sample["shares"] = [share(rng, energy)]
    elif roll < 0.95:  # two processes share it
        part = round(energy * rng.uniform(0.2, 0.8), 3)
        sample["shares"] = [share(rng, part), share(rng, round(energy - part, 3))]
    return orjson.dumps(sample)[1:]  # drop the "{": the head supplies it


# --slurm: every share names a Slurm job (issue 11) instead of a team and model, so the batch's
# jobs are upserted (SchedulerJob) and the shares carry their ids; a worst case of up to 40
# distinct jobs per batch (a real node holds a few).
SLURM = {"on": False}


def share(rng: random.Random, energy: float) -> dict[str, Any]:
    job = rng.randrange(40)
    if SLURM["on"]:
        return {
            "energy_j": energy,
            "method": "utilization",
            "run": f"slurm:bench:{1000 + job}",
            "pid": rng.randrange(1000, 60000),
            "scheduler": {
                "kind": "slurm",
                "cluster": "bench",
                "job_id": str(1000 + job),
                "user": f"user{job % 7}",
                "account": f"acct{job % 4}",
                "partition": "gpu",
                "qos": "normal",
                "job_name": f"train-{MODELS[job % len(MODELS)]}",
                "nodes": "node[001-004]",
            },
        }
    run = f"run-{job:04d}-{rng.randrange(10):02d}"
    return {
        "energy_j": energy,
        "method": "utilization",
        "team": TEAMS[job % len(TEAMS)],
        "model": MODELS[job % len(MODELS)],
        "run": run,
        "pid": rng.randrange(1000, 60000),
        "tags": {"job": f"job-{job}", "queue": "train"},
    }


# --- the load generator (its own process) ------------------------------------------------------


def client_main(
    port: int,
    secret: str,
    bodies: list[bytes],
    connections: int,
    seconds: float,
    start_evt: Any,
    results: Any,
    prefix: str = "bench",
) -> None:
    """Post bodies from ``connections`` threads until time is up or the bodies run out."""
    lock = threading.Lock()
    cursor = iter(range(len(bodies)))
    out: dict[str, Any] = {"latencies": [], "status": {}, "accepted": 0, "errors": []}

    def next_index() -> int | None:
        with lock:
            return next(cursor, None)

    def worker(deadline: float) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {
            "Authorization": f"Bearer {secret}",
            "Content-Type": "application/json",
            "Connection": "keep-alive",
        }
        latencies: list[float] = []
        while time.monotonic() < deadline:
            i = next_index()
            if i is None:
                break
            headers["Idempotency-Key"] = f"{prefix}-{i}"
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/api/v1/ingest/", body=bodies[i], headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
            except (OSError, http.client.HTTPException):
                # gunicorn's sync workers close every connection after a response; reconnect.
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                conn.request("POST", "/api/v1/ingest/", body=bodies[i], headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
            latencies.append(time.perf_counter() - t0)
            with lock:
                out["status"][resp.status] = out["status"].get(resp.status, 0) + 1
                if resp.status == 201:
                    out["accepted"] += orjson.loads(payload)["accepted"]
                elif len(out["errors"]) < 5:
                    out["errors"].append(payload[:500].decode(errors="replace"))
            if resp.will_close:
                conn.close()
        conn.close()
        with lock:
            out["latencies"].extend(latencies)

    start_evt.wait()
    cpu0 = time.process_time()
    t0 = time.monotonic()
    deadline = t0 + seconds
    threads = [threading.Thread(target=worker, args=(deadline,)) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out["elapsed"] = time.monotonic() - t0
    out["cpu_s"] = time.process_time() - cpu0
    out["exhausted"] = next_index() is None
    results.put(out)


def run_load(
    port: int,
    secret: str,
    bodies: list[bytes],
    connections: int,
    seconds: float,
    prefix: str = "bench",
) -> dict[str, Any]:
    ctx = mp.get_context("fork")  # the bodies are inherited, not pickled
    start_evt = ctx.Event()
    results = ctx.Queue()
    proc = ctx.Process(
        target=client_main,
        args=(port, secret, bodies, connections, seconds, start_evt, results, prefix),
    )
    proc.start()
    try:
        start_evt.set()
        out = results.get(timeout=seconds + 180)
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
    return out


# --- the raw COPY baseline -----------------------------------------------------------------------


def stored_rows(conn: psycopg.Connection, limit: int) -> list[tuple]:
    """The stored samples (their shares on the row) in arrival order."""
    cols = ", ".join(SAMPLE_COLUMNS)
    return conn.execute(
        f"SELECT {cols} FROM ingest_sample ORDER BY batch_id, window_start, device_id LIMIT %s",
        [limit],
    ).fetchall()


def reset_tables(conn: psycopg.Connection) -> None:
    conn.execute("TRUNCATE ingest_sample")
    conn.commit()
    conn.execute("CHECKPOINT")  # start from clean shared buffers, as the ingest run did (nearly)
    conn.commit()


def copy_rows(conn: psycopg.Connection, samples: list[tuple]) -> tuple[float, float, float]:
    """Seconds to binary-COPY the samples in 10k batches; and the CPU seconds this client and its
    PostgreSQL backend spent meanwhile."""
    from psycopg.types.json import set_json_dumps

    # The fastest psycopg way to send jsonb (the shares): lists of dicts straight to the binary
    # dumper, serialised by orjson, as the ingest writer does.
    set_json_dumps(orjson.dumps, context=conn)
    sample_sql = f"COPY ingest_sample ({', '.join(SAMPLE_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
    backend = conn.info.backend_pid
    cpu0, backend0 = time.process_time(), cpu_seconds(backend)
    t0 = time.perf_counter()
    with conn.cursor() as cur:
        for lo in range(0, len(samples), COPY_BATCH):
            with cur.copy(sample_sql) as copy:
                copy.set_types(list(SAMPLE_TYPES))
                for row in samples[lo : lo + COPY_BATCH]:
                    copy.write_row(row)
            conn.commit()
    elapsed = time.perf_counter() - t0
    return elapsed, time.process_time() - cpu0, cpu_seconds(backend) - backend0


def warm_up(port: int, secret: str, args: argparse.Namespace, prefix: str) -> None:
    """Each worker imports lazily and opens its DB connection on first use."""
    warm = make_bodies(args.workers * 2, args.batch, args.hosts, seed=99)
    for i, body in enumerate(warm):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {
            "Authorization": f"Bearer {secret}",
            "Idempotency-Key": f"{prefix}-{i}",
            "Content-Type": "application/json",
        }
        c.request("POST", "/api/v1/ingest/", body=body, headers=headers)
        r = c.getresponse()
        if r.status != 201:
            raise RuntimeError(f"warm-up got {r.status}: {r.read()[:500]!r}")
        r.read()
        c.close()


def paired_rounds(env: dict[str, str], secret: str, args: argparse.Namespace) -> list[float]:
    """``--rounds`` short rounds, each ingest then COPY of the rows it stored, both into an
    emptied table after a CHECKPOINT; the ratio of each round. On the shared 2-core development
    box either side's speed moves by ±25 % within seconds (2026-12-07: rounds of one run read
    ingest 57,000-81,000 samples/s and COPY 140,000-199,000 rows/s), so the one ratio of the long
    run can land anywhere in that range; the rounds give its spread and a median."""
    per_round = args.round_batches
    bodies = make_bodies(args.rounds * per_round, args.batch, args.hosts, seed=11)
    ratios = []
    with gunicorn(env, args.workers) as (port, _), psycopg.connect(DB_URL) as conn:
        warm_up(port, secret, args, "warm-rounds")
        for r in range(args.rounds):
            reset_tables(conn)
            mine = bodies[r * per_round : (r + 1) * per_round]
            result = run_load(port, secret, mine, args.connections, 600, prefix=f"round{r}")
            if result["status"] != {201: per_round}:
                raise RuntimeError(f"round {r}: {result['status']} {result['errors']}")
            ingest_rate = result["accepted"] / result["elapsed"]
            samples = stored_rows(conn, args.copy_rows)
            reset_tables(conn)
            copy_rate = len(samples) / copy_rows(conn, samples)[0]
            ratios.append(ingest_rate / copy_rate)
            log(
                f"round {r + 1}: ingest {ingest_rate:,.0f} samples/s, COPY {copy_rate:,.0f} rows/s, "
                f"ratio {ratios[-1]:.3f} (load {loadavg()})"
            )
    return ratios


# --- main ----------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="bounded posting time")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--connections", type=int, default=2, help="concurrent client connections")
    parser.add_argument("--batch", type=int, default=1000, help="samples per POST")
    parser.add_argument("--hosts", type=int, default=50, help="distinct hosts posting")
    parser.add_argument(
        "--max-rate",
        type=float,
        default=150_000,
        help="samples/s the pre-generated bodies must last for (caps memory; the run stops early "
        "and says so if the server is faster)",
    )
    parser.add_argument("--copy-rows", type=int, default=2_000_000, help="max rows for COPY")
    parser.add_argument("--keep-db", action="store_true", help="leave greenkpi_bench behind")
    parser.add_argument("--slurm", action="store_true", help="shares name Slurm jobs (issue 11)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="then this many short paired rounds (ingest, then COPY of its rows): the ratio's "
        "spread on this machine and its median (0: none)",
    )
    parser.add_argument("--round-batches", type=int, default=100, help="POSTs per round")
    args = parser.parse_args()
    SLURM["on"] = args.slurm

    Path(VAR_DIR).mkdir(parents=True, exist_ok=True)
    count = max(10, int(args.seconds * args.max_rate / args.batch))
    log(f"pre-generating {count} batches of {args.batch} samples ({args.hosts} hosts) ...")
    t0 = time.perf_counter()
    bodies = make_bodies(count, args.batch, args.hosts)
    mean_kb = statistics.fmean(len(b) for b in bodies[:50]) / 1024
    log(f"  {time.perf_counter() - t0:.1f} s; {mean_kb:.0f} KiB per body")

    env = bench_env(rate_limit=10**9)
    recreate_database()
    try:
        secret = set_up_tenant(env)
        with gunicorn(env, args.workers) as (port, master):
            log(
                f"gunicorn: {args.workers} sync workers on :{port}; posting for {args.seconds:.0f} s "
                f"over {args.connections} connections ..."
            )
            warm_up(port, secret, args, "warm")
            with psycopg.connect(DB_URL, autocommit=True) as conn:
                conn.execute("TRUNCATE ingest_sample")
                conn.execute("CHECKPOINT")
                backends = backend_pids(conn)
            workers = children(master)
            load_before = loadavg()
            cpu_before = {pid: cpu_seconds(pid) for pid in [master, *workers, *backends]}
            result = run_load(port, secret, bodies, args.connections, args.seconds)
            with psycopg.connect(DB_URL, autocommit=True) as conn:
                backends = sorted({*backends, *backend_pids(conn)})
            cpu_used = {
                pid: cpu_seconds(pid) - cpu_before.get(pid, 0.0)
                for pid in [master, *workers, *backends]
            }
            load_after = loadavg()
        del bodies

        with psycopg.connect(DB_URL) as conn:
            stored = conn.execute("SELECT count(*) FROM ingest_sample").fetchone()[0]
            stored_shares = conn.execute(
                "SELECT coalesce(sum(jsonb_array_length(shares)), 0) FROM ingest_sample"
            ).fetchone()[0]
            conn.commit()
            ok = result["status"].get(201, 0)
            elapsed = result["elapsed"]
            ingest_rate = result["accepted"] / elapsed
            lat = result["latencies"]
            log(f"HTTP status counts: {dict(sorted(result['status'].items()))}")
            for err in result["errors"]:
                log(f"  non-201 body: {err}")
            if result["exhausted"]:
                log(f"NOTE: all pre-generated bodies were posted before {args.seconds:.0f} s")
            log(
                f"ingest: {ok} batches = {result['accepted']} samples accepted in {elapsed:.2f} s; "
                f"stored samples {stored}, shares {stored_shares} "
                f"({stored_shares / max(stored, 1):.2f} per sample)"
            )
            log(
                f"request latency ({args.batch} samples/POST): p50 {pct(lat, 0.5) * 1000:.1f} ms, "
                f"p99 {pct(lat, 0.99) * 1000:.1f} ms, max {max(lat, default=0) * 1000:.1f} ms"
            )
            if stored != result["accepted"] or ok != sum(result["status"].values()):
                log("FAIL: stored rows differ from accepted samples, or some requests failed")
                return 1

            samples = stored_rows(conn, args.copy_rows)
            reset_tables(conn)
            copy_s, copy_client_cpu, copy_backend_cpu = copy_rows(conn, samples)
            copy_rate = len(samples) / copy_s
            # For comparison with the layout before issue 16 (shares in a table of their own,
            # left out of the baseline then): the same samples without their shares.
            bare = [(*row[:-1], None) for row in samples]
            reset_tables(conn)
            copy_bare_s = copy_rows(conn, bare)[0]
            copy_bare_rate = len(samples) / copy_bare_s
            log(
                f"COPY baseline (binary, {COPY_BATCH} rows per COPY, one client, commit per batch) "
                f"of the same {len(samples)} samples, shares on the row, into ingest_sample "
                f"(PK (device_id, window_start) + BRIN(window_start)): {copy_s:.2f} s"
            )
            log(
                f"COPY of the same samples without their shares: {copy_bare_s:.2f} s = "
                f"{copy_bare_rate:,.0f} samples/s (the shares column costs "
                f"{100 * (1 - copy_rate / copy_bare_rate):.0f}% of COPY speed)"
            )
            per_k = 1000 / max(result["accepted"], 1)
            copy_k = 1000 / max(len(samples), 1)
            log(
                "CPU ms per 1000 samples (from /proc; where the time goes): ingest: gunicorn "
                f"workers {sum(cpu_used[p] for p in workers) * 1000 * per_k:.1f}, their "
                f"PostgreSQL backends {sum(cpu_used[p] for p in backends) * 1000 * per_k:.1f}, "
                f"load client {result['cpu_s'] * 1000 * per_k:.1f}, gunicorn master "
                f"{cpu_used[master] * 1000 * per_k:.1f} (wall {elapsed * 1000 * per_k:.1f}); "
                f"COPY: client {copy_client_cpu * 1000 * copy_k:.1f}, its backend "
                f"{copy_backend_cpu * 1000 * copy_k:.1f} (wall {copy_s * 1000 * copy_k:.1f})"
            )
            log(
                f"load average during ingest: {load_before} -> {load_after}; after COPY: {loadavg()}"
            )
            log(f"ingest_vs_copy_without_shares_ratio: {ingest_rate / copy_bare_rate:.3f}")
            log("copy_rows_per_s: the same rows as stored, shares included (one row per window).")
        paired = paired_rounds(env, secret, args) if args.rounds else []
        log(f"ingest_samples_per_s: {ingest_rate:.0f}")
        log(f"copy_rows_per_s: {copy_rate:.0f}")
        if paired:
            log(f"ingest_vs_copy_paired_ratio: {statistics.median(paired):.3f} (median of "
                f"{len(paired)} rounds, {min(paired):.3f}-{max(paired):.3f})")  # fmt: skip
        log(f"ingest_vs_copy_ratio: {ingest_rate / copy_rate:.3f}")
        return 0
    finally:
        if not args.keep_db:
            drop_database()
        shutil.rmtree(Path(VAR_DIR) / "cache", ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
