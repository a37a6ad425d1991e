"""Attribution: the split rule, the registry (children, stale PIDs), track() and wrap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from gkc_helpers import COLLECTOR, Clock
from greenkpi_collector import track
from greenkpi_collector.attribution import Claim, Registry, ShareKey, register, split_interval
from greenkpi_collector.sampler import Sampler
from greenkpi_collector.sources.base import ProcUse
from greenkpi_collector.sources.nvml import NvmlSource
from greenkpi_collector.sources.sim import SimGpu, SimulatedNvml
from greenkpi_collector.spool import Spool

NLP = Claim(pid=10, team="nlp", model="bert", run="r1")


def claims(mapping: dict[int, Claim]):
    return mapping.get


def test_energy_is_split_by_utilization_and_unclaimed_goes_unattributed() -> None:
    parts = split_interval(100.0, [ProcUse(10, 0.6), ProcUse(20, 0.2)], claims({10: NLP}))
    assert parts == [
        (ShareKey.of(NLP, "utilization"), pytest.approx(75.0)),
        (ShareKey.unattributed(), pytest.approx(25.0)),
    ]


def test_equal_shares_when_the_driver_gives_no_utilization() -> None:
    parts = split_interval(
        90.0, [ProcUse(10, None), ProcUse(20, None), ProcUse(30, 0.0)], claims({10: NLP})
    )
    assert [round(v, 9) for _, v in parts] == [30.0, 30.0, 30.0]
    assert parts[0][0].method == "equal" and parts[1][0] == ShareKey.unattributed()


def test_an_idle_gpu_with_no_process_is_unattributed() -> None:
    assert split_interval(50.0, [], claims({})) == [(ShareKey.unattributed(), 50.0)]


def test_window_shares_sum_to_the_window_and_carry_their_method(
    tmp_path: Path, clock: Clock
) -> None:
    gpu = SimGpu("GPU-a", processes=[(os.getpid(), 60.0), (999_999, 20.0)])
    registry = Registry(tmp_path / "reg")
    s = Sampler(
        sources=[NvmlSource(SimulatedNvml([gpu], clock))],
        spool=Spool(tmp_path / "s.sqlite3"),
        registry=registry,
        host_load=None,
        interval_s=1.0,
        window_s=10.0,
        max_resume_gap_s=60.0,
        clock=clock,
    )
    with track(team="nlp", model="bert", run="r1", directory=tmp_path / "reg"):
        for _ in range(6):
            s.tick()
            clock.advance(1.0)
        gpu.processes = []  # the job ended: the GPU idles, nobody's
        for _ in range(6):
            s.tick()
            clock.advance(1.0)
    (body,) = s.spool.db.execute("SELECT body FROM windows").fetchone()
    sample = json.loads(body)
    shares = {(sh.get("team"), sh["method"]): sh["energy_j"] for sh in sample["shares"]}
    assert set(shares) == {("nlp", "utilization"), (None, "unattributed")}
    assert sum(shares.values()) == pytest.approx(sample["energy_j"], rel=1e-12)
    nlp = next(sh for sh in sample["shares"] if sh.get("team") == "nlp")
    assert (nlp["model"], nlp["run"], nlp["pid"]) == ("bert", "r1", os.getpid())


def test_children_of_a_registered_process_are_matched(tmp_path: Path) -> None:
    with track(team="vision", model="resnet", directory=tmp_path):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            registry = Registry(tmp_path)
            registry.refresh()
            claim = registry.resolve(child.pid)
            assert claim is not None and (claim.team, claim.pid) == ("vision", os.getpid())
        finally:
            child.kill()
            child.wait()
    registry.refresh()
    assert registry.claims() == []
    assert not list(tmp_path.glob("*.json"))  # track() removed its registration


def test_a_registration_of_a_dead_or_reused_pid_is_void(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    register(tmp_path, {"pid": dead.pid, "create_time": 1.0, "team": "nlp"})
    register(tmp_path, {"pid": os.getpid(), "create_time": 1.0, "team": "nlp"})  # reused PID
    registry = Registry(tmp_path)
    registry.refresh()
    assert registry.claims() == [] and registry.resolve(os.getpid()) is None
    assert not list(tmp_path.glob("*.json"))  # stale files are cleaned up


def test_track_warns_but_never_breaks_the_job(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with (
        pytest.warns(RuntimeWarning, match="unattributed"),
        track(team="nlp", directory=blocker / "x"),
    ):
        pass


@pytest.mark.slow
def test_wrap_registers_runs_the_command_and_passes_its_exit_code(tmp_path: Path) -> None:
    probe = (
        "import json, os, pathlib, sys;"
        "d = pathlib.Path(sys.argv[1]);"
        "rec = json.loads((d / f'{os.getppid()}.json').read_text());"
        "print(rec['team'], rec['model'], rec['run'], rec['tags']);"
        "sys.exit(3)"
    )
    done = subprocess.run(
        [
            COLLECTOR,
            "wrap",
            "--team",
            "nlp",
            "--model",
            "bert",
            "--run",
            "r7",
            "--tag",
            "stage=ft",
            "--registry-dir",
            str(tmp_path),
            "--",
            sys.executable,
            "-c",
            probe,
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout.strip() == "nlp bert r7 {'stage': 'ft'}"
    assert not list(tmp_path.glob("*.json"))
