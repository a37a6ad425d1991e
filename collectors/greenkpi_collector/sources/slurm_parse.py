"""Pure parsing for the Slurm source: job JSON, GRES indices, node lists, cgroup paths, environ.

No subprocess and no I/O here, so every rule is unit-tested against recorded outputs
(tests/collector/data/slurm/). Formats handled:

* Slurm 22.05 (Debian 12's slurm-wlm 22.05.8): ``squeue --json``, OpenAPI plugin v0.0.38. Numbers
  are plain integers, ``job_state`` a string, ``array_task_id`` null outside arrays, ``het_job_id``
  0 outside het jobs, ``end_time`` start + time limit while the job runs. ``scontrol`` of this
  release has no ``--json`` (checked: "unrecognized option").
* Any release, when no JSON is to be had (a build without the JSON serializer plugin):
  ``scontrol show job -d --oneliner`` text, one job per line (recorded from 22.05.8).
* Slurm 23.02 and newer (data_parser v0.0.39+): ``scontrol --json show job -d`` and ``squeue
  --json``. Numbers may be ``{"set": bool, "infinite": bool, "number": int}``, ``job_state`` a
  list of strings. Not verified against a running daemon here (see docs/collector.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from greenkpi_schema import SlurmJob
from greenkpi_schema.v1 import SLURM_TEXT_LIMITS

# A job that reached one of these states has a real end time (not start + time limit).
ENDED_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
    }
)
# cgroup v1 (".../slurm_<node>/uid_0/job_12/step_0") and v2 (".../job_12/step_0/user/task_0").
_CGROUP_JOB = re.compile(r"/job_([0-9]+)(?:/|$)")
# "gpu:2(IDX:0-1)", "gpu:a100:2(IDX:0,2-3)", "gpu:1(IDX:N/A)"; other GRES names are ignored.
_GRES_GPU = re.compile(r"(?:^|,)gpu(?::[^:(,]+)?:[0-9]+\(IDX:([0-9,\-]+)\)")
# Environment variables whose values say who a process is (all set by slurmstepd).
SLURM_ENV = (
    "SLURM_JOB_ID",
    "SLURM_CLUSTER_NAME",
    "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_HET_JOB_ID",
    "SLURM_HET_JOB_OFFSET",
    "SLURM_JOB_USER",
    "SLURM_JOB_ACCOUNT",
    "SLURM_JOB_PARTITION",
    "SLURM_JOB_QOS",
    "SLURM_JOB_NAME",
    "SLURM_JOB_NODELIST",
)


@dataclass(frozen=True, slots=True)
class JobFacts:
    """What the collector knows about one Slurm job; ``raw_id`` is Slurm's own integer id
    (an array task or het component has one of its own, shown in cgroups and SLURM_JOB_ID)."""

    cluster: str
    raw_id: int
    job_id: str  # canonical: "1234", "1234_7", "1234+1"
    array_job_id: int | None = None
    array_task_id: int | None = None
    het_job_id: int | None = None
    het_job_offset: int | None = None
    user: str | None = None
    account: str | None = None
    partition: str | None = None
    qos: str | None = None
    job_name: str | None = None
    comment: str | None = None
    nodes: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    state: str | None = None
    complete: bool = True
    # GPU GRES indices per node name: {"gpu01": (0, 1)}
    gpus: tuple[tuple[str, tuple[int, ...]], ...] = ()

    @property
    def run_key(self) -> str:
        """One run per job: a het job's components share the leader's run."""
        base = str(self.het_job_id) if self.het_job_id is not None else self.job_id
        return f"slurm:{self.cluster}:{base}"

    def gpus_on(self, node: str) -> tuple[int, ...]:
        for name, indices in self.gpus:
            if name == node:
                return indices
        return ()

    def to_schema(self) -> SlurmJob:
        texts = {
            name: _clip(getattr(self, name), SLURM_TEXT_LIMITS[name])
            for name in ("user", "account", "partition", "qos", "job_name", "comment", "nodes")
        }
        return SlurmJob(
            cluster=self.cluster[: SLURM_TEXT_LIMITS["cluster"]],
            job_id=self.job_id,
            array_job_id=self.array_job_id,
            array_task_id=self.array_task_id,
            het_job_id=self.het_job_id,
            het_job_offset=self.het_job_offset,
            start=self.start,
            end=self.end
            if self.end is None or self.start is None or self.end >= self.start
            else None,
            complete=self.complete,
            **texts,
        )


def _clip(value: str | None, limit: int) -> str | None:
    return value[:limit] if value else None


def canonical_id(
    raw_id: int,
    array_job_id: int | None,
    array_task_id: int | None,
    het_job_id: int | None,
    het_job_offset: int | None,
) -> str:
    if array_job_id is not None and array_task_id is not None:
        return f"{array_job_id}_{array_task_id}"
    if het_job_id is not None and het_job_offset is not None:
        return f"{het_job_id}+{het_job_offset}"
    return str(raw_id)


# --- JSON (squeue --json, scontrol --json show job -d) ------------------------------------------


def _number(value: Any) -> int | None:
    """A plain integer (v0.0.38) or {"set", "infinite", "number"} (v0.0.39+); None when unset."""
    if isinstance(value, dict):
        if not value.get("set", True) or value.get("infinite"):
            return None
        value = value.get("number")
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if value and value != "(null)" else None


def _time(value: Any) -> datetime | None:
    seconds = _number(value)
    if not seconds or seconds <= 0:
        return None  # 0: not started / not ended
    return datetime.fromtimestamp(seconds, UTC)


def _state(value: Any) -> str | None:
    if isinstance(value, list):  # v0.0.39+: ["RUNNING"], ["COMPLETED", "REQUEUED"]...
        return str(value[0]) if value else None
    return _text(value)


def job_from_json(job: Mapping[str, Any], cluster_default: str) -> JobFacts | None:
    raw_id = _number(job.get("job_id"))
    if raw_id is None:
        return None
    array_job = _number(job.get("array_job_id")) or None  # 0 = not an array
    array_task = _number(job.get("array_task_id")) if array_job else None
    het_job = _number(job.get("het_job_id")) or None  # 0 = not a het job
    het_offset = _number(job.get("het_job_offset")) if het_job else None
    if het_job is not None and het_offset is None:
        het_offset = 0
    state = _state(job.get("job_state"))
    nodes = _text(job.get("nodes"))
    return JobFacts(
        cluster=_text(job.get("cluster")) or cluster_default,
        raw_id=raw_id,
        job_id=canonical_id(raw_id, array_job, array_task, het_job, het_offset),
        array_job_id=array_job if array_task is not None else None,
        array_task_id=array_task,
        het_job_id=het_job,
        het_job_offset=het_offset,
        user=_text(job.get("user_name")),
        account=_text(job.get("account")),
        partition=_text(job.get("partition")),
        qos=_text(job.get("qos")),
        job_name=_text(job.get("name")),
        comment=_text(job.get("comment")),
        nodes=nodes,
        start=_time(job.get("start_time")),
        # While a job runs Slurm reports start + time limit as its end: not a fact yet.
        end=_time(job.get("end_time")) if state in ENDED_STATES else None,
        state=state,
        gpus=_gres_by_node(job, nodes),
    )


def _gres_by_node(
    job: Mapping[str, Any], nodes: str | None
) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """gres_detail lists one entry per allocated node, in the allocation's node order."""
    detail = job.get("gres_detail")
    if not isinstance(detail, list) or not detail:
        return ()
    names: list[str] = []
    resources = job.get("job_resources")
    if isinstance(resources, dict):
        allocated = resources.get("allocated_nodes")
        if isinstance(allocated, list):  # v0.0.38
            names = [str(n.get("nodename")) for n in allocated if isinstance(n, dict)]
        elif isinstance(resources.get("nodes"), dict):  # v0.0.40+: {"list": "gpu[1-2]", ...}
            names = expand_hostlist(str(resources["nodes"].get("list") or ""))
    if len(names) != len(detail):
        names = expand_hostlist(nodes or "")
    return tuple(
        (name, gpu_indices(entry))
        for name, entry in zip(names, detail, strict=False)
        if isinstance(entry, str)
    )


