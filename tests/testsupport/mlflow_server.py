"""A real MLflow tracking server for tests (``mlflow server``, SQLite store, localhost), from the
venv ``make install`` builds from deploy/mlflow/requirements.txt, and its Python client run in
that venv (the backend's venv has no MLflow: it talks to the server over REST)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from testsupport.gunicorn import free_port

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-mlflow"
MLFLOW = VENV / "bin" / "mlflow"
PYTHON = VENV / "bin" / "python"
CLIENT = """
import json, sys
from mlflow.tracking import MlflowClient
client = MlflowClient(sys.argv[1])
if sys.argv[2] == "create":
    experiment = client.create_experiment(sys.argv[3])
    print(json.dumps(client.create_run(experiment).info.run_id))
else:
    run = client.get_run(sys.argv[3])
    history = {k: [(m.value, m.timestamp, m.step) for m in client.get_metric_history(sys.argv[3], k)]
               for k in run.data.metrics}
    print(json.dumps({"metrics": run.data.metrics, "tags": run.data.tags, "history": history}))
"""


class MlflowServer:
    def __init__(self, url: str) -> None:
        self.url = url

    def client(self, *args: str) -> object:
        """Run the MLflow client (in MLflow's venv) with ``args``; its JSON answer."""
        done = subprocess.run(
            [str(PYTHON), "-c", CLIENT, self.url, *args],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"},
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    def new_run(self, experiment: str) -> str:
        return str(self.client("create", experiment))

    def read_run(self, run_id: str) -> dict:
        return self.client("read", run_id)  # type: ignore[return-value]


@contextmanager
def mlflow_server(tmp_path: Path, timeout: float = 180.0) -> Iterator[MlflowServer]:
    assert MLFLOW.exists(), f"{MLFLOW} is missing: run `make install` (it builds .venv-mlflow)"
    port = free_port()
    log_path = tmp_path / "mlflow.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                str(MLFLOW),
                "server",
                *("--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"),
                *("--default-artifact-root", str(tmp_path / "artifacts")),
                *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
            ],
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited:\n{log_path.read_text()[-3000:]}")
            with suppress(OSError), urllib.request.urlopen(f"{url}/health", timeout=2) as up:
                if up.status == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"mlflow server not up in {timeout} s:\n{log_path.read_text()[-3000:]}"
                )
            time.sleep(0.5)
        yield MlflowServer(url)
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
