"""Slurm: which job each GPU process belongs to, and which job each GPU is allocated to.

Per tick (the sampling thread, never blocked):
* a GPU process's job comes from ``/proc/<pid>/cgroup`` (``job_<id>`` under cgroup v1 and v2),
  else from ``SLURM_JOB_ID`` in ``/proc/<pid>/environ``. The answer is cached per (PID, process
  start time), so a reused PID is looked up afresh and never inherits another job's energy.
* a GPU's job comes from the job facts' GRES index on this node (``gres_detail``), so a GPU that
  a job holds without a process on it is found (allocated-idle).

Job facts come from a background thread that runs ``scontrol --json show job -d`` (Slurm 23.02+)
or, where scontrol has no ``--json`` (22.05, Debian 12), ``squeue --json``, or where no JSON can be
made at all, ``scontrol show job -d --oneliner`` (text): every ``refresh_s`` and
at once when an unknown job appears, each run bounded by ``timeout_s``. A slow, hanging or failing
command only makes the facts stale: shares then carry what is known with ``complete: false``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import subprocess
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from greenkpi_collector.sources.slurm_parse import (
    SLURM_ENV,
    JobFacts,
    cluster_from_conf,
    expand_hostlist,
    facts_from_environ,
    job_id_from_cgroup,
    mark_incomplete,
    parse_environ,
    parse_jobs,
    parse_jobs_text,
    partial,
)

log = logging.getLogger("greenkpi_collector")

MAX_JOBS = 4096  # facts kept (bounded: a node sees far fewer jobs between two refreshes)
MAX_PROCS = 4096  # (pid, start time) entries kept
ATTRIBUTION_ENV = ("GREENKPI_TEAM", "GREENKPI_MODEL", "GREENKPI_RUN", "MLFLOW_RUN_ID")
Runner = Callable[[Sequence[str], float], str]
# Words in a client's error that mean "this build cannot write JSON" (not "the controller is down").
_NO_JSON = ("unrecognized option", "invalid option", "serializer", "json", "plugin")


def run_command(argv: Sequence[str], timeout_s: float) -> str:
    """Run a Slurm client; raises on a non-zero exit or a timeout (the child is killed)."""
    done = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL
    )
    if done.returncode != 0:
        # One line: the reason goes into a log record and `check`'s report, and scontrol's
        # stderr is several ("error: ...", then "fatal: ..."), which would print as stray lines.
        said = "; ".join(line.strip() for line in done.stderr.splitlines() if line.strip())
        raise RuntimeError(said[:300] or f"exit status {done.returncode}")
    return done.stdout


@dataclass(frozen=True, slots=True)
class ProcIdentity:
    """What one process says about itself: its Slurm job and GREENKPI_* / MLflow variables."""

    job: int | None = None
    env: tuple[tuple[str, str], ...] = ()  # the ATTRIBUTION_ENV variables it has
    slurm_env: tuple[tuple[str, str], ...] = ()  # SLURM_* identity variables


def proc_start_ticks(proc_root: Path, pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks since boot); None if gone or a
    zombie (an ended process not yet reaped uses no GPU and belongs to no job any more)."""
    try:
        stat = (proc_root / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    fields = stat.rsplit(b")", 1)[-1].split()
    try:
        if fields[0] in (b"Z", b"X"):
            return None
        return int(fields[19])  # fields after "(comm)" start at field 3 (the state)
    except (IndexError, ValueError):
        return None


class ProcessIdentities:
    """(pid, start time) -> ProcIdentity, read once per process lifetime. Works without Slurm:
    the GREENKPI_* variables attribute any process (zero-code attribution)."""

    def __init__(self, proc_root: Path = Path("/proc"), slurm: bool = True) -> None:
        self.proc_root = proc_root
        self.slurm = slurm
        self._cache: OrderedDict[tuple[int, int], ProcIdentity] = OrderedDict()

    def of(self, pid: int) -> ProcIdentity | None:
        """None when the process is gone (its energy goes to nobody, not to a successor)."""
        start = proc_start_ticks(self.proc_root, pid)
        if start is None:
            return None
        key = (pid, start)
        found = self._cache.get(key)
        if found is not None:
            self._cache.move_to_end(key)
            return found
        found = self._read(pid)
        # Read the start time again: if the PID was reused while we read, trust nothing.
        if proc_start_ticks(self.proc_root, pid) != start:
            return None
        self._cache[key] = found
        while len(self._cache) > MAX_PROCS:
            self._cache.popitem(last=False)
        return found

    def _read(self, pid: int) -> ProcIdentity:
        base = self.proc_root / str(pid)
        job = None
        if self.slurm:
            with contextlib.suppress(OSError):
                job = job_id_from_cgroup((base / "cgroup").read_text())
        try:
            raw = (base / "environ").read_bytes()
        except OSError:
            raw = b""  # another user's process and we are not root: cgroup only
        env = parse_environ(raw, ATTRIBUTION_ENV + (SLURM_ENV if self.slurm else ()))
        if job is None and self.slurm and env.get("SLURM_JOB_ID", "").isdigit():
            job = int(env["SLURM_JOB_ID"])
        return ProcIdentity(
            job=job,
            env=tuple((k, env[k]) for k in ATTRIBUTION_ENV if env.get(k)),
            slurm_env=tuple((k, env[k]) for k in SLURM_ENV if env.get(k)),
        )


@dataclass
class Snapshot:
    """The facts of one successful refresh (replaced whole, so readers need no lock)."""

    at: float  # monotonic time of the refresh
    jobs: dict[int, JobFacts]
    allocated: dict[int, int]  # GPU index on this node -> raw job id
    command: str


@dataclass
class SlurmStatus:
    command: str | None = None
    last_ok: float | None = None  # monotonic
    last_error: str | None = None
    failures: int = 0
    refreshes: int = 0
    history: list[str] = field(default_factory=list)


def discover(
    runner: Runner = run_command, timeout_s: float = 10.0, which: Callable = shutil.which
) -> tuple[str | None, str]:
    """(cluster name or None, why not): Slurm is usable when scontrol is on PATH and answers."""
    if which("scontrol") is None:
        return None, "scontrol is not on PATH"
    try:
        cluster = cluster_from_conf(runner(["scontrol", "show", "config"], timeout_s))
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        return None, f"scontrol show config failed: {exc}"
    if not cluster:
        return None, "scontrol show config names no ClusterName"
    return cluster, ""


class SlurmJobs:
    """Job facts for this node, refreshed in a background thread; lookups never block."""

    name = "slurm"

    def __init__(
        self,
        cluster: str,
        node: str,
        *,
        refresh_s: float = 15.0,
        timeout_s: float = 10.0,
        runner: Runner = run_command,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cluster = cluster
        self.node = node
        self.refresh_s = refresh_s
        self.timeout_s = timeout_s
        self.runner = runner
        self.clock = clock
        self.snapshot: Snapshot | None = None
        self.status = SlurmStatus()
        self._ended: OrderedDict[int, JobFacts] = OrderedDict()  # jobs gone from the listing
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._json_scontrol = True  # until scontrol says it has no --json
        self._json_squeue = True  # until squeue says it cannot make JSON
        self._errors: dict[str, int] = {}

    # --- the refresher ---------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="slurm-facts", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._wanted.set()
        # A hung scontrol holds the thread until its timeout; it is a daemon, never wait long.
        if self._thread is not None:
            self._thread.join(timeout=0.5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._wanted.wait(self.refresh_s)
            self._wanted.clear()

    def want(self, raw_id: int) -> None:
        """A process of an unknown job appeared: refresh now rather than at the next period."""
        self._wanted.set()

    def refresh(self) -> bool:
        """One listing of the jobs; True when it succeeded."""
        try:
            jobs, command = self._list_jobs()
        except Exception as exc:  # timeout, exit status, bad JSON: facts just go stale
            message = f"slurm: {exc.__class__.__name__}: {str(exc)[:200]}"
            self.status.last_error = message
            self.status.failures += 1
            self._errors[message] = self._errors.get(message, 0) + 1
            return False
        previous = self.snapshot.jobs if self.snapshot else {}
        for raw_id, facts in previous.items():
            if raw_id not in jobs:  # past MinJobAge: keep what we knew for windows still open
                self._ended[raw_id] = facts
                while len(self._ended) > MAX_JOBS:
                    self._ended.popitem(last=False)
        allocated: dict[int, int] = {}
        for facts in jobs.values():
            if facts.end is None and facts.state in (None, "RUNNING", "COMPLETING", "SUSPENDED"):
                for index in facts.gpus_on(self.node):
                    allocated[index] = facts.raw_id
        self.snapshot = Snapshot(self.clock(), jobs, allocated, command)
        if self.status.refreshes == 0 or self.status.last_error is not None:
            log.info(  # the first listing, or the first after failures: attribution is complete
                "Slurm: %d job(s) on node %s listed by '%s'", len(jobs), self.node, command
            )
        self.status.command, self.status.last_ok = command, self.clock()
        self.status.refreshes += 1
        self.status.last_error = None
        return True

    def _list_jobs(self) -> tuple[dict[int, JobFacts], str]:
        if self._json_scontrol:
            argv = ["scontrol", "--json", "show", "job", "-d"]
            try:
                out = self.runner(argv, self.timeout_s)
                return self._here(parse_jobs(json.loads(out), self.cluster)), " ".join(argv)
            except RuntimeError as exc:
                if not any(w in str(exc).lower() for w in _NO_JSON):
                    raise
                self._json_scontrol = False  # Slurm < 23.02: squeue has the same job objects
        if self._json_squeue:
            argv = ["squeue", "--json"]
            try:
                out = self.runner(argv, self.timeout_s)
                return self._here(parse_jobs(json.loads(out), self.cluster)), " ".join(argv)
            except RuntimeError as exc:
                if not any(w in str(exc).lower() for w in _NO_JSON):
                    raise
                self._json_squeue = False  # a build without the JSON plugins: parse text
        argv = ["scontrol", "show", "job", "-d", "--oneliner"]
        out = self.runner(argv, self.timeout_s)
        return self._here(parse_jobs_text(out, self.cluster)), " ".join(argv)

    def _here(self, jobs: dict[int, JobFacts]) -> dict[int, JobFacts]:
        """Only this node's jobs are kept: the listing covers the whole cluster."""
        node = self.node
        return {
            raw_id: f
            for raw_id, f in jobs.items()
            if f.gpus_on(node) or (f.nodes and node in expand_hostlist(f.nodes))
        }

    # --- lookups (sampling thread) ---------------------------------------------------------

    def facts(self, raw_id: int) -> JobFacts | None:
        snap = self.snapshot
        if snap is not None and raw_id in snap.jobs:
            facts = snap.jobs[raw_id]
            if self.status.last_error is not None:
                return mark_incomplete(facts)  # the latest refresh failed: may be stale
            return facts
        return self._ended.get(raw_id)

    def allocated_job(self, gpu_index: int, t_wall: float) -> JobFacts | None:
        """The job holding this GPU at ``t_wall`` (a job known to have ended holds nothing)."""
        snap = self.snapshot
        if snap is None:
            return None
        raw_id = snap.allocated.get(gpu_index)
        if raw_id is None:
            return None
        facts = self.facts(raw_id)
        if facts is None or (facts.end is not None and facts.end.timestamp() <= t_wall):
            return None
        return facts

    def describe(self, raw_id: int, env: tuple[tuple[str, str], ...] = ()) -> JobFacts:
        """Best facts for a job: the listing, else the process's SLURM_* environment, else the id,
        flagged incomplete unless they come from a successful listing."""
        facts = self.facts(raw_id)
        if facts is not None:
            return facts
        self.want(raw_id)
        from_env = facts_from_environ(dict(env), self.cluster) if env else None
        if from_env is not None and from_env.raw_id == raw_id:
            return from_env
        return partial(self.cluster, raw_id)

    def stale(self) -> bool:
        last = self.status.last_ok
        return last is None or self.clock() - last > 3 * self.refresh_s + self.timeout_s

    def errors(self) -> list[str]:
        counted = [m if n == 1 else f"{m} (x{n})" for m, n in self._errors.items()]
        self._errors.clear()
        return counted

    def summary(self) -> list[str]:
        """For ``check``: what Slurm shows about this node."""
        snap = self.snapshot
        if snap is None:
            return [f"Slurm: cluster {self.cluster}: job listing failed: {self.status.last_error}"]
        here = [f for f in snap.jobs.values() if f.gpus_on(self.node)]
        lines = [
            f"Slurm: cluster {self.cluster}, node {self.node}: {len(snap.jobs)} job(s) listed by "
            f"'{snap.command}', {len(here)} with GPUs on this node"
        ]
        for f in sorted(here, key=lambda f: f.raw_id):
            gpus = ",".join(map(str, f.gpus_on(self.node)))
            lines.append(
                f"Slurm job {f.job_id} ({f.state or '?'}): user {f.user or '?'}, account "
                f"{f.account or '?'}, partition {f.partition or '?'}, GPUs {gpus}"
            )
        idle = sorted(i for i in snap.allocated)
        lines.append(f"Slurm: GPUs allocated on this node: {', '.join(map(str, idle)) or 'none'}")
        return lines
