"""Slurm parsing against recorded output, and the per-process identity cache (no daemons needed).

squeue-22.05.8.json was recorded from Debian 12's slurm-wlm 22.05.8 (tests/testsupport/slurm.py);
scontrol-json-23.11-from-docs.json is hand-written (see its _provenance field).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from greenkpi_collector.attribution import Claim, split_interval
from greenkpi_collector.identity import Attributor
from greenkpi_collector.sources.base import ProcUse
from greenkpi_collector.sources.slurm import (
    ProcessIdentities,
    SlurmJobs,
    discover,
    proc_start_ticks,
    run_command,
)
from greenkpi_collector.sources.slurm_parse import (
    cluster_from_conf,
    expand_hostlist,
    facts_from_environ,
    gpu_indices,
    job_id_from_cgroup,
    parse_jobs,
)

from greenkpi_schema.v1 import scheduler_to_json

DATA = Path(__file__).parent / "data" / "slurm"


def load(name: str) -> dict:
    return json.loads((DATA / name).read_text())


def test_debian_22_05_squeue_json_gives_jobs_arrays_het_and_gres_indices():
    jobs = parse_jobs(load("squeue-22.05.8.json"), "fallback")
    train = jobs[1]
    assert (train.cluster, train.job_id, train.account, train.job_name) == (
        "gktest",
        "1",
        "vision",
        "train a",
    )
    assert train.comment == "greenkpi:model=resnet50" and train.user == "root"
    assert train.gpus_on("vm") == (0, 1) and train.state == "RUNNING"
    # A running job's end_time is start + time limit in 22.05: not reported as an end.
    assert train.start is not None and train.end is None
    array_task = jobs[6]  # Slurm's own id 6 is task 3 of array 2
    assert (array_task.job_id, array_task.array_job_id, array_task.array_task_id) == ("2_3", 2, 3)
    assert array_task.gpus_on("vm") == (2,) and array_task.run_key == "slurm:gktest:2_3"
    done = jobs[3]
    assert done.state == "COMPLETED" and done.end == done.start
    het = jobs[5]
    assert (het.job_id, het.het_job_id, het.het_job_offset) == ("4+1", 4, 1)
    assert het.run_key == jobs[4].run_key == "slurm:gktest:4"  # one het job is one run
    assert jobs[2].job_id == "2_4" and jobs[2].start is None  # pending task: no start
    # 22.05 leaves QOS empty without slurmdbd: absent, never "".
    assert train.qos is None
    assert scheduler_to_json(train.to_schema())["job_id"] == "1"


def test_the_newer_data_parser_format_from_the_docs():
    jobs = parse_jobs(load("scontrol-json-23.11-from-docs.json"), "fallback")
    task = jobs[4250]
    assert (task.job_id, task.array_job_id, task.array_task_id) == ("4242_7", 4242, 7)
    assert task.gpus_on("gpu01") == (0, 1) and task.gpus_on("gpu02") == (0, 1, 2, 3)
    assert task.start == datetime.fromtimestamp(1800000000, UTC) and task.end is None
    comp = jobs[4301]
    assert (comp.job_id, comp.run_key, comp.state) == ("4300+1", "slurm:hpc1:4300", "COMPLETED")
    assert comp.end == datetime.fromtimestamp(1800001800, UTC)
    assert comp.array_task_id is None and comp.comment is None


def test_a_listing_without_jobs_is_an_error_not_an_empty_cluster():
    with pytest.raises(ValueError, match="list in the Slurm JSON"):
        parse_jobs({"errors": [{"error": "Unable to contact slurm controller"}]}, "c")


@pytest.mark.parametrize(
    ("gres", "indices"),
    [
        ("gpu:2(IDX:0-1)", (0, 1)),
        ("gpu:1(IDX:2)", (2,)),
        ("gpu:a100:3(IDX:0,2-3)", (0, 2, 3)),
        ("gpu:a100:1(IDX:5),gpu:h100:1(IDX:7)", (5, 7)),
        ("mps:100(IDX:0),gpu:1(IDX:3)", (3,)),
        ("gpu:1(IDX:N/A)", ()),
        ("", ()),
    ],
)
def test_gres_indices(gres, indices):
    assert gpu_indices(gres) == indices


def test_hostlists():
    assert expand_hostlist("gpu[01-03,07],login1") == ["gpu01", "gpu02", "gpu03", "gpu07", "login1"]
    assert expand_hostlist("vm") == ["vm"]
    assert expand_hostlist("n[8-10]-ib") == ["n8-ib", "n9-ib", "n10-ib"]
    assert expand_hostlist("") == []


def test_job_ids_from_cgroup_v1_and_v2():
    # Recorded from the test cluster (cgroup v1, proctrack/cgroup) ...
    v1 = "9:name=systemd:/\n6:freezer:/slurm_vm/uid_0/job_2/step_batch\n0::/\n"
    assert job_id_from_cgroup(v1) == 2
    # ... and the cgroup v2 layout of Slurm's cgroup/v2 plugin (slurmstepd.scope).
    v2 = "0::/system.slice/slurmstepd.scope/job_1234/step_0/user/task_0\n"
    assert job_id_from_cgroup(v2) == 1234
    assert job_id_from_cgroup("0::/user.slice/user-1000.slice/session-2.scope\n") is None
    assert job_id_from_cgroup("4:memory:/process_api/job_xyz\n") is None


def test_facts_from_a_jobs_environment_are_marked_incomplete():
    env = {
        "SLURM_JOB_ID": "6",
        "SLURM_ARRAY_JOB_ID": "2",
        "SLURM_ARRAY_TASK_ID": "3",
        "SLURM_CLUSTER_NAME": "gktest",
        "SLURM_JOB_ACCOUNT": "arr",
    }
    facts = facts_from_environ(env, None)
    assert facts is not None
    assert (facts.job_id, facts.account, facts.complete) == ("2_3", "arr", False)
    assert facts_from_environ({"SLURM_JOB_ID": "x"}, "c") is None


def test_cluster_name_from_config_text():
    assert cluster_from_conf("ClusterName=test\nSlurmctldPort=6817\n") == "test"
    assert cluster_from_conf("ClusterName              = gktest\n") == "gktest"
    assert cluster_from_conf("SlurmUser=root\n") is None


def fake_proc(root: Path, pid: int, start: int, cgroup: str, environ: dict[str, str]) -> None:
    d = root / str(pid)
    d.mkdir(parents=True, exist_ok=True)
    rest = " ".join(["0"] * 18) + f" {start} 0 0"  # field 22 is the start time
    (d / "stat").write_text(f"{pid} (python x) S {rest}\n")
    (d / "cgroup").write_text(cgroup)
    (d / "environ").write_bytes(b"\0".join(f"{k}={v}".encode() for k, v in environ.items()))


def test_a_reused_pid_is_looked_up_afresh(tmp_path):
    fake_proc(tmp_path, 500, 1000, "6:freezer:/slurm_n/uid_0/job_7/step_0\n", {})
    procs = ProcessIdentities(tmp_path)
    assert proc_start_ticks(tmp_path, 500) == 1000
    assert procs.of(500).job == 7
    # Job 7 ended; PID 500 now belongs to a process of job 8, started later.
    fake_proc(tmp_path, 500, 2000, "6:freezer:/slurm_n/uid_0/job_8/step_0\n", {})
    assert procs.of(500).job == 8
    # Ended but not reaped (a zombie): gone too.
    stat = tmp_path / "500" / "stat"
    stat.write_text(stat.read_text().replace(") S ", ") Z "))
    assert procs.of(500) is None
    # Gone entirely: nobody gets its energy (not the last job we saw on that PID).
    for f in (tmp_path / "500").iterdir():
        f.unlink()
    assert procs.of(500) is None


def test_environment_fallback_when_the_cgroup_says_nothing(tmp_path):
    env = {"SLURM_JOB_ID": "12", "GREENKPI_TEAM": "nlp", "MLFLOW_RUN_ID": "abc", "HOME": "/root"}
    fake_proc(tmp_path, 501, 5, "0::/\n", env)
    ident = ProcessIdentities(tmp_path).of(501)
    assert ident.job == 12
    assert dict(ident.env) == {"GREENKPI_TEAM": "nlp", "MLFLOW_RUN_ID": "abc"}
    assert ProcessIdentities(tmp_path, slurm=False).of(501).job is None


class StaticSlurm(SlurmJobs):
    """Facts from a recorded listing through the real refresh code (a recorded runner)."""

    def __init__(self, listing: str, node: str = "vm", fail: bool = False) -> None:
        def runner(argv, timeout_s):
            if fail:
                raise RuntimeError("slurm_load_jobs error: Unable to contact slurm controller")
            if argv[0] == "scontrol":
                raise RuntimeError("scontrol: unrecognized option '--json'")
            return (DATA / listing).read_text()

        super().__init__("gktest", node, runner=runner)


def test_precedence_explicit_then_environment_then_scheduler(tmp_path):
    slurm = StaticSlurm("squeue-22.05.8.json")
    assert slurm.refresh() and slurm.status.command == "squeue --json"
    fake_proc(tmp_path, 600, 1, "6:freezer:/slurm_vm/uid_0/job_1/step_0\n", {})
    fake_proc(
        tmp_path, 601, 1, "6:freezer:/slurm_vm/uid_0/job_1/step_1\n", {"GREENKPI_TEAM": "nlp"}
    )
    fake_proc(tmp_path, 602, 1, "0::/\n", {"GREENKPI_TEAM": "vision", "GREENKPI_RUN": "r1"})
    attributor = Attributor(None, ProcessIdentities(tmp_path), slurm, {"GPU-0": 0})
    by_job = attributor.resolve(600)
    assert (by_job.team, by_job.run, by_job.job) == (None, None, ("gktest", 1))
    job, run = attributor.describe(by_job.job)
    assert (job.account, run, job.complete) == ("vision", "slurm:gktest:1", True)
    env_in_job = attributor.resolve(601)
    assert (env_in_job.team, env_in_job.job) == ("nlp", ("gktest", 1))  # env wins for team
    plain = attributor.resolve(602)
    assert (plain.team, plain.run, plain.job) == ("vision", "r1", None)
    assert attributor.resolve(603) is None  # no such process
    # A variable the schema would refuse (over 200 characters) is ignored, not sent.
    fake_proc(tmp_path, 604, 1, "0::/\n", {"GREENKPI_TEAM": "x" * 201, "GREENKPI_MODEL": "m"})
    odd = attributor.resolve(604)
    assert (odd.team, odd.model) == (None, "m")


def test_allocated_idle_and_job_end(tmp_path):
    slurm = StaticSlurm("squeue-22.05.8.json")
    slurm.refresh()
    attributor = Attributor(None, ProcessIdentities(tmp_path), slurm, {"GPU-0": 0, "GPU-3": 3})
    now = datetime.now(UTC).timestamp()
    held = attributor.allocated("GPU-0", now)
    assert held is not None and held.job == ("gktest", 1)
    assert attributor.allocated("GPU-3", now) is None  # no job holds GPU 3: host idle
    # No process on the GPU: the job is charged, flagged allocated-idle.
    [(key, energy)] = split_interval(10.0, [], attributor.resolve, held, idle=False)
    assert (key.method, key.job, energy) == ("allocated-idle", ("gktest", 1), 10.0)
    # A process of the job on a GPU < 5 % busy: allocated-idle too; busy: utilization.
    fake_proc(tmp_path, 700, 1, "6:freezer:/slurm_vm/uid_0/job_1/step_0\n", {})
    attributor.refresh()
    [(key, _)] = split_interval(10.0, [ProcUse(700, 0.01)], attributor.resolve, held, idle=True)
    assert key.method == "allocated-idle"
    [(key, _)] = split_interval(10.0, [ProcUse(700, 0.9)], attributor.resolve, held, idle=False)
    assert key.method == "utilization"
    # A job whose end is known holds nothing after it.
    done = slurm.snapshot.jobs[3]
    slurm.snapshot.allocated[1] = done.raw_id
    assert done.end is not None
    assert attributor.allocated("GPU-1", done.end.timestamp() - 1) is None  # not in gpu_index
    attributor.gpu_index["GPU-1"] = 1
    assert attributor.allocated("GPU-1", done.end.timestamp() - 1) is not None
    assert attributor.allocated("GPU-1", done.end.timestamp() + 1) is None


def test_a_failing_listing_keeps_what_is_known_flagged_incomplete(tmp_path):
    slurm = StaticSlurm("squeue-22.05.8.json")
    slurm.refresh()
    slurm.runner = StaticSlurm("squeue-22.05.8.json", fail=True).runner
    assert slurm.refresh() is False
    assert "Unable to contact" in slurm.errors()[0]
    assert slurm.facts(1).complete is False and slurm.facts(1).account == "vision"
    # A job never listed: only its id, incomplete.
    fake_proc(tmp_path, 800, 1, "6:freezer:/slurm_vm/uid_0/job_99/step_0\n", {})
    attributor = Attributor(None, ProcessIdentities(tmp_path), slurm, {})
    job, run = attributor.describe(attributor.resolve(800).job)
    assert scheduler_to_json(job) == {
        "kind": "slurm",
        "cluster": "gktest",
        "job_id": "99",
        "complete": False,
    }
    assert run == "slurm:gktest:99"


def test_claims_without_a_process_have_no_pid():
    claim = Claim(pid=None, team=None, model=None, run=None, job=("c", 1))
    [(key, _)] = split_interval(1.0, [], lambda pid: None, claim)
    assert key.pid is None


def test_without_scontrol_slurm_is_not_used_and_on_means_required(tmp_path, monkeypatch):
    from greenkpi_collector.agent import build_slurm
    from greenkpi_collector.config import load
    from greenkpi_collector.sources.base import SourceUnavailable
    from greenkpi_collector.sources.slurm import discover

    assert discover(which=lambda name: None) == (None, "scontrol is not on PATH")
    monkeypatch.setenv("PATH", str(tmp_path))  # no scontrol on it
    env = {"GREENKPI_STATE_DIR": str(tmp_path)}
    notes: list[str] = []
    assert build_slurm(load({}, env | {"GREENKPI_SLURM": "auto"}), notes) is None
    assert notes == []  # not a Slurm node: nothing to say
    assert build_slurm(load({}, env | {"GREENKPI_SLURM": "off"}), notes) is None
    with pytest.raises(SourceUnavailable, match="slurm = on, but scontrol is not on PATH"):
        build_slurm(load({}, env | {"GREENKPI_SLURM": "on"}), notes)


def test_an_unknown_job_triggers_a_listing_at_once():
    import threading

    calls = threading.Semaphore(0)

    def runner(argv, timeout_s):
        calls.release()
        return json.dumps({"jobs": []})

    slurm = SlurmJobs("c", "vm", refresh_s=3600, runner=runner)
    slurm.start()
    try:
        assert calls.acquire(timeout=5)  # the first listing, at start
        facts = slurm.describe(42)
        assert (facts.job_id, facts.complete) == ("42", False)
        assert calls.acquire(timeout=5)  # not an hour later
    finally:
        slurm.close()


def test_idle_energy_after_a_jobs_known_end_is_split_off_by_time():
    from greenkpi_collector.sources.base import Reading
    from greenkpi_collector.windows import resume

    from greenkpi_schema import SlurmJob

    t = 1_800_000_000.0

    def reading(joules: float) -> Reading:
        return Reading(
            uuid="GPU-0",
            kind="gpu",
            method="counter",
            counter=int(joules * 1000),
            counter_unit_j=1e-3,
            busy=0.0,
            procs=(),
        )

    def window_with_end(end: float | None):
        window = resume(reading(0), None, t, 0)
        held = Claim(pid=None, team=None, model=None, run=None, job=("c", 5))
        for k in range(1, 11):  # 100 J/s for 10 s, the GPU held by job 5 with no process
            window.add(reading(100.0 * k), t + k, lambda pid: None, held)
        ended = datetime.fromtimestamp(end, UTC) if end is not None else None

        def describe(job):
            return SlurmJob(cluster="c", job_id="5", end=ended), "slurm:c:5"

        return {s.method: s.energy_j for s in window.close(describe).shares}

    # The listing said the job ended 4.5 s into the window: 450 J were its, 550 J nobody's.
    assert window_with_end(t + 4.5) == pytest.approx(
        {"allocated-idle": 450.0, "unattributed": 550.0}
    )
    assert window_with_end(None) == pytest.approx({"allocated-idle": 1000.0})
    assert window_with_end(t - 1) == pytest.approx({"unattributed": 1000.0})


def test_text_listing_gives_the_same_facts_as_json():
    # Both recorded from the same jobs in one session of Debian's 22.05.8 (rec: arrays, het,
    # completed, a job name with a space, a comment).
    from greenkpi_collector.sources.slurm_parse import parse_jobs_text

    from_json = parse_jobs(load("squeue-22.05.8-b.json"), "gktest")
    text = (DATA / "scontrol-show-job-d-oneliner-22.05.8-b.txt").read_text()
    assert parse_jobs_text(text, "gktest") == from_json
    assert len(from_json) == 6 and from_json[1].job_name == "train a"


def test_without_json_plugins_the_listing_falls_back_to_text():
    calls = []

    def runner(argv, timeout_s):
        calls.append(" ".join(argv))
        if argv[:2] == ["scontrol", "--json"]:
            raise RuntimeError("scontrol: unrecognized option '--json'")  # 22.05, verified
        if argv[0] == "squeue":
            raise RuntimeError("squeue: error: cannot load serializer/json plugin")  # assumed text
        return (DATA / "scontrol-show-job-d-oneliner-22.05.8-b.txt").read_text()

    slurm = SlurmJobs("gktest", "vm", runner=runner)
    assert slurm.refresh() and slurm.refresh()
    assert calls == [
        "scontrol --json show job -d",
        "squeue --json",
        "scontrol show job -d --oneliner",
        "scontrol show job -d --oneliner",  # the fallback is remembered
    ]
    assert slurm.status.command == "scontrol show job -d --oneliner"
    assert slurm.facts(1).gpus_on("vm") == (0, 1)


def test_a_down_controller_is_a_failure_not_a_reason_to_change_format():
    def runner(argv, timeout_s):
        raise RuntimeError("slurm_load_jobs error: Unable to contact slurm controller")

    slurm = SlurmJobs("gktest", "vm", runner=runner)
    assert not slurm.refresh()
    assert slurm._json_scontrol and slurm._json_squeue


def test_a_failing_slurm_client_is_reported_on_one_line():
    """scontrol without a cluster writes three stderr lines; the collector logs one."""
    stderr = (
        "scontrol: error: resolve_ctls_from_dns_srv: res_nsearch error: Unknown host\n"
        "scontrol: error: fetch_config: DNS SRV lookup failed\n\n"
        "scontrol: fatal: Could not establish a configuration source\n"
    )
    script = f"import sys; sys.stderr.write({stderr!r}); sys.exit(1)"
    with pytest.raises(RuntimeError) as failed:
        run_command([sys.executable, "-c", script], timeout_s=30)
    assert str(failed.value) == (
        "scontrol: error: resolve_ctls_from_dns_srv: res_nsearch error: Unknown host; "
        "scontrol: error: fetch_config: DNS SRV lookup failed; "
        "scontrol: fatal: Could not establish a configuration source"
    )

    def runner(argv, timeout_s):
        return run_command([sys.executable, "-c", script], timeout_s)

    cluster, why = discover(runner=runner, which=lambda name: "/usr/bin/scontrol")
    assert cluster is None
    assert "\n" not in why
    assert why.startswith("scontrol show config failed: scontrol: error:")