def parse_jobs(data: Any, cluster_default: str) -> dict[int, JobFacts]:
    """{raw job id: facts} from a decoded ``squeue --json`` or ``scontrol --json show job``."""
    jobs = data.get("jobs") if isinstance(data, dict) else None
    if not isinstance(jobs, list):
        raise ValueError("no 'jobs' list in the Slurm JSON")
    out: dict[int, JobFacts] = {}
    for job in jobs:
        if isinstance(job, dict):
            facts = job_from_json(job, cluster_default)
            if facts is not None:
                out[facts.raw_id] = facts
    return out


def gpu_indices(gres: str) -> tuple[int, ...]:
    """GPU indices of one node's GRES string, e.g. "gpu:2(IDX:0-1)" -> (0, 1)."""
    found: list[int] = []
    for spec in _GRES_GPU.findall(gres):
        found.extend(_ranges(spec))
    return tuple(sorted(set(found)))


def _ranges(spec: str) -> Iterable[int]:
    for part in spec.split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        if high:
            yield from range(int(low), int(high) + 1)
        else:
            yield int(low)


# --- text (scontrol show job -d --oneliner) -------------------------------------------------------

# A key starts after whitespace: "JobName=train a Account=x" -> JobName is "train a". A value that
# itself contains " word=" (a comment like "a b=c") is cut there: text is the last resort.
_TEXT_KEY = re.compile(r"(?:^|(?<=\s))([A-Za-z][A-Za-z0-9_:/]*)=")


