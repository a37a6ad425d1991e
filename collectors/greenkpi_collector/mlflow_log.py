"""``track(..., mlflow=True)``: the block's energy, GPU-hours and CO2e written into the active
MLflow run from the training process itself, for teams whose GreenKPI backend has no MLflow link
(docs/integrations.md, "MLflow").

Energy: what the local agent measured and attributed to this process (``track()``'s handle),
else, with no agent counting it, the NVML energy counters of the GPUs this process sees, read
when the block starts and ends (whole GPUs: a GPU shared with another job counts whole). The
``greenkpi.energy`` tag says which. GPU-hours: the GPUs seen x the block's duration. CO2e:
Scope 2 location-based, energy x PUE x the grid intensity ``track()`` resolves (explicit,
``GREENKPI_GRID_INTENSITY``, else the world average: an estimate, and the tag says the figure
used). Written with one ``runs/log-batch`` call over MLflow's REST API (standard library: no
MLflow package) to ``MLFLOW_TRACKING_URI`` and ``MLFLOW_RUN_ID`` (bearer
``MLFLOW_TRACKING_TOKEN``), the variables MLflow itself sets and reads. Like ``track()``, it
never fails the job: it warns.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
import warnings
from dataclasses import dataclass
from typing import Any

from greenkpi_collector.sources.nvml import NvmlApi, NvmlSource

LOG_BATCH = "/api/2.0/mlflow/runs/log-batch"
TIMEOUT_S = 10.0
J_PER_KWH = 3.6e6


@dataclass(frozen=True)
class Measured:
    energy_j: float
    gpu_seconds: float
    gpus: int
    without_counter: int  # GPUs whose energy could not be counted


class GpuMeter:
    """Energy counters of every GPU NVML shows this process, at start and at stop."""

    def __init__(self, api: NvmlApi | None = None, clock: Any = time.monotonic) -> None:
        self.source = NvmlSource(api)
        self.clock = clock
        self._start: dict[str, float | None] = {}
        self._t0 = 0.0

    def _counters(self) -> dict[str, float | None]:
        return {
            r.uuid: (r.counter * r.counter_unit_j if r.counter is not None else None)
            for r in self.source.read()
        }

    def start(self) -> None:
        self._start, self._t0 = self._counters(), self.clock()

    def stop(self) -> Measured:
        end, elapsed = self._counters(), self.clock() - self._t0
        energy, missing = 0.0, 0
        for uuid, first in self._start.items():
            last = end.get(uuid)
            if first is None or last is None or last < first:  # no counter, or it restarted
                missing += 1
            else:
                energy += last - first
        return Measured(energy, elapsed * len(self._start), len(self._start), missing)


def figures(
    measured: Measured | None,
    *,
    agent_energy_j: float | None,
    intensity_g_per_kwh: float,
    pue: float,
) -> tuple[dict[str, float], dict[str, str]]:
    """The MLflow metrics and tags of a block (the names of the backend's write-back)."""
    tags = {"greenkpi.source": "client: greenkpi_collector track(mlflow=True)"}
    metrics: dict[str, float] = {}
    if agent_energy_j is not None:
        joules = agent_energy_j
        tags["greenkpi.energy"] = "measured by the local agent, attributed to this process"
    elif measured is not None:
        joules = measured.energy_j
        tags["greenkpi.energy"] = "measured: NVML energy counters of whole GPUs"
        if measured.without_counter:
            tags["greenkpi.energy"] += (
                f" ({measured.without_counter} GPU(s) without a counter left out)"
            )
    else:
        return metrics, tags
    kwh = joules / J_PER_KWH
    metrics["greenkpi.energy_kwh"] = kwh
    metrics["greenkpi.facility_energy_kwh"] = kwh * pue
    metrics["greenkpi.co2e_scope2_location_kg"] = kwh * pue * intensity_g_per_kwh / 1000.0
    tags["greenkpi.co2e"] = (
        f"Scope 2 location-based at {intensity_g_per_kwh:g} gCO2e/kWh x PUE {pue:g} "
        "(an estimate; no embodied share client-side)"
    )
    if measured is not None:
        metrics["greenkpi.gpu_hours"] = measured.gpu_seconds / 3600
    return metrics, tags


def log_batch(
    tracking_uri: str, run_id: str, metrics: dict[str, float], tags: dict[str, str], token: str
) -> None:
    now_ms = int(time.time() * 1000)
    body = {
        "run_id": run_id,
        "metrics": [
            {"key": k, "value": v, "timestamp": now_ms, "step": 0} for k, v in metrics.items()
        ],
        "tags": [{"key": k, "value": v} for k, v in tags.items()],
    }
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        tracking_uri.rstrip("/") + LOG_BATCH, data=json.dumps(body).encode(), headers=headers
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:
        answer.read()


class MlflowLogger:
    """What ``track(mlflow=True)`` runs around the block; every failure is a warning."""

    def __init__(
        self,
        *,
        run_id: str | None = None,
        tracking_uri: str | None = None,
        intensity_g_per_kwh: float | None = None,
        pue: float | None = None,
        nvml: NvmlApi | None = None,
        clock: Any = time.monotonic,
    ) -> None:
        env = os.environ
        self.run_id = run_id or env.get("MLFLOW_RUN_ID", "")
        self.tracking_uri = tracking_uri or env.get("MLFLOW_TRACKING_URI", "")
        self.token = env.get("MLFLOW_TRACKING_TOKEN", "")
        self.intensity = intensity_g_per_kwh
        self.pue = pue if pue is not None else (_float(env.get("GREENKPI_PUE", "")) or 1.0)
        self.meter: GpuMeter | None = None
        self.active = bool(self.run_id) and self.tracking_uri.startswith(("http://", "https://"))
        if not self.active:
            _warn("no MLflow run: set MLFLOW_TRACKING_URI (http or https) and MLFLOW_RUN_ID")
            return
        try:
            self.meter = GpuMeter(nvml, clock)
            self.meter.start()
        except Exception as exc:  # SourceUnavailable (no GPU, no driver): the job still runs
            _warn(f"cannot read GPU energy counters ({exc})")
            self.meter = None

    def finish(self, *, agent_energy_j: float | None, intensity_g_per_kwh: float) -> None:
        if not self.active:
            return
        try:
            measured = self.meter.stop() if self.meter is not None else None
            metrics, tags = figures(
                measured,
                agent_energy_j=agent_energy_j,
                intensity_g_per_kwh=intensity_g_per_kwh,
                pue=self.pue,
            )
            if not metrics:
                _warn("no energy measured for this block: nothing logged to MLflow")
                return
            log_batch(self.tracking_uri, self.run_id, metrics, tags, self.token)
        except Exception as exc:  # MLflow down or refusing: the job's result matters more
            _warn(f"cannot log to MLflow run {self.run_id} ({exc})")


def _float(text: str) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _warn(message: str) -> None:
    warnings.warn(f"greenkpi: {message}", RuntimeWarning, stacklevel=4)
