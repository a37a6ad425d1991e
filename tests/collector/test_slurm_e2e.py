"""End to end with real Slurm: jobs submitted with sbatch, a real `greenkpi-collector run` (its GPUs
simulated, listing the jobs' real PIDs on the GPUs Slurm allocated) posting to the live backend.
The stored shares must carry the job identity. The hand-worked page/API scenario is
tests/workloads/test_slurm_scenario.py; this test proves the collector half feeds it for real."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest
from gkc_helpers import COLLECTOR, REPO, collector_env, spool_depth, wait_until

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
HOST = "slurm-e2e-host"


@pytest.fixture(autouse=True)
def _no_rate_limit(settings) -> None:
    settings.INGEST_RATE_PER_MINUTE = 1_000_000


def job_shares():
    from greenkpi.ingest.models import SampleShare

    return list(
        SampleShare.objects.filter(
            device__host__hostname=HOST, scheduler_job__isnull=False
        ).select_related("scheduler_job", "device")
    )


def test_a_real_collector_on_a_slurm_node_stores_each_windows_job(
    slurm, tmp_path, live_server, acme_token
):
    _, secret = acme_token
    train = slurm.sbatch(
        "--gres=gpu:1", "--account=vision", "--comment=greenkpi:model=resnet50", "-J", "train"
    )
    pid = slurm.wait_running(train)[-1]
    idle = slurm.sbatch("--gres=gpu:1", "--account=unmapped-acct", "-J", "holds-a-gpu")
    slurm.wait_running(idle)
    held = {job: _gres_index(slurm, job) for job in (train, idle)}
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps({"processes": {str(held[train]): [[pid, 70]]}}))
    env = collector_env(
        tmp_path,
        live_server.url,
        secret,
        GREENKPI_HOSTNAME=HOST,
        GREENKPI_SLURM="on",
        GREENKPI_SLURM_NODE=slurm.node,
        GREENKPI_SIM_SCENARIO=str(scenario),
        GREENKPI_WINDOW_S="1",
        GREENKPI_SIM_GPUS="4",  # one per fake GRES GPU: Slurm may hand out any index
        SLURM_CONF=str(slurm.conf),
    )
    log = tmp_path / "collector.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([COLLECTOR, "run"], env=env, stdout=out, stderr=out, cwd=REPO)
    try:
        # Poll the collector's spool, not the database (SQLite's in-memory test database is
        # locked while the live server writes): both GPUs' windows measured and all delivered.
        state = tmp_path / "state"
        wait_until(lambda: "job(s) on node" in log.read_text(), 40, "the first Slurm listing")
        # Windows closed before that listing carry partial facts (complete: false): wait for
        # five more windows of each of the four GPUs, which have the full facts. Five, not
        # three: the simulated load is under 5 % busy for 2.9 s of every 20 s period
        # (sources/sim.py: (1 - cos)/2 < 0.05), when even the training job's own GPU is
        # allocated-idle, and three 1 s windows (~2.3 s after a partial first one) fell
        # wholly in that dip in ~3 % of runs, leaving no utilization share to find.
        listed_at = spool_depth(state)[1]
        wait_until(lambda: spool_depth(state)[1] >= listed_at + 4 * 5, 40, "windows after it")
        wait_until(lambda: spool_depth(state)[0] == 0, 30, "every window delivered")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]
    shares = job_shares()
    busy = [s for s in shares if s.method == "utilization"]
    waste = [s for s in shares if s.method == "allocated-idle"]
    # What to read when this fails: the stored shares and the collector's own account.
    story = (
        f"pid {pid}, GPUs {held}; shares (device, method, job, pid): "
        f"{[(s.device.uuid[-2:], s.method, s.scheduler_job.job_id, s.pid) for s in shares]}; "
        f"collector log:\n{log.read_text()[-4000:]}"
    )
    assert busy, f"the training job's process was attributed to it; {story}"
    for share in busy:
        job = share.scheduler_job
        assert (job.kind, job.cluster, job.job_id) == ("slurm", "gktest", train)
        assert (job.account, job.comment, job.job_name) == (
            "vision",
            "greenkpi:model=resnet50",
            "train",
        )
        assert share.run_key == f"slurm:gktest:{train}" and share.pid == pid
        assert share.device.uuid.endswith(f"-{held[train]:02d}")
    on_idle_gpu = [s for s in waste if s.device.uuid.endswith(f"-{held[idle]:02d}")]
    assert on_idle_gpu, f"the GPU held without a process was charged to its job; {story}"
    for share in on_idle_gpu:
        job = share.scheduler_job
        assert (job.job_id, job.account, job.complete) == (idle, "unmapped-acct", True)
        assert share.pid is None and share.run_key == f"slurm:gktest:{idle}"
    # The simulated load dips below 5 % busy every period: while it does, the training job's own
    # GPU is allocated-idle too, charged to that job (never to the other one).
    for share in waste:
        if share not in on_idle_gpu:
            assert share.scheduler_job.job_id == train and share.pid == pid
    # Only the two jobs' GPUs carry job shares (the other simulated GPUs are nobody's).
    assert {s.device.uuid[-2:] for s in shares} == {f"{held[train]:02d}", f"{held[idle]:02d}"}


def _gres_index(slurm, job: str) -> int:
    """The GPU index Slurm gave a 1-GPU job (scontrol show job -d: GRES=gpu:1(IDX:n))."""
    text = slurm.run("scontrol", "show", "job", "-d", job)
    marker = "(IDX:"
    return int(text[text.index(marker) + len(marker) :].split(")", 1)[0])