def _text_pairs(line: str) -> list[tuple[str, str]]:
    keys = list(_TEXT_KEY.finditer(line))
    return [
        (
            m.group(1),
            line[m.end() : keys[i + 1].start() if i + 1 < len(keys) else len(line)].strip(),
        )
        for i, m in enumerate(keys)
    ]


def _local_time(value: str | None) -> datetime | None:
    """scontrol prints the host's local time without a zone; "Unknown"/"None" are no time."""
    if not value or not value[:1].isdigit():
        return None
    try:
        return datetime.fromisoformat(value).astimezone(UTC)
    except ValueError:
        return None


def parse_jobs_text(text: str, cluster: str) -> dict[int, JobFacts]:
    """{raw job id: facts} from ``scontrol show job -d --oneliner``."""
    out: dict[int, JobFacts] = {}
    for line in text.splitlines():
        pairs = _text_pairs(line)
        if not pairs or pairs[0][0] != "JobId":
            continue
        fields: dict[str, str] = {}
        gpus: list[tuple[str, tuple[int, ...]]] = []
        nodes_expr = ""
        for key, value in pairs:
            if (
                key == "Nodes"
            ):  # one detail group: "Nodes=gpu[01-02] CPU_IDs=.. GRES=gpu:2(IDX:0-1)"
                nodes_expr = value
            elif key == "GRES" and nodes_expr:
                indices = gpu_indices(value)
                gpus.extend((name, indices) for name in expand_hostlist(nodes_expr) if indices)
            else:
                fields.setdefault(key, value)
        facts = _facts_from_text(fields, cluster, tuple(gpus))
        if facts is not None:
            out[facts.raw_id] = facts
    return out


def _facts_from_text(
    f: dict[str, str], cluster: str, gpus: tuple[tuple[str, tuple[int, ...]], ...]
) -> JobFacts | None:
    def number(key: str) -> int | None:
        value = f.get(key, "")
        return int(value) if value.isdigit() else None

    raw_id = number("JobId")
    if raw_id is None:
        return None
    array_job, array_task = number("ArrayJobId"), number("ArrayTaskId")
    if array_job is None or array_task is None:
        array_job = array_task = None
    het_job, het_offset = number("HetJobId"), number("HetJobOffset")
    if het_job is None or het_offset is None:
        het_job = het_offset = None
    state = _text(f.get("JobState"))
    return JobFacts(
        cluster=cluster,
        raw_id=raw_id,
        job_id=canonical_id(raw_id, array_job, array_task, het_job, het_offset),
        array_job_id=array_job,
        array_task_id=array_task,
        het_job_id=het_job,
        het_job_offset=het_offset,
        user=_text(f.get("UserId", "").split("(", 1)[0]),
        account=_text(f.get("Account")),
        partition=_text(f.get("Partition")),
        qos=_text(f.get("QOS")),
        job_name=_text(f.get("JobName")),
        comment=_text(f.get("Comment")),
        nodes=_text(f.get("NodeList")),
        start=_local_time(f.get("StartTime")),
        end=_local_time(f.get("EndTime")) if state in ENDED_STATES else None,
        state=state,
        gpus=gpus,
    )


