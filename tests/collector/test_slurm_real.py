"""The collector against a real Slurm cluster: jobs submitted with sbatch/srun, their real PIDs on
simulated GPUs, and the windows the collector's own sampler builds from them.

No part of Slurm is mocked: slurmctld/slurmd/munged run (tests/testsupport/slurm.py), job ids come
from cgroups of real processes, facts from the real ``squeue --json``. Only NVML is simulated, with
processes whose PIDs are those of the jobs, on the GPUs Slurm allocated to them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from gkc_helpers import COLLECTOR, Clock
from greenkpi_collector.identity import Attributor
from greenkpi_collector.sampler import Sampler
from greenkpi_collector.sources.nvml import NvmlSource
from greenkpi_collector.sources.sim import SIM_EPOCH, SimulatedNvml, sim_gpus
from greenkpi_collector.sources.slurm import (
    ProcessIdentities,
    SlurmJobs,
    discover,
    proc_start_ticks,
)
from greenkpi_collector.sources.slurm_parse import job_id_from_cgroup
from greenkpi_collector.spool import Spool

from greenkpi_schema import Limits, parse_batch

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
WINDOW_S = 10
# Sim power is base + amp (1 - cos(2 pi t / period)) / 2: with a 1000 s period, t = 500 s is a
# peak, so every GPU is busy (never < 5 %) for the whole window: no interval reads as idle.
START = SIM_EPOCH + 6500.0


class Rig:
    """The collector's real sampling path (NvmlSource -> Attributor -> Sampler -> Spool)."""

    def __init__(self, slurm, tmp_path: Path, timeout_s: float = 10.0) -> None:
        cluster, why = discover(timeout_s=10)
        assert cluster == slurm.cluster, why
        self.clock = Clock(START)
        self.gpus = sim_gpus(4, "slurmnode")
        for gpu in self.gpus:
            gpu.period_s = 1000.0
        self.nvml = NvmlSource(SimulatedNvml(self.gpus, clock=self.clock))
        self.jobs = SlurmJobs(cluster, slurm.node, refresh_s=3600, timeout_s=timeout_s)
        self.attributor = Attributor(
            None, ProcessIdentities(), self.jobs, {g.uuid: g.index for g in self.nvml.gpus}
        )
        self.spool = Spool(tmp_path / "spool.sqlite3")
        self.sampler = Sampler(
            sources=[self.nvml],
            spool=self.spool,
            registry=None,
            host_load=None,
            interval_s=1.0,
            window_s=WINDOW_S,
            max_resume_gap_s=0,
            clock=self.clock,
            attributor=self.attributor,
        )

    def on_gpus(self, indices, pid: int, util: float = 50.0) -> None:
        for i in indices:
            self.gpus[i].processes = [(pid, util)]

    def ticks(self, n: int) -> None:
        for _ in range(n):
            self.sampler.tick()
            self.clock.advance(1.0)

    def windows(self) -> list[dict]:
        """The spooled windows, validated by the server's own schema."""
        rows = [json.loads(b) for (b,) in self.spool.db.execute("SELECT body FROM windows")]
        body = {"schema_version": 1, "host": {"hostname": "vm"}, "samples": rows}
        now = datetime.fromtimestamp(self.clock(), UTC)
        parse_batch(json.loads(json.dumps(body)), now=now, limits=Limits())
        return rows

    def by_gpu(self) -> dict[int, dict]:
        index = {g.uuid: i for i, g in enumerate(self.gpus)}
        return {index[w["device_uuid"]]: w for w in self.windows()}


def gpu_energy(rig: Rig, index: int, t0: float, t1: float) -> float:
    """The simulator's exact joules on one GPU between two wall times (what the counter says)."""
    gpu = rig.gpus[index]
    return (gpu.counter_mj(t1) - gpu.counter_mj(t0)) / 1000.0


