"""A real single-node Slurm cluster on localhost for tests: munged + slurmctld + slurmd, no systemd.

Debian's slurm-wlm (installed by .ci/run) with four fake GPUs (/dev/fakegpu0-3, copies of
/dev/null) as GRES, cgroup v1 process tracking so a job's processes carry ``job_<id>`` in
/proc/<pid>/cgroup as on a production node, and every file under a scratch directory.
Set-up and pitfalls: shared/reference/slurm-single-node.md. Ports 6817/6818, munged and
/dev/fakegpu* are machine-wide, so one cluster per machine at a time: a test session holds an
exclusive lock file for its cluster's lifetime and another session waits for it (several test runs
share one box here).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

CTLD_PORT = 6817
SLURMD_PORT = 6818
FAKE_GPUS = 4
DEADLINE_S = 30.0
MUNGE_PID = Path("/run/munge/munged.pid")
LOCK_FILE = Path("/tmp/greenkpi-test-slurm.lock")
LOCK_WAIT_S = 900.0
REQUIRED = ("slurmctld", "slurmd", "sbatch", "scontrol", "squeue", "scancel", "munged")


def missing_tools() -> list[str]:
    """Programs this harness needs that are not installed (empty when Slurm can run here)."""
    paths = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return [tool for tool in REQUIRED if shutil.which(tool, path=paths) is None]


def _alive(pid: int) -> bool:
    """True while the process runs; a zombie counts as gone (PID 1 here may not reap)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return not _alive(pid)


def stale_daemons(own_conf: Path | None = None) -> list[int]:
    """PIDs of slurmctld/slurmd processes started by an earlier test session that died.

    Only called with the machine lock held, so any Slurm daemon running from a scratch
    ``slurm.conf`` other than ours was left by a session killed before its teardown (a
    ``timeout`` around pytest does that). It would keep ports 6817/6818 and answer our client
    commands in place of our own controller, which a test that pauses "its" controller then
    misreads (seen here).
    """
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv or Path(argv[0].decode(errors="replace")).name not in ("slurmctld", "slurmd"):
            continue
        conf = argv[argv.index(b"-f") + 1].decode(errors="replace") if b"-f" in argv else ""
        if conf.endswith("slurm.conf") and conf != str(own_conf) and _alive(int(proc.name)):
            pids.append(int(proc.name))
    return pids


def stale_job_processes() -> list[int]:
    """PIDs of a dead session's job steps: slurmstepd and the processes in its job cgroups.

    They outlive a SIGKILLed slurmd, and a new cluster numbers its jobs from 1 again, so a
    stale ``job_2`` process would be taken for our job 2. Only called with the machine lock
    held and before our daemons start, when no job of ours exists.
    """
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            comm = (proc / "comm").read_text().strip()
            cgroup = (proc / "cgroup").read_text()
        except OSError:
            continue
        if comm == "slurmstepd" or ("/job_" in cgroup and "/slurm" in cgroup):
            pids.append(int(proc.name))
    return pids


def stop_stale_daemons(own_conf: Path | None = None) -> None:
    for pid in stale_daemons(own_conf) + stale_job_processes():
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    for pid in stale_daemons(own_conf) + stale_job_processes():
        _wait_gone(pid, 10)


