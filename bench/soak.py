"""Soak: many simulated collectors through a faulty network, a server restart and a database
restart; nothing may be lost or stored twice (checklist scenario 30, sized for a 2-core box).

What it does:

1. Starts a throw-away PostgreSQL cluster of its own (initdb under /tmp, port 8279; never the
   shared server), migrates a database and creates an organisation, a team and a token.
2. Starts gunicorn (port 8278) and, in front of it, the fault-injecting asyncio TCP proxy of
   tests/testsupport (port 8277): resets on ``--fault-rate`` of connections, and as many again
   get ``--latency-s`` added to every chunk.
3. Runs ``--collectors`` simulated collectors in this process (asyncio): each samples power at
   1 Hz, closes a ``--window-s`` window on wall-clock boundaries, keeps unsent windows in memory
   and posts them (one Idempotency-Key per batch, the same key on every retry), retrying network
   errors, 5xx and 429 with capped backoff, as the real collector does.
4. A third of the way in, gunicorn is stopped and started again; two thirds in, PostgreSQL is
   restarted (``pg_ctl restart -m fast``).
5. After ``--seconds`` the collectors stop measuring, drain what they hold, and the stored rows
   are compared with every window measured: lost and duplicated must both be 0 (exit 1 if not).

Prints: windows measured vs stored (lost, duplicated), p50/p99 latency of accepted posts, the
fault counts, and RSS of the server (master + workers) and of the collectors' process at start
and end. ``--seconds 30 --collectors 10`` is the short version CI runs (tests/test_soak.py).
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from testsupport.faultproxy import FaultProxy  # noqa: E402
from testsupport.gunicorn import Gunicorn  # noqa: E402

PG_PORT, SERVER_PORT, PROXY_PORT = 8279, 8278, 8277
DB_NAME = "greenkpi_soak"
BATCH_MAX_WINDOWS = 60
BACKOFF_CAP_S = 5.0
REQUEST_TIMEOUT_S = 30.0


# --- the throw-away PostgreSQL cluster --------------------------------------------------------


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return os.environ.get("PG_BIN", str(Path(found[-1]).parent) if found else "") + f"/{name}"


class Cluster:
    """initdb + pg_ctl in a temporary directory, as the postgres user when run as root
    (PostgreSQL refuses to run as root)."""

    def __init__(self, port: int):
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="greenkpi-soak-pg-"))
        self.data = self.dir / "data"
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")

    def _run(self, *args: str) -> None:
        command = list(args)
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def init(self) -> None:
        self._run(pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self.start()

    def _pg_ctl(self, action: str) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-w", "-m", "fast", "-o", options,
                  "-l", str(self.dir / "log"), action)  # fmt: skip

    def start(self) -> None:
        self._pg_ctl("start")

    def restart(self) -> None:
        self._pg_ctl("restart")

    def destroy(self) -> None:
        try:
            self._pg_ctl("stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, db: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"


def prepare(cluster: Cluster, var_dir: str) -> tuple[dict[str, str], str]:
    """Migrate the soak database, create org, team and token; the server env and the secret."""
    with psycopg.connect(cluster.url("postgres"), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(
        DATABASE_URL=cluster.url(DB_NAME),
        GREENKPI_VAR_DIR=var_dir,
        INGEST_RATE_PER_MINUTE="1000000",
        SECRET_KEY="soak-" + uuid.uuid4().hex,
    )

    def manage(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True,
            capture_output=True, text=True,
        )  # fmt: skip
        return done.stdout.strip()

    manage("migrate", "--verbosity", "0")
    manage("create_org", "Soak", "--slug", "soak")
    manage("create_team", "soak", "Fleet", "--slug", "fleet")
    secret = manage("create_token", "soak", "--team", "fleet").splitlines()[-1].strip()
    return env, secret


# --- simulated collectors ---------------------------------------------------------------------


class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.attempts = 0
        self.retries = 0
        self.refused: dict[int, int] = {}
        self.poison = 0


async def post(port: int, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port), REQUEST_TIMEOUT_S
    )
    try:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(
            f"POST /api/v1/ingest/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Content-Length: {len(body)}\r\n{head}\r\n".encode()
            + body
        )
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), REQUEST_TIMEOUT_S)
    finally:
        writer.close()
    if not raw.startswith(b"HTTP/1."):
        raise ConnectionError("no HTTP answer")
    return int(raw.split(b" ", 2)[1]), raw.partition(b"\r\n\r\n")[2]


class Collector:
    def __init__(self, index: int, window_s: int, secret: str, stats: Stats):
        self.host = f"soak-{index:03d}"
        self.device = f"GPU-soak-{index:03d}"
        self.window_s, self.secret, self.stats = window_s, secret, stats
        self.measured: list[str] = []  # window starts, ground truth
        self.pending: list[dict] = []
        self.rng = random.Random(index)

    async def sample(self, stop_at: float) -> None:
        """1 Hz power readings; a window closes on each wall-clock multiple of window_s."""
        start = (time.time() // self.window_s + 1) * self.window_s
        await asyncio.sleep(start - time.time())
        energy_j = 0.0
        while True:
            now = time.time()
            if now >= start + self.window_s:
                begin = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start))
                end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + self.window_s))
                self.pending.append(
                    {"device_uuid": self.device, "device_kind": "gpu", "start": begin,
                     "end": end, "energy_j": round(energy_j, 3), "method": "counter"}
                )  # fmt: skip
                self.measured.append(begin)
                start += self.window_s
                energy_j = 0.0
                if start >= stop_at:
                    return
            energy_j += 300.0 + 100.0 * self.rng.random()  # one second at 300-400 W
            await asyncio.sleep(1.0 - (time.time() % 1.0) + 0.001)

    async def send(self, port: int, done: asyncio.Event) -> None:
        """Send what is pending, oldest first; one key per batch, kept across its retries."""
        while not (done.is_set() and not self.pending):
            if not self.pending:
                await asyncio.sleep(0.2)
                continue
            batch = self.pending[:BATCH_MAX_WINDOWS]
            body = orjson.dumps(
                {
                    "schema_version": 1,
                    "host": {"hostname": self.host, "agent_version": "soak",
                             "clock": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
                    "samples": batch,
                }
            )  # fmt: skip
            headers = {
                "Authorization": f"Bearer {self.secret}",
                "Idempotency-Key": str(uuid.uuid4()),
                "Content-Type": "application/json",
            }
            backoff = 0.25
            while True:
                self.stats.attempts += 1
                t0 = time.perf_counter()
                try:
                    status, _ = await post(port, body, headers)
                except (TimeoutError, OSError, ConnectionError):
                    status = 0
                if status == 201:
                    self.stats.latencies.append(time.perf_counter() - t0)
                    del self.pending[: len(batch)]
                    break
                self.stats.refused[status] = self.stats.refused.get(status, 0) + 1
                if status and 400 <= status < 500 and status not in (408, 429):
                    self.stats.poison += 1  # never retried: cannot succeed unchanged
                    del self.pending[: len(batch)]
                    break
                self.stats.retries += 1
                await asyncio.sleep(backoff * (0.5 + self.rng.random()))
                backoff = min(BACKOFF_CAP_S, backoff * 2)


# --- measuring --------------------------------------------------------------------------------


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def server_pids(server: Gunicorn) -> list[int]:
    if server.proc is None:
        return []
    done = subprocess.run(
        ["pgrep", "-g", str(server.proc.pid)], capture_output=True, text=True, check=False
    )
    return [int(p) for p in done.stdout.split()]


def stored_windows(url: str) -> tuple[int, set[tuple[str, str]]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT d.uuid, to_char(s.window_start AT TIME ZONE 'UTC', "
            '\'YYYY-MM-DD"T"HH24:MI:SS"Z"\') FROM ingest_sample s '
            "JOIN inventory_device d ON d.id = s.device_id"
        ).fetchall()
    return len(rows), {(uuid_, start) for uuid_, start in rows}


async def soak(args: argparse.Namespace, server: Gunicorn, cluster: Cluster, secret: str) -> dict:
    stats = Stats()
    collectors = [Collector(i, args.window_s, secret, stats) for i in range(args.collectors)]
    stop_at = time.time() + args.seconds
    done = asyncio.Event()
    senders = [asyncio.create_task(c.send(PROXY_PORT, done)) for c in collectors]
    samplers = [asyncio.create_task(c.sample(stop_at)) for c in collectors]
    rss_start = (rss_kib(server_pids(server)), rss_kib([os.getpid()]))
    loop = asyncio.get_running_loop()
    await asyncio.sleep(args.seconds / 3)
    print(f"soak: restarting the web server at {args.seconds / 3:.0f} s", flush=True)
    await loop.run_in_executor(None, server.stop)
    await asyncio.sleep(1.0)
    await loop.run_in_executor(None, server.start)
    await asyncio.sleep(args.seconds / 3)
    print(f"soak: restarting PostgreSQL at {2 * args.seconds / 3:.0f} s", flush=True)
    await loop.run_in_executor(None, cluster.restart)
    await asyncio.gather(*samplers)
    rss_end_measuring = (rss_kib(server_pids(server)), rss_kib([os.getpid()]))
    done.set()
    await asyncio.wait_for(asyncio.gather(*senders), args.drain_s)
    return {
        "stats": stats,
        "collectors": collectors,
        "rss_start": rss_start,
        "rss_end": rss_end_measuring,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--collectors", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=180)
    parser.add_argument("--window-s", type=int, default=10)
    parser.add_argument("--fault-rate", type=float, default=0.05)
    parser.add_argument("--latency-s", type=float, default=0.5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--drain-s", type=float, default=180.0)
    args = parser.parse_args(argv)

    var_dir = tempfile.mkdtemp(prefix="greenkpi-soak-var-")
    cluster = Cluster(PG_PORT)
    proxy = FaultProxy(
        PROXY_PORT, SERVER_PORT, reset_rate=args.fault_rate, latency_rate=args.fault_rate,
        latency_s=args.latency_s,
    )  # fmt: skip
    server: Gunicorn | None = None
    try:
        cluster.init()
        env, secret = prepare(cluster, var_dir)
        server = Gunicorn(
            env, Path(var_dir) / "gunicorn.log", port=SERVER_PORT, workers=args.workers
        )
        server.start()
        proxy.start()
        result = asyncio.run(soak(args, server, cluster, secret))
        rows, stored = stored_windows(cluster.url(DB_NAME))
    finally:
        proxy.stop()
        if server is not None:
            server.stop()
        cluster.destroy()
        shutil.rmtree(var_dir, ignore_errors=True)

    stats: Stats = result["stats"]
    measured = {(c.device, start) for c in result["collectors"] for start in c.measured}
    measured_count = sum(len(c.measured) for c in result["collectors"])
    lost = len(measured - stored)
    duplicated = rows - len(stored) + (measured_count - len(measured))
    extra = len(stored - measured)
    quantiles = statistics.quantiles(stats.latencies, n=100) if len(stats.latencies) > 1 else [0]
    print(f"soak_collectors {args.collectors}")
    print(f"soak_seconds {args.seconds}")
    print(f"soak_windows_measured {measured_count}")
    print(f"soak_windows_stored {len(stored)}")
    print(f"soak_windows_lost {lost}")
    print(f"soak_windows_duplicated {duplicated}")
    print(f"soak_windows_unexpected {extra}")
    print(f"soak_posts_accepted {len(stats.latencies)}")
    print(f"soak_post_attempts {stats.attempts} (retries {stats.retries}, poison {stats.poison})")
    print(f"soak_refusals_by_status {dict(sorted(stats.refused.items()))} (0 = network error)")
    print(f"soak_proxy {dict(proxy.stats)}")
    print(f"soak_latency_p50_ms {quantiles[49] * 1000:.1f}" if len(quantiles) > 49 else "")
    print(f"soak_latency_p99_ms {quantiles[98] * 1000:.1f}" if len(quantiles) > 98 else "")
    print(f"soak_server_rss_kib start {result['rss_start'][0]} end {result['rss_end'][0]}")
    print(f"soak_collectors_rss_kib start {result['rss_start'][1]} end {result['rss_end'][1]}")
    return 0 if lost == 0 and duplicated == 0 and extra == 0 and stats.poison == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
