"""A real gunicorn serving the project for tests and benches: on a free port (or a given one),
against a given database, stopped with its workers (one process group) whatever happens."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = str(Path(sys.executable).parent / "gunicorn")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Gunicorn:
    """One gunicorn master; ``start``/``stop`` may be called again (a restart keeps the port)."""

    def __init__(
        self, env: dict[str, str], log_path: Path, port: int | None = None, workers: int = 2
    ):
        self.env, self.log_path, self.workers = env, log_path, workers
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    GUNICORN,
                    "greenkpi.wsgi:application",
                    *("--worker-class", "sync", "--workers", str(self.workers)),
                    *("--bind", f"127.0.0.1:{self.port}", "--timeout", "60"),
                    # as in production (Dockerfile): gunicorn's largest request line; a longer
                    # one is its own HTML 414, before the application (docs/api.md)
                    *("--limit-request-line", "8190"),
                ],
                # Tests run no collectstatic: HTML pages (the 404 page too) use unhashed names.
                env={"STATIC_MANIFEST": "false", **self.env},
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{self.log_path.read_text()[-3000:]}")
            with suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.5):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gunicorn did not start:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None


@contextmanager
def running(env: dict[str, str], log_path: Path, workers: int = 2) -> Iterator[Gunicorn]:
    server = Gunicorn(env, log_path, workers=workers)
    server.start()
    try:
        yield server
    finally:
        server.stop()
