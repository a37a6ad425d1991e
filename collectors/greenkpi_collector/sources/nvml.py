"""NVIDIA GPUs through NVML (``nvidia-ml-py``, import name ``pynvml``).

The source talks to NVML through ``NvmlApi``: the handful of ``pynvml`` functions it uses, under
their real names. Production passes the ``pynvml`` module itself; tests pass ``SimulatedNvml``,
which implements the same functions, so the code below is the code that runs on a real GPU.

Energy comes from ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since the driver loaded, Volta and
newer). Only where that counter is unsupported do we fall back to ``nvmlDeviceGetPowerUsage``
(mW), integrated over time and flagged ``power_integral``: on those pre-Volta boards the reading
is instantaneous, whereas on Ampere+ it is a 1 s average (measurement-and-carbon.md 1.1).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from greenkpi_collector.sources.base import ProcUse, Reading, SourceUnavailable
from greenkpi_schema import DeviceInfo

NVML_TEMPERATURE_GPU = 0
NVML_CLOCK_SM = 1
NVML_DEVICE_MIG_ENABLE = 1


class NvmlApi(Protocol):
    """The subset of ``pynvml`` this source calls (same names and semantics)."""

    NVMLError: type[Exception]
    NVMLError_NotSupported: type[Exception]

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlSystemGetDriverVersion(self) -> str: ...
    def nvmlDeviceGetCount(self) -> int: ...
    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any: ...
    def nvmlDeviceGetUUID(self, handle: Any) -> str: ...
    def nvmlDeviceGetName(self, handle: Any) -> str: ...
    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Any) -> int: ...
    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int: ...
    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Any) -> int: ...
    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any: ...
    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any: ...
    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int: ...
    def nvmlDeviceGetClockInfo(self, handle: Any, clock_type: int) -> int: ...
    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[Any]: ...
    def nvmlDeviceGetProcessUtilization(self, handle: Any, last_seen_us: int) -> list[Any]: ...
    def nvmlDeviceGetMigMode(self, handle: Any) -> list[int]: ...
    def nvmlDeviceGetMaxMigDeviceCount(self, handle: Any) -> int: ...
    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: Any, index: int) -> Any: ...


def load_pynvml() -> NvmlApi:
    """The real binding, or SourceUnavailable saying in plain words why not."""
    try:
        import pynvml
    except ImportError:
        raise SourceUnavailable(
            "nvidia-ml-py is not installed (pip install 'greenkpi[collector]')"
        ) from None
    if not hasattr(pynvml, "_nvmlGetFunctionPointer"):
        # The deprecated `pynvml` distribution once shipped its own, different module.
        raise SourceUnavailable("the installed pynvml module is not NVIDIA's nvidia-ml-py")
    return cast(NvmlApi, pynvml)


@dataclass
class _Gpu:
    index: int
    handle: Any
    uuid: str
    name: str
    power_limit_w: float | None
    has_counter: bool
    mig: bool
    mig_instances: int = 0
    mig_uuids: list[str] = field(default_factory=list)  # what Kubernetes allocates (MIG-...)
    last_proc_ts_us: int = 0  # NVML returns per-process samples newer than this
    sm_clock_mhz: float | None = None
    notes: list[str] = field(default_factory=list)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlSource:
    name = "nvml"

    def __init__(self, api: NvmlApi | None = None) -> None:
        self.api = api if api is not None else load_pynvml()
        try:
            self.api.nvmlInit()
        except self.api.NVMLError as exc:
            raise SourceUnavailable(
                f"NVML could not start ({exc}): no NVIDIA driver, or no GPU visible to this user"
            ) from None
        self._errors: dict[str, int] = {}
        self.gpus = [self._discover(i) for i in range(self.api.nvmlDeviceGetCount())]
        if not self.gpus:
            raise SourceUnavailable("NVML found no NVIDIA GPU on this host")

    # --- discovery -----------------------------------------------------------------------------

    def _try(self, what: str, fn: Any, *args: Any) -> Any:
        """Call NVML; NotSupported is an answer (None), other errors are recorded and also None."""
        try:
            return fn(*args)
        except self.api.NVMLError_NotSupported:
            return None
        except self.api.NVMLError as exc:
            self._errors[f"nvml {what}: {exc}"] = self._errors.get(f"nvml {what}: {exc}", 0) + 1
            return None

    def _discover(self, index: int) -> _Gpu:
        api = self.api
        handle = api.nvmlDeviceGetHandleByIndex(index)
        uuid = _text(api.nvmlDeviceGetUUID(handle))
        limit_mw = self._try("power limit", api.nvmlDeviceGetEnforcedPowerLimit, handle)
        counter = self._try("energy counter", api.nvmlDeviceGetTotalEnergyConsumption, handle)
        mode = self._try("MIG mode", api.nvmlDeviceGetMigMode, handle)
        gpu = _Gpu(
            index=index,
            handle=handle,
            uuid=uuid,
            name=_text(api.nvmlDeviceGetName(handle)),
            power_limit_w=limit_mw / 1000.0 if limit_mw is not None else None,
            has_counter=counter is not None,
            mig=bool(mode) and mode[0] == NVML_DEVICE_MIG_ENABLE,
        )
        if not gpu.has_counter:
            gpu.notes.append(
                f"{uuid}: no total-energy counter (pre-Volta); energy is integrated from power "
                "readings (method power_integral)"
            )
        if gpu.mig:
            gpu.mig_instances = self._count_mig(handle, gpu.mig_uuids)
            # NVML has power and energy only for the physical GPU, and no per-instance
            # utilization, so energy is measured per GPU and split equally among its processes.
            gpu.notes.append(
                f"{uuid}: MIG enabled ({gpu.mig_instances} instances); energy is measured for the "
                "whole GPU and split equally among its processes (share method equal)"
            )
        return gpu

    def _count_mig(self, handle: Any, uuids: list[str] | None = None) -> int:
        top = self._try("MIG count", self.api.nvmlDeviceGetMaxMigDeviceCount, handle) or 0
        found = 0
        for i in range(top):
            try:
                mig = self.api.nvmlDeviceGetMigDeviceHandleByIndex(handle, i)
                found += 1
            except self.api.NVMLError:
                continue  # NotFound: that slot holds no instance
            if uuids is not None:
                uuid = self._try("MIG UUID", self.api.nvmlDeviceGetUUID, mig)
                if uuid:
                    uuids.append(_text(uuid))
        return found

    def devices(self) -> list[DeviceInfo]:
        return [
            DeviceInfo(
                uuid=g.uuid,
                kind="gpu",
                model=g.name + (f" (MIG, {g.mig_instances} instances)" if g.mig else ""),
                power_limit_w=g.power_limit_w,
            )
            for g in self.gpus
        ]

    # --- sampling ------------------------------------------------------------------------------

    def read(self) -> list[Reading]:
        return [self._read(g) for g in self.gpus]

    def _read(self, gpu: _Gpu) -> Reading:
        api, h = self.api, gpu.handle
        counter = None
        if gpu.has_counter:
            try:
                counter = int(api.nvmlDeviceGetTotalEnergyConsumption(h))
            except api.NVMLError_NotSupported:
                gpu.has_counter = False  # the driver withdrew it: degrade, and say so
                gpu.notes.append(f"{gpu.uuid}: energy counter stopped; using power readings")
            except api.NVMLError as exc:
                self._note(f"nvml {gpu.uuid} energy: {exc}")
        power_mw = self._try(f"{gpu.uuid} power", api.nvmlDeviceGetPowerUsage, h)
        reading = Reading(
            uuid=gpu.uuid,
            kind="gpu",
            method="counter" if counter is not None else "power_integral",
            counter=counter,
            counter_unit_j=1e-3,
            power_w=power_mw / 1000.0 if power_mw is not None else None,
        )
        if not gpu.mig:  # "not currently supported" on MIG-enabled GPUs (NVML header)
            rates = self._try(f"{gpu.uuid} utilization", api.nvmlDeviceGetUtilizationRates, h)
            reading.busy = rates.gpu / 100.0 if rates is not None else None
        mem = self._try(f"{gpu.uuid} memory", api.nvmlDeviceGetMemoryInfo, h)
        if mem is not None:
            reading.mem_used_bytes, reading.mem_total_bytes = int(mem.used), int(mem.total)
        temp = self._try(f"{gpu.uuid} temperature", api.nvmlDeviceGetTemperature, h, 0)
        reading.temperature_c = float(temp) if temp is not None else None
        clock = self._try(f"{gpu.uuid} SM clock", api.nvmlDeviceGetClockInfo, h, NVML_CLOCK_SM)
        gpu.sm_clock_mhz = float(clock) if clock is not None else None
        reading.procs = self._procs(gpu)
        return reading

    def _procs(self, gpu: _Gpu) -> tuple[ProcUse, ...] | None:
        running = self._try(
            f"{gpu.uuid} processes", self.api.nvmlDeviceGetComputeRunningProcesses, gpu.handle
        )
        if running is None:
            return ()
        pids = sorted({int(p.pid) for p in running})
        if not pids:
            return ()
        utils: dict[int, list[float]] = {}
        if not gpu.mig:
            try:
                samples = self.api.nvmlDeviceGetProcessUtilization(gpu.handle, gpu.last_proc_ts_us)
            except self.api.NVMLError:
                samples = []  # NotFound: no sample newer than last time; NotSupported: none ever
            for s in samples:
                if s.timeStamp > gpu.last_proc_ts_us:
                    utils.setdefault(int(s.pid), []).append(float(s.smUtil))
            if samples:
                gpu.last_proc_ts_us = max(gpu.last_proc_ts_us, *(int(s.timeStamp) for s in samples))
        return tuple(
            ProcUse(pid, sum(utils[pid]) / len(utils[pid]) / 100.0 if pid in utils else None)
            for pid in pids
        )

    def _note(self, message: str) -> None:
        self._errors[message] = self._errors.get(message, 0) + 1

    def errors(self) -> list[str]:
        """Standing degradations (every time) plus errors since the last call, counted."""
        counted = [m if n == 1 else f"{m} (x{n})" for m, n in self._errors.items()]
        self._errors.clear()
        return [note for g in self.gpus for note in g.notes] + counted

    def close(self) -> None:
        with contextlib.suppress(self.api.NVMLError):
            self.api.nvmlShutdown()
