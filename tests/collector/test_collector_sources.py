"""Sources against a simulated NVML (same pynvml function names) and a fake RAPL sysfs tree."""

from __future__ import annotations

from pathlib import Path

import pynvml
import pytest
from gkc_helpers import Clock
from greenkpi_collector.sources.base import ProcUse, SourceUnavailable
from greenkpi_collector.sources.host import (
    DRAM_W_PER_GIB,
    IDLE_FRACTION,
    EstimateSource,
)
from greenkpi_collector.sources.nvml import NvmlSource
from greenkpi_collector.sources.rapl import PERMISSION_HINT, RaplSource, discover
from greenkpi_collector.sources.sim import SimGpu, SimulatedNvml


def nvml(clock: Clock, *gpus: SimGpu) -> NvmlSource:
    return NvmlSource(SimulatedNvml(list(gpus), clock))


def test_a_gpu_with_the_energy_counter_reports_it_raw_in_millijoules(clock: Clock) -> None:
    gpu = SimGpu("GPU-a")
    (reading,) = nvml(clock, gpu).read()
    assert reading.method == "counter"
    assert reading.counter == gpu.counter_mj(clock())
    assert reading.counter_unit_j == 1e-3
    assert reading.power_w == pytest.approx(gpu.power_w(clock()), abs=1e-3)
    assert reading.temperature_c is not None and reading.mem_total_bytes == 80 * 2**30
    assert 0 <= (reading.busy or 0) <= 1


def test_a_gpu_without_the_counter_falls_back_to_power_and_says_so(clock: Clock) -> None:
    source = nvml(clock, SimGpu("GPU-old", has_counter=False))
    (reading,) = source.read()
    assert reading.method == "power_integral" and reading.counter is None
    assert reading.power_w is not None
    assert any("power_integral" in e for e in source.errors())


def test_missing_fields_are_none_not_errors(clock: Clock) -> None:
    missing = {
        "nvmlDeviceGetTemperature",
        "nvmlDeviceGetUtilizationRates",
        "nvmlDeviceGetMemoryInfo",
        "nvmlDeviceGetClockInfo",
        "nvmlDeviceGetEnforcedPowerLimit",
        "nvmlDeviceGetProcessUtilization",
    }
    source = nvml(clock, SimGpu("GPU-a", unsupported=missing, processes=[(7, 30.0)]))
    (reading,) = source.read()
    assert reading.counter is not None
    assert reading.temperature_c is None and reading.busy is None and reading.mem_used_bytes is None
    assert reading.procs == (ProcUse(7, None),)  # running, but no utilization from the driver
    assert source.devices()[0].power_limit_w is None
    assert not [e for e in source.errors() if "nvml" in e]  # NotSupported is not an error


def test_a_counter_withdrawn_mid_run_degrades_to_power(clock: Clock) -> None:
    gpu = SimGpu("GPU-a")
    source = nvml(clock, gpu)
    assert source.read()[0].method == "counter"
    gpu.unsupported.add("nvmlDeviceGetTotalEnergyConsumption")
    assert source.read()[0].method == "power_integral"
    assert any("stopped" in e for e in source.errors())


def test_processes_come_and_go_with_their_utilization(clock: Clock) -> None:
    gpu = SimGpu("GPU-a")
    source = nvml(clock, gpu)
    assert source.read()[0].procs == ()
    gpu.processes = [(100, 60.0), (200, 20.0)]
    clock.advance(1)
    assert source.read()[0].procs == (ProcUse(100, 0.6), ProcUse(200, 0.2))
    # The same timestamp again: NVML has nothing newer (NotFound), utilization unknown.
    assert source.read()[0].procs == (ProcUse(100, None), ProcUse(200, None))
    gpu.processes = [(200, 50.0)]
    clock.advance(1)
    assert source.read()[0].procs == (ProcUse(200, 0.5),)


def test_mig_is_reported_per_physical_gpu_with_equal_split(clock: Clock) -> None:
    source = nvml(clock, SimGpu("GPU-mig", mig=True, mig_instances=3, processes=[(1, 90.0)]))
    (reading,) = source.read()
    assert reading.counter is not None and reading.busy is None
    assert reading.procs == (ProcUse(1, None),)
    assert "MIG, 3 instances" in source.devices()[0].model
    assert any("MIG enabled" in e for e in source.errors())


