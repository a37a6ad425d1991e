"""Host load and memory from psutil, and the CPU/DRAM estimate used when RAPL is unreadable.

The estimate (method ``estimate``; constants and their sources in docs/collector.md):
    P_cpu  = TDP * (IDLE_FRACTION + (1 - IDLE_FRACTION) * load)      load = host CPU busy 0..1
    P_dram = DRAM_W_PER_GIB * installed GiB                           constant
TDP comes from the config (``cpu_tdp_w``); unknown, it is ``W_PER_LOGICAL_CPU`` per logical CPU.
"""

from __future__ import annotations

import platform

import psutil

from greenkpi_collector.sources.base import Reading
from greenkpi_schema import DeviceInfo

IDLE_FRACTION = 0.10  # an idle package still draws ~10 % of TDP (CodeCarbon's floor)
W_PER_LOGICAL_CPU = 4.0  # CodeCarbon DEFAULT_POWER_PER_CORE, used when TDP is unknown
DRAM_W_PER_GIB = 0.375  # 3 W per 8 GB (Crucial rule of thumb, CodeCarbon v2)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()[:200]
    except OSError:
        pass
    return platform.processor()[:200]


class HostLoad:
    """CPU busy fraction since the previous call, and memory in use."""

    def __init__(self) -> None:
        psutil.cpu_percent(interval=None)  # the first call only sets the baseline

    def cpu_busy(self) -> float:
        return min(1.0, max(0.0, psutil.cpu_percent(interval=None) / 100.0))

    def memory(self) -> tuple[int, int]:
        vm = psutil.virtual_memory()
        return int(vm.total - vm.available), int(vm.total)

    def decorate(self, readings: list[Reading]) -> None:
        """Attach host load to CPU-like readings and memory to DRAM-like ones (one psutil call)."""
        busy = self.cpu_busy()
        used, total = self.memory()
        for r in readings:
            if r.kind in ("cpu", "host") and r.busy is None:
                r.busy = busy
            if r.kind in ("dram", "host", "cpu") and r.mem_used_bytes is None:
                r.mem_used_bytes, r.mem_total_bytes = used, total


class EstimateSource:
    """CPU and DRAM power from a model; the window builder integrates it like a power reading."""

    name = "estimate"

    def __init__(self, cpu_tdp_w: float | None = None) -> None:
        threads = psutil.cpu_count(logical=True) or 1
        self.tdp_w = cpu_tdp_w if cpu_tdp_w else W_PER_LOGICAL_CPU * threads
        self.tdp_known = bool(cpu_tdp_w)
        self.dram_w = DRAM_W_PER_GIB * psutil.virtual_memory().total / 2**30
        self.load = HostLoad()
        self.model = cpu_model()

    def devices(self) -> list[DeviceInfo]:
        return [
            DeviceInfo(uuid="cpu-estimate", kind="cpu", model=self.model, power_limit_w=self.tdp_w),
            DeviceInfo(uuid="dram-estimate", kind="dram", model=""),
        ]

    def read(self) -> list[Reading]:
        busy = self.load.cpu_busy()
        used, total = self.load.memory()
        cpu_w = self.tdp_w * (IDLE_FRACTION + (1 - IDLE_FRACTION) * busy)
        return [
            Reading(
                uuid="cpu-estimate",
                kind="cpu",
                method="estimate",
                power_w=cpu_w,
                busy=busy,
                mem_used_bytes=used,
                mem_total_bytes=total,
            ),
            Reading(uuid="dram-estimate", kind="dram", method="estimate", power_w=self.dram_w),
        ]

    def errors(self) -> list[str]:
        if self.tdp_known:
            return ["cpu/dram energy estimated (no readable RAPL)"]
        return [
            f"cpu/dram energy estimated (no readable RAPL); TDP unknown, assumed {self.tdp_w:.0f} W "
            "(set cpu_tdp_w)"
        ]

    def close(self) -> None:
        pass
