"""A simulated NVML: the ``NvmlApi`` functions over deterministic, scriptable GPUs.

Power follows ``base + amp * (1 - cos(2 pi t / period)) / 2`` so its integral, the energy counter,
has a closed form: tests and the benchmark compute exactly what a window should hold. The counter
is a function of the wall clock, not of calls, so it stays continuous across collector restarts
like a real GPU's. Selected with ``--gpu sim``; used by the tests and the overhead benchmark.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynvml

SIM_EPOCH = 1_700_000_000.0  # counters count from here, like "since the driver loaded"


@dataclass
class SimGpu:
    uuid: str
    name: str = "Simulated H100"
    base_w: float = 80.0
    amp_w: float = 400.0
    period_s: float = 20.0
    power_limit_w: float = 700.0
    has_counter: bool = True
    mig: bool = False
    mig_instances: int = 0
    resets: list[float] = field(default_factory=list)  # wall times at which the counter restarts
    unsupported: set[str] = field(default_factory=set)  # NVML functions raising NotSupported
    # (pid, SM utilization %); util None means the driver gives no per-process samples.
    processes: list[tuple[int, float | None]] = field(default_factory=list)
    mem_total: int = 80 * 2**30

    def power_w(self, t: float) -> float:
        phase = 2 * math.pi * (t - SIM_EPOCH) / self.period_s
        return self.base_w + self.amp_w * (1 - math.cos(phase)) / 2

    def energy_j(self, t: float) -> float:
        """Joules since SIM_EPOCH: the exact integral of power_w."""
        x = t - SIM_EPOCH
        return self.base_w * x + self.amp_w / 2 * (
            x - self.period_s / (2 * math.pi) * math.sin(2 * math.pi * x / self.period_s)
        )

    def counter_mj(self, t: float) -> int:
        since = max((r for r in self.resets if r <= t), default=SIM_EPOCH)
        return int(1000 * (self.energy_j(t) - self.energy_j(since)))


class SimulatedNvml:
    """Implements NvmlApi; errors are the real ``pynvml`` exception classes."""

    NVMLError = pynvml.NVMLError
    NVMLError_NotSupported = pynvml.NVMLError_NotSupported

    def __init__(
        self,
        gpus: list[SimGpu],
        clock: Callable[[], float] = time.time,
        refresh: Callable[[list[SimGpu]], None] | None = None,
    ) -> None:
        self.gpus = gpus
        self.clock = clock
        self.refresh = refresh  # lets a scenario file change processes while we run
        self.calls = 0

    def _gpu(self, handle: Any, fn: str) -> SimGpu:
        self.calls += 1
        gpu: SimGpu = self.gpus[handle]
        if fn in gpu.unsupported:
            raise pynvml.NVMLError_NotSupported()
        return gpu

    def nvmlInit(self) -> None:
        if self.refresh:
            self.refresh(self.gpus)

    def nvmlShutdown(self) -> None:
        pass

    def nvmlSystemGetDriverVersion(self) -> str:
        return "sim-1.0"

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        return index

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        if isinstance(handle, tuple):  # a MIG instance: (parent handle, index)
            parent = self._gpu(handle[0], "nvmlDeviceGetUUID").uuid
            return f"MIG-{parent.removeprefix('GPU-')}-{handle[1]}"
        return self._gpu(handle, "nvmlDeviceGetUUID").uuid

    def nvmlDeviceGetName(self, handle: Any) -> str:
        return self._gpu(handle, "nvmlDeviceGetName").name

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Any) -> int:
        gpu = self._gpu(handle, "nvmlDeviceGetTotalEnergyConsumption")
        if not gpu.has_counter:
            raise pynvml.NVMLError_NotSupported()
        return gpu.counter_mj(self.clock())

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        return int(self._gpu(handle, "nvmlDeviceGetPowerUsage").power_w(self.clock()) * 1000)

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Any) -> int:
        return int(self._gpu(handle, "nvmlDeviceGetEnforcedPowerLimit").power_limit_w * 1000)

    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any:
        gpu = self._gpu(handle, "nvmlDeviceGetUtilizationRates")
        if gpu.mig:
            raise pynvml.NVMLError_NotSupported()
        busy = (gpu.power_w(self.clock()) - gpu.base_w) / gpu.amp_w if gpu.amp_w else 0.0
        return SimpleNamespace(gpu=round(100 * busy), memory=round(50 * busy))

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any:
        gpu = self._gpu(handle, "nvmlDeviceGetMemoryInfo")
        used = 2**30 * (1 + 4 * len(gpu.processes))
        return SimpleNamespace(total=gpu.mem_total, used=used, free=gpu.mem_total - used)

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:
        gpu = self._gpu(handle, "nvmlDeviceGetTemperature")
        return int(35 + 40 * gpu.power_w(self.clock()) / gpu.power_limit_w)

    def nvmlDeviceGetClockInfo(self, handle: Any, clock_type: int) -> int:
        self._gpu(handle, "nvmlDeviceGetClockInfo")
        return 1755

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[Any]:
        gpu = self._gpu(handle, "nvmlDeviceGetComputeRunningProcesses")
        if self.refresh:
            self.refresh(self.gpus)
        return [
            SimpleNamespace(pid=pid, usedGpuMemory=4 * 2**30, gpuInstanceId=0, computeInstanceId=0)
            for pid, _ in gpu.processes
        ]

    def nvmlDeviceGetProcessUtilization(self, handle: Any, last_seen_us: int) -> list[Any]:
        gpu = self._gpu(handle, "nvmlDeviceGetProcessUtilization")
        if gpu.mig:
            raise pynvml.NVMLError_NotSupported()
        now_us = int(self.clock() * 1e6)
        samples = [
            SimpleNamespace(pid=pid, timeStamp=now_us, smUtil=int(util), memUtil=0)
            for pid, util in gpu.processes
            if util is not None
        ]
        if not samples or now_us <= last_seen_us:
            raise pynvml.NVMLError_NotFound()  # what NVML says when nothing is newer
        return samples

    def nvmlDeviceGetMigMode(self, handle: Any) -> list[int]:
        gpu = self._gpu(handle, "nvmlDeviceGetMigMode")
        return [int(gpu.mig), int(gpu.mig)]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: Any) -> int:
        return 7 if self._gpu(handle, "nvmlDeviceGetMaxMigDeviceCount").mig else 0

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: Any, index: int) -> Any:
        gpu = self._gpu(handle, "nvmlDeviceGetMigDeviceHandleByIndex")
        if index >= gpu.mig_instances:
            raise pynvml.NVMLError_NotFound()
        return (handle, index)


def sim_gpus(count: int, host: str = "sim") -> list[SimGpu]:
    """``count`` distinct, deterministic GPUs (different loads and phases)."""
    return [
        SimGpu(uuid=f"GPU-{host}-{i:02d}", base_w=60.0 + 5 * i, amp_w=300.0 + 20 * i)
        for i in range(count)
    ]


def from_environment(count: int, scenario: str | None) -> SimulatedNvml:
    """The CLI's ``--gpu sim``: ``count`` GPUs; a JSON scenario file may set processes per GPU,
    re-read when it changes: ``{"processes": {"0": [[pid, util_percent_or_null], ...]}}``."""
    gpus = sim_gpus(count, os.uname().nodename.split(".")[0] or "sim")
    if not scenario:
        return SimulatedNvml(gpus)
    path = Path(scenario)
    seen: list[float] = [-1.0]

    def refresh(targets: list[SimGpu]) -> None:
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return
        if mtime == seen[0]:
            return
        seen[0] = mtime
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return  # half-written by a test or operator: keep the last good scenario
        for index, procs in (data.get("processes") or {}).items():
            if int(index) < len(targets):
                targets[int(index)].processes = [(int(p), u) for p, u in procs]

    return SimulatedNvml(gpus, refresh=refresh)