def test_no_nvml_library_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken(SimulatedNvml):
        def nvmlInit(self) -> None:
            raise pynvml.NVMLError_LibraryNotFound()

    with pytest.raises(SourceUnavailable, match="NVML could not start"):
        NvmlSource(Broken([]))
    with pytest.raises(SourceUnavailable, match="no NVIDIA GPU"):
        NvmlSource(SimulatedNvml([]))


def test_the_real_pynvml_works_or_says_why_not() -> None:
    try:
        source = NvmlSource()
    except SourceUnavailable as exc:  # this host: no driver, no GPU
        why = str(exc)
    else:  # a GPU host: the real binding answers the same calls as the simulation
        assert all(r.kind == "gpu" for r in source.read())
        source.close()
        return
    assert "NVML could not start" in why or "no NVIDIA GPU" in why


# --- RAPL --------------------------------------------------------------------------------------


def test_rapl_reports_packages_and_dram_never_core_or_psys(rapl) -> None:
    rapl.zone("intel-rapl:0", "package-0", 1_000)
    rapl.zone("intel-rapl:0:0", "core", 500)
    rapl.zone("intel-rapl:0:1", "uncore", 100)
    rapl.zone("intel-rapl:0:2", "dram", 300)
    rapl.zone("intel-rapl:1", "package-1", 2_000)
    rapl.zone("intel-rapl:2", "psys", 9_999)
    rapl.zone("intel-rapl-mmio:0", "package-0", 1_000)  # the same package again
    domains = {d.uuid: d.kind for d in discover(rapl.root)}
    assert domains == {"rapl-package-0": "cpu", "rapl-dram-0": "dram", "rapl-package-1": "cpu"}


def test_rapl_uses_psys_only_when_it_is_alone(rapl) -> None:
    rapl.zone("intel-rapl:0", "psys", 5)
    assert [(d.uuid, d.kind) for d in discover(rapl.root)] == [("rapl-psys", "host")]


def test_rapl_mmio_is_used_when_the_msr_zones_are_absent(rapl) -> None:
    rapl.zone("intel-rapl-mmio:0", "package-0", 5)
    assert [d.uuid for d in discover(rapl.root)] == ["rapl-package-0"]


def test_rapl_readings_carry_the_wrap_range(rapl) -> None:
    rapl.zone("intel-rapl:0", "package-0", 123_456, range_uj=262_143_328_850)
    (reading,) = RaplSource(rapl.root).read()
    assert (reading.counter, reading.counter_unit_j, reading.counter_range) == (
        123_456,
        1e-6,
        262_143_328_850,
    )


def test_unreadable_rapl_names_the_cve_and_the_fix(rapl, monkeypatch) -> None:
    rapl.zone("intel-rapl:0", "package-0", 1)
    real = Path.read_text

    def as_non_root(self: Path, *args, **kwargs) -> str:
        if self.name == "energy_uj":  # root-only since Linux 5.10; tests may run as root
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", as_non_root)
    with pytest.raises(SourceUnavailable) as info:
        discover(rapl.root)
    assert str(info.value) == PERMISSION_HINT and "CVE-2020-8694" in PERMISSION_HINT


def test_no_powercap_tree_is_explained(tmp_path) -> None:
    with pytest.raises(SourceUnavailable, match="no RAPL powercap tree"):
        discover(tmp_path / "absent")


# --- estimate ----------------------------------------------------------------------------------


def test_the_estimate_is_tdp_times_load_and_flagged(monkeypatch: pytest.MonkeyPatch) -> None:
    source = EstimateSource(cpu_tdp_w=200.0)
    monkeypatch.setattr(source.load, "cpu_busy", lambda: 0.5)
    cpu, dram = source.read()
    assert cpu.method == dram.method == "estimate"
    assert cpu.power_w == pytest.approx(200.0 * (IDLE_FRACTION + (1 - IDLE_FRACTION) * 0.5))
    assert cpu.busy == 0.5 and cpu.mem_total_bytes
    assert dram.power_w == pytest.approx(DRAM_W_PER_GIB * cpu.mem_total_bytes / 2**30)