class LocalSlurm:
    """One cluster named ``cluster`` whose only node is this host, with 4 GPUs of GRES."""

    def __init__(self, scratch: Path, cluster: str = "gktest") -> None:
        self.scratch = scratch
        self.cluster = cluster
        self.node = socket.gethostname().split(".")[0]
        self.conf = scratch / "slurm.conf"
        self.procs: list[subprocess.Popen] = []
        self.started_munge = False
        self.made_devices: list[Path] = []

    # --- environment ---------------------------------------------------------------------------

    def env(self, **extra: str) -> dict[str, str]:
        """The environment for client commands (every one needs SLURM_CONF)."""
        env = dict(os.environ)
        env["PATH"] = env.get("PATH", "") + ":/usr/sbin:/sbin"
        env["SLURM_CONF"] = str(self.conf)
        env.update(extra)
        return env

    def run(self, *argv: str, timeout_s: float = 20.0, **env: str) -> str:
        done = subprocess.run(
            argv, env=self.env(**env), capture_output=True, text=True, timeout=timeout_s
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr}")
        return done.stdout

    # --- start and stop ------------------------------------------------------------------------

    def _write_config(self) -> None:
        s = self.scratch
        for sub in ("state", "spool", "log"):
            (s / sub).mkdir(parents=True, exist_ok=True)
        self.conf.write_text(
            f"""ClusterName={self.cluster}
SlurmctldHost={self.node}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
SlurmctldPort={CTLD_PORT}
SlurmdPort={SLURMD_PORT}
StateSaveLocation={s}/state
SlurmdSpoolDir={s}/spool
SlurmctldPidFile={s}/slurmctld.pid
SlurmdPidFile={s}/slurmd.pid
SlurmctldLogFile={s}/log/slurmctld.log
SlurmdLogFile={s}/log/slurmd.log
ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
MpiDefault=none
MailProg=/bin/true
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=300
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
NodeName={self.node} CPUs=8 Sockets=1 CoresPerSocket=8 ThreadsPerCore=1 RealMemory=2000 \
Gres=gpu:{FAKE_GPUS} State=UNKNOWN
PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
"""
        )
        (s / "gres.conf").write_text(
            f"AutoDetect=off\nNodeName={self.node} Name=gpu File=/dev/fakegpu[0-{FAKE_GPUS - 1}]\n"
        )
        # ConstrainDevices=yes breaks job launch on these machines (reference note, pitfall 7).
        (s / "cgroup.conf").write_text(
            "CgroupPlugin=cgroup/v1\nCgroupMountpoint=/sys/fs/cgroup\nConstrainCores=no\n"
            "ConstrainRAMSpace=no\nConstrainDevices=no\n"
        )

    def _start_munge(self) -> None:
        if MUNGE_PID.exists():
            with contextlib.suppress(ValueError):
                if _alive(int(MUNGE_PID.read_text().split()[0])):
                    return  # a munged is already serving the socket
        key = Path("/etc/munge/munge.key")
        if not key.exists():
            subprocess.run(["mungekey", "--create", f"--keyfile={key}"], check=True)
        shutil.chown(key, "munge", "munge")
        key.chmod(0o400)
        run_dir = Path("/run/munge")
        run_dir.mkdir(parents=True, exist_ok=True)  # no systemd-tmpfiles here
        shutil.chown(run_dir, "munge", "munge")
        run_dir.chmod(0o755)
        subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"], check=True, timeout=20)
        self.started_munge = True

    def _make_devices(self) -> None:
        for i in range(FAKE_GPUS):
            dev = Path(f"/dev/fakegpu{i}")
            if not dev.exists():
                os.mknod(dev, 0o666 | 0o020000, os.makedev(1, 3))  # a character device like null
                self.made_devices.append(dev)

    def start(self) -> None:
        stop_stale_daemons(self.conf)
        self._write_config()
        self._start_munge()
        self._make_devices()
        for daemon in ("slurmctld", "slurmd"):
            log = open(self.scratch / "log" / f"{daemon}.out", "ab")  # noqa: SIM115 (held)
            self.procs.append(
                subprocess.Popen(
                    [f"/usr/sbin/{daemon}", "-D", "-f", str(self.conf)],
                    env=self.env(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            log.close()
        deadline = time.monotonic() + DEADLINE_S
        state = ""
        while time.monotonic() < deadline:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                state = self.run("sinfo", "-h", "-o", "%T", timeout_s=5).strip()
                if state == "idle" and self._answers_as_ours():
                    return
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{proc.args[0]} exited: {self.logs()}")
            time.sleep(0.2)
        raise RuntimeError(f"node not idle after {DEADLINE_S} s (state {state!r}): {self.logs()}")

    def _answers_as_ours(self) -> bool:
        """True when the controller that answers is ours: its state lives in our scratch dir."""
        out = self.run("scontrol", "show", "config", timeout_s=5)
        return any(
            line.split("=", 1)[-1].strip() == str(self.scratch / "state")
            for line in out.splitlines()
            if line.startswith("StateSaveLocation")
        )

    def logs(self) -> str:
        out = []
        for path in sorted((self.scratch / "log").glob("*")):
            with contextlib.suppress(OSError):
                out.append(f"--- {path.name}\n{path.read_text()[-3000:]}")
        return "\n".join(out)

    def cancel_all(self) -> None:
        """Cancel every job and wait for the queue to drain (including completing jobs)."""
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.run("scancel", "--full", "--user=root")
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            try:
                if not self.run("squeue", "-h", "-o", "%i", timeout_s=5).strip():
                    return
            except (RuntimeError, subprocess.TimeoutExpired):
                return  # the controller is gone: nothing left to wait for
            time.sleep(0.2)

    def stop(self) -> None:
        """Jobs first, then slurmd, then slurmctld, then munged (if we started it)."""
        self.cancel_all()
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()  # slurmd may linger ~15 s with a completing job
                    proc.wait(timeout=10)
        self.procs.clear()
        if self.started_munge:
            with contextlib.suppress(OSError, ValueError):
                pid = int(MUNGE_PID.read_text().split()[0])
                os.kill(pid, signal.SIGTERM)
                _wait_gone(pid, 10)
        for dev in self.made_devices:
            with contextlib.suppress(OSError):
                dev.unlink()
        # task/cgroup leaves empty slurm_<node> directories behind (reference note).
        for leftover in Path("/sys/fs/cgroup").glob(f"*/slurm_{self.node}"):
            for sub in sorted(leftover.rglob("*"), key=lambda p: -len(p.parts)):
                if sub.is_dir():
                    with contextlib.suppress(OSError):
                        sub.rmdir()
            with contextlib.suppress(OSError):
                leftover.rmdir()

    # --- jobs ----------------------------------------------------------------------------------

    def sbatch(self, *args: str, script: str = "sleep 300") -> str:
        """Submit a batch job; returns its id (``1234``, or ``1234`` of an array's first task)."""
        out = self.run(
            "sbatch",
            "--parsable",
            f"--output={self.scratch}/log/job-%j.out",
            *args,
            "--wrap",
            script,
        )
        return out.strip().split(";")[0]

    def job_state(self, job_id: str) -> str:
        return self.run("squeue", "-h", "-j", job_id, "-o", "%T").strip()

    def wait_running(self, job_id: str, *, pids: int = 1) -> list[int]:
        """Wait until the job runs and ``pids`` of its processes exist; returns its PIDs."""
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            found = self.job_pids(job_id)
            if len(found) >= pids:
                return found
            time.sleep(0.1)
        raise RuntimeError(
            f"job {job_id} not running with {pids} process(es): state "
            f"{self.job_state(job_id)!r}, pids {self.job_pids(job_id)}\n{self.logs()}"
        )

    def job_pids(self, job_id: str) -> list[int]:
        """The PIDs of the job's user processes (the batch script's children), not slurmstepd."""
        pids = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cgroup = (proc / "cgroup").read_text()
                comm = (proc / "comm").read_text().strip()
            except OSError:
                continue
            if f"/job_{job_id}/" in cgroup and comm != "slurmstepd" and _alive(int(proc.name)):
                pids.append(int(proc.name))
        return sorted(pids)


@contextlib.contextmanager
def machine_lock(path: Path = LOCK_FILE, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Exclusive use of the machine's Slurm ports; waits while another session holds them."""
    with open(path, "a+") as handle:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    message = f"another test session held {path} for {wait_s:.0f} s"
                    raise RuntimeError(message) from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def local_slurm(scratch: Path) -> Iterator[LocalSlurm]:
    """Start a cluster for a fixture (once the machine is free) and always tear it down."""
    with machine_lock():
        cluster = LocalSlurm(scratch)
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()
