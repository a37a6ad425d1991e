"""Collector fixtures: a controllable clock, simulated GPUs, a fake RAPL tree, scripted servers.

Nothing here needs a GPU, root, or network beyond loopback, so under CI=true nothing skips.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the test modules import gkc_helpers

from gkc_helpers import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


class RaplTree:
    """Builds /sys/class/powercap-like zones under a temp dir."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def zone(self, name: str, label: str, energy_uj: int, range_uj: int = 262_143_328_850) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        (path / "name").write_text(label + "\n")
        (path / "energy_uj").write_text(f"{energy_uj}\n")
        (path / "max_energy_range_uj").write_text(f"{range_uj}\n")
        return path

    def set(self, name: str, energy_uj: int) -> None:
        (self.root / name / "energy_uj").write_text(f"{energy_uj}\n")


@pytest.fixture
def rapl(tmp_path: Path) -> RaplTree:
    return RaplTree(tmp_path / "powercap")


@dataclass
class Seen:
    """One request the scripted server received."""

    at: float
    key: str
    samples: int
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class ScriptedServer:
    """An ingest endpoint answering from a script: each entry (status, headers, body, delay_s)
    answers one request, then every request gets 201. Records what it saw."""

    url: str
    script: list[tuple[int, dict[str, str], dict[str, Any], float]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    stored: dict[str, int] = field(default_factory=dict)  # idempotency key -> samples stored
    lock: threading.Lock = field(default_factory=threading.Lock)
    request_started: threading.Event = field(default_factory=threading.Event)
    max_samples: int | None = None  # answer 413 to bigger batches

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met in {timeout} s; saw {len(self.seen)}")
            time.sleep(0.01)


def _handler(server: ScriptedServer) -> type[BaseHTTPRequestHandler]:
    import gzip

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            server.request_started.set()
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                raw = gzip.decompress(raw)
            body = json.loads(raw) if raw else {}
            key = self.headers.get("Idempotency-Key", "")
            with server.lock:
                server.seen.append(
                    Seen(
                        time.monotonic(),
                        key,
                        len(body.get("samples", [])),
                        body,
                        dict(self.headers.items()),
                    )
                )
                entry = server.script.pop(0) if server.script else None
            if (
                entry is None
                and server.max_samples
                and len(body.get("samples", [])) > server.max_samples
            ):
                entry = (413, {}, {"title": "Batch too large"}, 0.0)
            status, headers, answer, delay = entry or (201, {}, {}, 0.0)
            if delay:
                time.sleep(delay)
            if status == 201:
                with server.lock:
                    server.stored.setdefault(key, len(body.get("samples", [])))
                answer = answer or {"accepted": len(body.get("samples", [])), "duplicates": 0}
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


@pytest.fixture
def scripted_server() -> Iterator[ScriptedServer]:
    state = ScriptedServer(url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A real single-node Slurm cluster (munged, slurmctld, slurmd) for the whole session.

    Needs Debian's slurm-wlm and munge (.ci/run installs them) and root (mknod, munged). Under
    CI=true a missing prerequisite fails instead of skipping.
    """
    import os

    from testsupport.slurm import local_slurm, missing_tools

    missing = missing_tools()
    if missing or os.geteuid() != 0:
        why = f"real Slurm needs root and {', '.join(missing) or 'nothing more'} (apt slurm-wlm)"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    yield from local_slurm(tmp_path_factory.mktemp("slurm"))


@pytest.fixture
def slurm(slurm_cluster, monkeypatch):
    """The session's cluster with SLURM_CONF exported for this test; its jobs cancelled after."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    yield slurm_cluster
    slurm_cluster.cancel_all()


@pytest.fixture
def agent(tmp_path, scripted_server):
    """A real `greenkpi-collector run` on simulated GPUs (0.1 s ticks) posting to the scripted
    server. A job claims GPU 0 by writing its PID into ``agent.scenario`` (as NVML would list it);
    ``agent.registry`` is where wrap/track() register (docs/ci.md, docs/integrations.md)."""
    import subprocess

    from gkc_helpers import COLLECTOR, collector_env

    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps({"processes": {"0": []}}))
    env = collector_env(
        tmp_path,
        scripted_server.url,
        GREENKPI_SIM_SCENARIO=str(scenario),
        GREENKPI_REGISTRY_DIR=str(tmp_path / "registry"),
        GREENKPI_LOG_LEVEL="info",
    )
    log = open(tmp_path / "agent.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen([COLLECTOR, "run"], env=env, stdout=log, stderr=subprocess.STDOUT)
    scripted_server.wait_for(lambda: len(scripted_server.seen) > 0, timeout=30)
    process.scenario = scenario  # type: ignore[attr-defined]
    process.registry = tmp_path / "registry"  # type: ignore[attr-defined]
    yield process
    process.terminate()
    process.wait(timeout=30)
    log.close()
