"""bench/gpu_truth.py (issue 19) in --simulated mode: the script that checks the collector on a real
GPU is itself run here, as the GPU machine would run it, and its printed figures are checked
against the simulated GPU's hand-worked energy.

It runs under ``python -S`` with only nvidia-ml-py and psutil importable (what the GPU machine has
besides PyTorch), so a new dependency on the collector's sampling path fails here, not there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pynvml
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SCALE = 0.05  # phases 30/60/60/60/30 s become 1.5/3/3/3/1.5 s; 1 Hz becomes 20 Hz
IDLE_W, FULL_W = 70.0, 700.0  # the script's simulated GPU
# Hand-worked energy per phase (J) of the simulated GPU: power = idle + (full - idle) x busy.
EXPECTED_J = {
    "idle": 30 * SCALE * IDLE_W,  # 105
    "full": 60 * SCALE * FULL_W,  # 2100
    "half_duty": 60 * SCALE * (IDLE_W + 0.5 * (FULL_W - IDLE_W)),  # 1155: busy 0.5 s of each 1 s
    "shared": 60 * SCALE * FULL_W,  # 2100: A keeps it busy
    "idle_end": 30 * SCALE * IDLE_W,  # 105
}


def _only_gpu_machine_packages(tmp: Path) -> Path:
    """A directory holding only nvidia-ml-py's module and psutil, for PYTHONPATH."""
    mini = tmp / "site"
    mini.mkdir()
    (mini / "pynvml.py").symlink_to(pynvml.__file__)
    (mini / "psutil").symlink_to(Path(psutil.__file__).parent)
    return mini


@pytest.fixture(scope="module")
def truth(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    tmp = tmp_path_factory.mktemp("gpu-truth")
    out = tmp / "figures.json"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin"),
        "PYTHONPATH": str(_only_gpu_machine_packages(tmp)),
    }
    script = str(ROOT / "bench" / "gpu_truth.py")
    proc = subprocess.run(
        [
            sys.executable,
            "-S",
            script,
            "--simulated",
            "--phase-scale",
            str(SCALE),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=tmp,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, json.loads(out.read_text())


def _printed(stdout: str) -> dict[str, str]:
    return dict(
        line.split(": ", 1)
        for line in stdout.splitlines()
        if ": " in line and " " not in line.split(": ")[0]
    )


def test_energy_matches_the_counter_and_the_hand_worked_phases(truth: tuple[str, dict]) -> None:
    stdout, figures = truth
    printed = _printed(stdout)
    assert stdout.strip().splitlines()[-1].startswith("gpu_energy_vs_counter_pct: ")
    assert abs(float(printed["gpu_energy_vs_counter_pct"])) <= 1.0
    # The power integral is only informative on real GPUs; on the simulator it must agree too.
    assert abs(float(printed["gpu_energy_vs_power_integral_pct"])) <= 2.0
    phases = {row["phase"]: row for row in figures["phases"]}
    assert list(phases) == list(EXPECTED_J)
    for name, expected in EXPECTED_J.items():
        row = phases[name]
        # The independent counter reads at the boundaries are the simulator's closed form, give
        # or take how late this busy box woke up to read them (at most 630 W more per second).
        slack = 0.01 * expected + row["late_s"] * (FULL_W - IDLE_W) + 1.0
        assert row["counter_j"] == pytest.approx(expected, abs=slack), name
        # The collector's windows of that phase hold the counter over their own span (a window's
        # time is stamped just before the device is read: allow 10 ms of a power step).
        slack = 0.01 * expected + 0.010 * (FULL_W - IDLE_W)
        assert row["collector_j"] == pytest.approx(row["counter_windows_j"], abs=slack), name
        # ... and that span is the phase (a window in the wrong phase is hundreds of J off).
        assert row["collector_j"] == pytest.approx(expected, abs=0.1 * expected + 30.0), name


def test_idle_seconds_are_detected_only_when_idle(truth: tuple[str, dict]) -> None:
    stdout, figures = truth
    printed = _printed(stdout)
    true_idle = 60 * SCALE
    assert float(printed["true_idle_s"]) == pytest.approx(true_idle)
    # At most a few 1-"second" intervals off: the first one after load still shows its tail.
    assert float(printed["idle_detected_s"]) == pytest.approx(true_idle, abs=5 * SCALE)
    phases = {row["phase"]: row for row in figures["phases"]}
    for busy in ("full", "half_duty", "shared"):
        assert phases[busy]["idle_detected_s"] == pytest.approx(0.0, abs=SCALE), busy


def test_shared_phase_is_split_by_per_process_utilization(truth: tuple[str, dict]) -> None:
    stdout, figures = truth
    split, util = figures["shared_split_pct"], figures["shared_util_pct"]
    # A runs flat out, B half of each second; time-slicing gives A 75 %, B 25 % of the SMs.
    assert util["proc-a"] == pytest.approx(75.0, abs=1.0)
    assert split["proc-a"] == pytest.approx(75.0, abs=3.0)
    assert split["proc-b"] == pytest.approx(25.0, abs=3.0)
    assert split["proc-a"] + split["proc-b"] == pytest.approx(100.0, abs=0.01)  # all attributed
    printed = _printed(stdout)
    assert printed["gpu_model"].startswith("Simulated H100")
    assert printed["gpu_driver"] == "sim-1.0"
    assert float(printed["collector_rss_mb"]) > 0
    assert float(printed["collector_cpu_percent"]) >= 0