def step_pid(slurm, job_id: str) -> int:
    """The PID of the job's srun step (cgroup .../job_<id>/step_0), waiting for it to start."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for pid in slurm.job_pids(job_id):
            try:
                if "/step_0" in Path(f"/proc/{pid}/cgroup").read_text():
                    return pid
            except OSError:
                continue
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never ran its srun step: {slurm.logs()}")


def test_jobs_of_two_accounts_a_multi_gpu_job_and_an_idle_allocation(slurm, tmp_path):
    a = slurm.sbatch(
        "--gres=gpu:2", "--account=vision", "--comment=greenkpi:model=resnet50", "-J", "train-a"
    )
    b = slurm.sbatch(
        "--gres=gpu:1", "--account=nlp", "-J", "bert", script="srun --gres=gpu:1 sleep 300"
    )
    c = slurm.sbatch("--gres=gpu:1", "--account=unmapped-acct", "-J", "holds-a-gpu")
    pid_a = slurm.wait_running(a)[-1]
    pid_b = step_pid(slurm, b)
    slurm.wait_running(c)
    # The real cgroup layout names the job (the environ fallback is not what answers here).
    assert job_id_from_cgroup(Path(f"/proc/{pid_a}/cgroup").read_text()) == int(a)
    assert job_id_from_cgroup(Path(f"/proc/{pid_b}/cgroup").read_text()) == int(b)
    rig = Rig(slurm, tmp_path)
    assert rig.jobs.refresh(), rig.jobs.status.last_error
    facts = {j: rig.jobs.facts(int(j)) for j in (a, b, c)}
    gpus = {j: f.gpus_on(slurm.node) for j, f in facts.items()}
    assert sorted(len(g) for g in gpus.values()) == [1, 1, 2]
    assert sorted(i for g in gpus.values() for i in g) == [0, 1, 2, 3]
    rig.on_gpus(gpus[a], pid_a, util=60)
    rig.on_gpus(gpus[b], pid_b, util=30)  # c's GPU: allocated, no process
    rig.ticks(WINDOW_S + 1)
    windows = rig.by_gpu()
    assert len(windows) == 4
    for index in gpus[a]:
        [share] = windows[index]["shares"]
        assert share["method"] == "utilization" and share["pid"] == pid_a
        assert share["run"] == f"slurm:gktest:{a}" and "team" not in share
        assert share["energy_j"] == pytest.approx(windows[index]["energy_j"])
        assert share["scheduler"] == {
            "kind": "slurm",
            "cluster": "gktest",
            "job_id": a,
            "user": "root",
            "account": "vision",
            "partition": "debug",
            "job_name": "train-a",
            "comment": "greenkpi:model=resnet50",
            "nodes": slurm.node,
            "start": facts[a].to_schema().start.isoformat().replace("+00:00", "Z"),
        }
    [share_b] = windows[gpus[b][0]]["shares"]
    assert (share_b["pid"], share_b["scheduler"]["account"]) == (pid_b, "nlp")
    assert share_b["run"] == f"slurm:gktest:{b}"
    [idle] = windows[gpus[c][0]]["shares"]
    assert idle["method"] == "allocated-idle" and "pid" not in idle
    assert idle["scheduler"]["account"] == "unmapped-acct" and idle["run"] == f"slurm:gktest:{c}"
    t0 = windows[gpus[c][0]]["start"]
    start = datetime.fromisoformat(t0).timestamp()
    assert idle["energy_j"] == pytest.approx(gpu_energy(rig, gpus[c][0], start, start + WINDOW_S))


def test_environment_attribution_inside_and_outside_slurm(slurm, tmp_path):
    job = slurm.sbatch(
        "--gres=gpu:1",
        "--account=vision",
        "--export=ALL,GREENKPI_TEAM=nlp,MLFLOW_RUN_ID=run-abc",
        "-J",
        "env-job",
    )
    pid_job = slurm.wait_running(job)[-1]
    env = {"PATH": os.environ["PATH"], "GREENKPI_TEAM": "vision", "GREENKPI_MODEL": "m1"}
    env["GREENKPI_RUN"] = "r-7"
    outside = subprocess.Popen(["sleep", "300"], env=env)
    try:
        rig = Rig(slurm, tmp_path)
        assert rig.jobs.refresh()
        [held] = rig.jobs.facts(int(job)).gpus_on(slurm.node)
        other = next(i for i in range(4) if i != held)
        rig.on_gpus([held], pid_job)
        rig.on_gpus([other], outside.pid)
        rig.ticks(WINDOW_S + 1)
        windows = rig.by_gpu()
    finally:
        outside.kill()
        outside.wait()
    [in_job] = windows[held]["shares"]
    # GREENKPI_TEAM in the job's environment wins for team; the job still gives run and identity.
    assert in_job["team"] == "nlp" and in_job["run"] == f"slurm:gktest:{job}"
    assert in_job["tags"] == {"mlflow_run_id": "run-abc"}
    assert in_job["scheduler"]["account"] == "vision"
    [plain] = windows[other]["shares"]
    assert (plain["team"], plain["model"], plain["run"]) == ("vision", "m1", "r-7")
    assert "scheduler" not in plain


def test_a_job_that_ends_mid_window_is_split_by_time(slurm, tmp_path):
    job = slurm.sbatch("--gres=gpu:1", "--account=vision", "-J", "short")
    pid = slurm.wait_running(job)[-1]
    rig = Rig(slurm, tmp_path)
    assert rig.jobs.refresh()
    [held] = rig.jobs.facts(int(job)).gpus_on(slurm.node)
    rig.on_gpus([held], pid)
    rig.ticks(1)  # opens the window at START
    rig.ticks(4)  # intervals ending START+1 .. START+4 run with the job's process
    slurm.run("scancel", job)
    deadline = time.monotonic() + 30
    while proc_start_ticks(Path("/proc"), pid) is not None:  # gone (or a zombie)
        assert time.monotonic() < deadline, f"job {job}'s process outlived scancel"
        time.sleep(0.05)
    assert rig.jobs.refresh()  # what the background thread does next
    rig.gpus[held].processes = []  # NVML no longer lists the ended process
    rig.ticks(WINDOW_S + 1 - 5)
    window = rig.by_gpu()[held]
    shares = {s["method"]: s for s in window["shares"]}
    assert set(shares) == {"utilization", "unattributed"}, window["shares"]
    assert shares["utilization"]["run"] == f"slurm:gktest:{job}"
    assert shares["utilization"]["energy_j"] == pytest.approx(
        gpu_energy(rig, held, START, START + 4)
    )
    assert shares["unattributed"]["energy_j"] == pytest.approx(
        gpu_energy(rig, held, START + 4, START + WINDOW_S)
    )


def test_a_hung_controller_never_blocks_sampling_and_flags_attribution(slurm, tmp_path):
    job = slurm.sbatch("--gres=gpu:1", "--account=vision", "-J", "during-hang")
    pid = slurm.wait_running(job)[-1]
    rig = Rig(slurm, tmp_path, timeout_s=3.0)
    assert rig.jobs.refresh()
    [held] = rig.jobs.facts(int(job)).gpus_on(slurm.node)
    rig.on_gpus([held], pid)
    ctld = slurm.procs[0]
    os.kill(ctld.pid, signal.SIGSTOP)  # slurmctld stops answering: squeue hangs
    try:
        refresher = threading.Thread(target=rig.jobs.refresh)
        refresher.start()
        slowest = 0.0
        for _ in range(WINDOW_S):  # the window stays open: it closes at the next tick
            began = time.monotonic()
            rig.ticks(1)
            slowest = max(slowest, time.monotonic() - began)
        assert refresher.is_alive()  # all ten ticks ran while the listing hung
        refresher.join(timeout=10)
        assert not refresher.is_alive()
        assert rig.jobs.status.failures == 1 and "Timeout" in rig.jobs.status.last_error
    finally:
        os.kill(ctld.pid, signal.SIGCONT)
    assert slowest < 1.0  # ticks never waited for the hung command (killed after 3 s)
    rig.ticks(1)
    [share] = rig.by_gpu()[held]["shares"]
    # What was known before the hang is sent, flagged: the facts may be stale.
    assert share["scheduler"]["account"] == "vision"
    assert share["scheduler"]["complete"] is False


def test_check_says_what_slurm_shows_and_writes_nothing(slurm, tmp_path):
    job = slurm.sbatch("--gres=gpu:2", "--account=vision", "-J", "seen-by-check")
    slurm.wait_running(job)
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENKPI_")}
    env.update(GREENKPI_STATE_DIR=str(state), GREENKPI_GPU="sim", GREENKPI_CPU="off")
    out = subprocess.run(
        [COLLECTOR, "check"], env=env, capture_output=True, text=True, timeout=60
    ).stdout
    # Earlier tests' cancelled jobs stay listed for MinJobAge; one job holds GPUs here.
    assert re.search(
        f"Slurm: cluster gktest, node {slurm.node}: [0-9]+ job\\(s\\) listed by 'squeue --json', "
        "1 with GPUs on this node",
        out,
    ), out
    assert f"Slurm job {job} (RUNNING): user root, account vision, partition debug, GPUs 0,1" in out
    assert "Slurm: GPUs allocated on this node: 0, 1" in out
    assert not state.exists()  # nothing written, not even an empty spool
    env["GREENKPI_SLURM"] = "off"
    out = subprocess.run([COLLECTOR, "check"], env=env, capture_output=True, text=True).stdout
    assert "Slurm: off" in out


def test_the_text_fallback_reads_the_live_cluster_as_json_does(slurm, tmp_path):
    job = slurm.sbatch("--gres=gpu:2", "--account=vision", "--comment=greenkpi:x", "-J", "a b")
    slurm.wait_running(job)
    as_json = SlurmJobs("gktest", slurm.node)
    as_text = SlurmJobs("gktest", slurm.node)
    as_text._json_scontrol = as_text._json_squeue = False  # what a build without JSON does
    assert as_json.refresh() and as_text.refresh()
    assert as_text.status.command == "scontrol show job -d --oneliner"
    assert as_text.snapshot.jobs == as_json.snapshot.jobs
    assert as_text.snapshot.allocated == as_json.snapshot.allocated == {0: int(job), 1: int(job)}