# --- node lists --------------------------------------------------------------------------------


def expand_hostlist(expr: str, limit: int = 100_000) -> list[str]:
    """Slurm's hostlist syntax: "gpu[01-03,07],login1" -> gpu01 gpu02 gpu03 gpu07 login1."""
    names: list[str] = []
    for item in _split_top(expr):
        prefix, _, rest = item.partition("[")
        if not rest:
            names.append(item)
            continue
        body, _, suffix = rest.partition("]")
        for part in body.split(","):
            low, _, high = part.partition("-")
            width = len(low)
            if not high:
                names.append(f"{prefix}{low}{suffix}")
                continue
            for n in range(int(low), int(high) + 1):
                names.append(f"{prefix}{n:0{width}d}{suffix}")
                if len(names) >= limit:
                    return names
    return names


def _split_top(expr: str) -> list[str]:
    """Split at commas outside brackets."""
    items: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in expr.strip():
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
    if current:
        items.append("".join(current))
    return [i for i in items if i]


# --- processes -----------------------------------------------------------------------------------


def job_id_from_cgroup(text: str) -> int | None:
    """The Slurm job id in /proc/<pid>/cgroup (cgroup v1 or v2), or None."""
    for line in text.splitlines():
        match = _CGROUP_JOB.search(line.split(":", 2)[-1])
        if match:
            return int(match.group(1))
    return None


def parse_environ(raw: bytes, names: Iterable[str]) -> dict[str, str]:
    """The wanted variables of a /proc/<pid>/environ block (NUL-separated KEY=VALUE)."""
    wanted = set(names)
    out: dict[str, str] = {}
    for entry in raw.split(b"\0"):
        key, sep, value = entry.partition(b"=")
        if sep:
            name = key.decode("ascii", "replace")
            if name in wanted:
                out[name] = value.decode("utf-8", "replace")
    return out


def facts_from_environ(env: Mapping[str, str], cluster: str | None) -> JobFacts | None:
    """What a job's own environment says (scontrol failed or has not answered yet)."""
    try:
        raw_id = int(env["SLURM_JOB_ID"])
    except (KeyError, ValueError):
        return None
    cluster = env.get("SLURM_CLUSTER_NAME") or cluster
    if not cluster:
        return None

    def number(name: str) -> int | None:
        try:
            return int(env[name])
        except (KeyError, ValueError):
            return None

    array_job, array_task = number("SLURM_ARRAY_JOB_ID"), number("SLURM_ARRAY_TASK_ID")
    if array_job is None or array_task is None:
        array_job = array_task = None
    het_job, het_offset = number("SLURM_HET_JOB_ID"), number("SLURM_HET_JOB_OFFSET")
    if het_job is None or het_offset is None:
        het_job = het_offset = None
    return JobFacts(
        cluster=cluster,
        raw_id=raw_id,
        job_id=canonical_id(raw_id, array_job, array_task, het_job, het_offset),
        array_job_id=array_job,
        array_task_id=array_task,
        het_job_id=het_job,
        het_job_offset=het_offset,
        user=env.get("SLURM_JOB_USER") or None,
        account=env.get("SLURM_JOB_ACCOUNT") or None,
        partition=env.get("SLURM_JOB_PARTITION") or None,
        qos=env.get("SLURM_JOB_QOS") or None,
        job_name=env.get("SLURM_JOB_NAME") or None,
        nodes=env.get("SLURM_JOB_NODELIST") or None,
        complete=False,
    )


def partial(cluster: str, raw_id: int) -> JobFacts:
    """Only the id is known (from the cgroup path): the lookup failed or is pending."""
    return JobFacts(cluster=cluster, raw_id=raw_id, job_id=str(raw_id), complete=False)


def mark_incomplete(facts: JobFacts) -> JobFacts:
    return facts if not facts.complete else replace(facts, complete=False)


def cluster_from_conf(text: str) -> str | None:
    """ClusterName from slurm.conf or from ``scontrol show config`` output."""
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip().lower() == "clustername":
            return value.split("#", 1)[0].strip() or None
    return None
