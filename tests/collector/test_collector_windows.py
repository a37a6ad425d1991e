"""Window maths: exact energy from counters, wrap and reset, idle seconds, average and peak power,
and resuming after a restart without a gap."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest
from gkc_helpers import Clock
from greenkpi_collector.sampler import Sampler
from greenkpi_collector.sources.base import Reading
from greenkpi_collector.sources.nvml import NvmlSource
from greenkpi_collector.sources.sim import SimGpu, SimulatedNvml
from greenkpi_collector.spool import Spool
from greenkpi_collector.windows import Cursor, DeviceWindow, counter_delta, resume


def gpu_reading(
    counter: int | None, busy: float | None = None, power: float | None = None
) -> Reading:
    return Reading(
        "GPU-x",
        "gpu",
        "counter" if counter is not None else "power_integral",
        counter=counter,
        counter_unit_j=1.0,
        busy=busy,
        power_w=power,
    )


def run_window(readings: list[Reading], step_s: float = 1.0) -> DeviceWindow:
    first = readings[0]
    window = DeviceWindow(first.uuid, first.kind, 0.0, 0.0, first, first.counter)
    for i, r in enumerate(readings[1:], start=1):
        window.add(r, i * step_s, lambda pid: None)
    return window


def test_counter_deltas_handle_wrap_and_reset() -> None:
    assert counter_delta(100, 250, None) == 150
    assert counter_delta(900, 100, 1000) == 200  # RAPL energy_uj wrapped at max_energy_range_uj
    assert counter_delta(900, 100, None) is None  # NVML counter reset: no range, no guess


def test_window_energy_average_and_peak_power_from_counter_deltas() -> None:
    window = run_window([gpu_reading(c) for c in (1000, 1100, 1400, 1600)])
    sample = window.close()
    assert sample is not None
    assert sample.energy_j == 600.0 and sample.method == "counter"
    assert sample.power_avg_w == pytest.approx(200.0)
    assert sample.power_peak_w == pytest.approx(300.0)


def test_a_counter_reset_is_skipped_never_negative_never_a_spike() -> None:
    sample = run_window([gpu_reading(c) for c in (5000, 6000, 40, 140)]).close()
    assert sample is not None
    assert sample.energy_j == 1100.0  # 1000 before the reset, 100 after; the reset interval: 0
    assert sample.power_peak_w == pytest.approx(1000.0)


def test_rapl_wrap_around_inside_a_window() -> None:
    readings = [
        Reading(
            "rapl-package-0",
            "cpu",
            "counter",
            counter=c,
            counter_unit_j=1e-6,
            counter_range=1_000_000,
        )
        for c in (900_000, 950_000, 20_000, 70_000)
    ]
    sample = run_window(readings).close()
    assert sample is not None and sample.energy_j == pytest.approx(0.17)


def test_a_missed_counter_read_is_deferred_not_lost() -> None:
    readings = [
        gpu_reading(0),
        Reading("GPU-x", "gpu", "power_integral", power_w=999.0),
        gpu_reading(2000),
    ]
    sample = run_window(readings).close()
    assert sample is not None and sample.energy_j == 2000.0 and sample.method == "counter"


def test_power_readings_are_integrated_by_trapezoid_and_flagged() -> None:
    sample = run_window([gpu_reading(None, power=p) for p in (100.0, 200.0, 200.0)]).close()
    assert sample is not None
    assert sample.energy_j == pytest.approx(150.0 + 200.0)
    assert sample.method == "power_integral"


def test_idle_seconds_count_intervals_under_five_percent_busy() -> None:
    busy = [0.0, 0.0, 0.049, 0.05, 0.5, 1.0]
    sample = run_window([gpu_reading(1000 * i, busy=b) for i, b in enumerate(busy)]).close()
    assert sample is not None
    assert sample.idle_s == pytest.approx(2.0)  # 0.0 and 0.049; exactly 5 % is not idle
    assert sample.util_busy == pytest.approx((0.0 + 0.049 + 0.05 + 0.5 + 1.0) / 5)


def sampler(tmp_path: Path, clock: Clock, gpus: list[SimGpu], window_s: float = 10.0) -> Sampler:
    return Sampler(
        sources=[NvmlSource(SimulatedNvml(gpus, clock))],
        spool=Spool(tmp_path / "spool.sqlite3"),
        registry=None,
        host_load=None,
        interval_s=1.0,
        window_s=window_s,
        max_resume_gap_s=600.0,
        clock=clock,
    )


def spooled(s: Sampler) -> list[dict]:
    import json

    return [json.loads(b) for (b,) in s.spool.db.execute("SELECT body FROM windows ORDER BY id")]


def test_windows_tile_time_and_their_energy_is_exactly_the_counter_delta(tmp_path, clock) -> None:
    gpu = SimGpu("GPU-a", period_s=7.3)
    s = sampler(tmp_path, clock, [gpu])
    rng = random.Random(4)
    clock.advance(3.0)  # start mid-window: the first window is partial
    first = clock()
    for _ in range(80):
        s.tick()
        clock.advance(round(rng.uniform(0.6, 1.4), 3))  # jittery ticks must not matter
    windows = spooled(s)
    assert len(windows) >= 6
    for before, after in itertools.pairwise(windows):
        assert before["end"] == after["start"]  # contiguous: no gap, no overlap
    for w in windows[1:-1]:  # after the partial first one, windows start on 10 s boundaries
        assert int(w["start"][17:19]) % 10 <= 1
    total = sum(w["energy_j"] for w in windows)
    last_end = s.windows["GPU-a"].start_wall
    assert total == pytest.approx(gpu.energy_j(last_end) - gpu.energy_j(first), abs=2e-3)


def test_a_restart_resumes_from_the_cursor_so_the_gap_is_measured(tmp_path, clock) -> None:
    gpu = SimGpu("GPU-a")
    first = clock()
    s = sampler(tmp_path, clock, [gpu])
    for _ in range(25):
        s.tick()
        clock.advance(1.0)
    s.spool.close()
    clock.advance(42.0)  # killed; restarted 42 s later
    s2 = sampler(tmp_path, clock, [gpu])
    for _ in range(25):
        s2.tick()
        clock.advance(1.0)
    windows = spooled(s2)
    for before, after in itertools.pairwise(windows):
        assert before["end"] == after["start"]
    total = sum(w["energy_j"] for w in windows)
    assert total == pytest.approx(
        gpu.energy_j(s2.windows["GPU-a"].start_wall) - gpu.energy_j(first), abs=2e-3
    )


def test_no_resume_across_a_counter_reset_or_a_long_gap() -> None:
    cursor = Cursor(t_wall=100.0, counter=5000, unit_j=1.0, range_units=None)
    reset = resume(gpu_reading(10), cursor, 110.0, 600.0)
    assert reset.start_wall == 110.0 and reset.energy_j == 0
    late = resume(gpu_reading(9000), cursor, 100.0 + 601, 600.0)
    assert late.start_wall == 701.0
    ok = resume(gpu_reading(9000), cursor, 110.0, 600.0)
    assert (ok.start_wall, ok.energy_j) == (100.0, 4000.0)


def test_a_counter_reset_in_the_sim_never_yields_negative_energy(tmp_path, clock) -> None:
    gpu = SimGpu("GPU-a", resets=[clock() + 14.5])
    s = sampler(tmp_path, clock, [gpu])
    for _ in range(40):
        s.tick()
        clock.advance(1.0)
    windows = spooled(s)
    assert all(w["energy_j"] >= 0 for w in windows)
    peak = max(w["power_peak_w"] for w in windows)
    assert peak <= gpu.base_w + gpu.amp_w + 1  # no spike from the reset
    assert any("reset" in e for e in s.take_errors())
