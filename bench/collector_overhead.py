"""Collector overhead: a real `greenkpi-collector run` at 1 Hz over 8 simulated GPUs (plus the
psutil CPU/DRAM estimate) posting to a local 201-answering server, for a bounded time.

    python bench/collector_overhead.py [--seconds 60] [--window-s 10]

Prints `collector_cpu_percent: X` (of one core, after a warm-up) and `collector_rss_mb: Y` last.
Target (issue 3): <= 0.5 % and <= 60 MB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil


class Accept(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b'{"accepted": 1, "duplicates": 0}'
        self.send_response(201)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--window-s", type=float, default=10.0)
    ap.add_argument("--gpus", type=int, default=8)
    args = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Accept)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state = Path(tempfile.mkdtemp(prefix="gk-bench-"))
    exe = shutil.which("greenkpi-collector") or str(
        Path(sys.executable).parent / "greenkpi-collector"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENKPI_")}
    env.update(
        GREENKPI_SERVER=f"http://127.0.0.1:{server.server_address[1]}",
        GREENKPI_TOKEN="gkc_bench",
        GREENKPI_STATE_DIR=str(state),
        GREENKPI_GPU="sim",
        GREENKPI_SIM_GPUS=str(args.gpus),
        GREENKPI_CPU="estimate",
        GREENKPI_SAMPLE_INTERVAL_S="1",
        GREENKPI_WINDOW_S=str(args.window_s),
        GREENKPI_LOG_LEVEL="warning",
    )
    proc = subprocess.Popen([exe, "run"], env=env)
    try:
        handle = psutil.Process(proc.pid)
        time.sleep(args.warmup)  # exclude interpreter start-up and imports
        t0, c0 = time.monotonic(), handle.cpu_times()
        time.sleep(args.seconds)
        t1, c1 = time.monotonic(), handle.cpu_times()
        rss_mb = handle.memory_info().rss / 2**20
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        server.shutdown()
        shutil.rmtree(state, ignore_errors=True)
    cpu = (c1.user + c1.system) - (c0.user + c0.system)
    print(f"window_s: {args.window_s}  gpus: {args.gpus}  measured_s: {t1 - t0:.1f}")
    print(f"collector_cpu_percent: {100 * cpu / (t1 - t0):.3f}")
    print(f"collector_rss_mb: {rss_mb:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
