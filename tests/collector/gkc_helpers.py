"""Helpers shared by the collector tests (importable as gkc_helpers)."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from greenkpi_collector.sources.sim import SIM_EPOCH

REPO = Path(__file__).resolve().parents[2]
COLLECTOR = str(REPO / ".venv" / "bin" / "greenkpi-collector")


class Clock:
    """A wall clock the test moves by hand; starts on a window boundary."""

    def __init__(self, t: float = SIM_EPOCH + 6000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def collector_env(
    tmp_path: Path, server: str, token: str = "gkc_test", **extra: str
) -> dict[str, str]:
    """Environment for a real `greenkpi-collector run` using simulated GPUs and fast windows."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENKPI_")}
    env.update(
        GREENKPI_SERVER=server,
        GREENKPI_TOKEN=token,
        GREENKPI_STATE_DIR=str(tmp_path / "state"),
        GREENKPI_GPU="sim",
        GREENKPI_SIM_GPUS="2",
        GREENKPI_CPU="off",
        GREENKPI_SAMPLE_INTERVAL_S="0.1",
        GREENKPI_WINDOW_S="0.5",
        GREENKPI_BACKOFF_BASE_S="0.05",
        GREENKPI_BACKOFF_CAP_S="0.5",
        GREENKPI_TIMEOUT_S="5",
        GREENKPI_LOG_LEVEL="debug",
        GREENKPI_SLURM="off",  # tests that want Slurm turn it on against their own cluster
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class Proxy:
    """A TCP forwarder to ``target`` that can be started late: until then the port refuses
    connections, which is what a collector sees while the backend is down."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        import threading

        self.port, self.target = port, target
        self.server: socket.socket | None = None
        self.stopped = threading.Event()

    def start(self) -> None:
        import threading

        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", self.port))
        self.server.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        assert self.server is not None
        while not self.stopped.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self.stopped.set()
        if self.server is not None:
            self.server.close()


def spool_depth(state_dir: Path) -> tuple[int, int]:
    """(samples waiting, windows measured) read straight from a collector's spool file."""
    import sqlite3

    path = state_dir / "spool.sqlite3"
    if not path.exists():
        return -1, 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        waiting = db.execute(
            "SELECT (SELECT COUNT(*) FROM windows) + (SELECT COALESCE(SUM(samples), 0) FROM outbox)"
        ).fetchone()[0]
        row = db.execute("SELECT value FROM state WHERE key = 'measured'").fetchone()
    except sqlite3.OperationalError:
        return -1, 0  # not created yet
    finally:
        db.close()
    return int(waiting), int(row[0]) if row else 0


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
