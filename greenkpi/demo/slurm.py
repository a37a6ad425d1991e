"""The demo's Slurm cluster: a few jobs on two GPU nodes, posted as a collector would post them.

Without it the Slurm jobs page, the overview's "unmapped accounts" line and /api/v1/slurm/jobs/
are empty in `make demo`. Cluster ``hpc`` (site paris, token default team recsys), two identity
mappings: Slurm account ``vision-lab`` -> team vision, a comment ``greenkpi:model=<key>`` -> that
model. Jobs (hour-long windows, the demo's history grain; a busy H100 draws 520 W, an idle one
70 W):

- 7101 ``resnet50-finetune``, account vision-lab, user vera: 1 GPU of hpc-gpu-01, 10 h, busy.
- 7102 ``vit-large-pretrain``, account vision-lab, user vik: 4 GPUs of hpc-gpu-02, 3 busy and
  one allocated but idle the whole job (its waste), 14 h.
- 7103 ``lattice-qcd``, account physics, user pat: 2 GPUs of hpc-gpu-01, 8 h, busy. No mapping
  names the account: its energy stays with the token's default team and counts as unmapped.
- 7104 ``bert-sweep``, account vision-lab, user vera, comment ``greenkpi:model=bert-base``: 1 GPU
  of hpc-gpu-01, running now (the comment mapping names its model).

The batches go through ``ingest.services.ingest_batch`` (validation, job upsert, shares), so the
rollups attribute them exactly as they would a real collector's. Kept apart from the simulated
fleet (fleet.py) and from the Kubernetes pods (their own module).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from django.db.models import Max

from greenkpi.ingest.models import Sample, SchedulerJob
from greenkpi.ingest.services import ingest_batch
from greenkpi.inventory.mappings import mapping_save
from greenkpi.inventory.models import CollectorToken, MappingKind, Organisation, Site, Team
from greenkpi.inventory.services import token_create
from greenkpi.lib.periods import hour_floor

CLUSTER = "hpc"
SITE = "paris"
GPU_MODEL = "NVIDIA H100 80GB HBM3"
BUSY_W, IDLE_W = 520.0, 70.0
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
NODES = {"hpc-gpu-01": 4, "hpc-gpu-02": 4}
MAPPED_ACCOUNT = "vision-lab"


@dataclass(frozen=True)
class Job:
    job_id: str
    name: str
    account: str
    user: str
    node: str
    gpus: tuple[int, ...]  # GPU indexes on the node
    idle_gpus: tuple[int, ...]  # allocated, never used
    hours_ago: int  # the job started this many whole hours before the current hour
    hours: int | None  # None: still running
    comment: str = ""


JOBS = (
    Job("7101", "resnet50-finetune", "vision-lab", "vera", "hpc-gpu-01", (0,), (), 30, 10),
    Job(
        "7102", "vit-large-pretrain", "vision-lab", "vik", "hpc-gpu-02", (0, 1, 2, 3), (3,), 20, 14
    ),
    Job("7103", "lattice-qcd", "physics", "pat", "hpc-gpu-01", (1, 2), (), 16, 8),
    Job(
        "7104",
        "bert-sweep",
        "vision-lab",
        "vera",
        "hpc-gpu-01",
        (3,),
        (),
        5,
        None,
        comment="greenkpi:model=bert-base",
    ),
)


def _z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _scheduler(job: Job, start: datetime, end: datetime | None) -> dict:
    facts = {
        "kind": "slurm",
        "cluster": CLUSTER,
        "job_id": job.job_id,
        "user": job.user,
        "account": job.account,
        "partition": "gpu",
        "qos": "normal",
        "job_name": job.name,
        **({"comment": job.comment} if job.comment else {}),
        "nodes": job.node,
        "start": _z(start),
    }
    if end is not None:
        facts["end"] = _z(end)
    return facts


def _node_batch(node: str, start: datetime, end: datetime, now: datetime, anchor: datetime) -> dict:
    """One window [start, end) per GPU of ``node``; a GPU a job holds carries the job's share."""
    seconds = (end - start).total_seconds()
    samples = []
    for index in range(NODES[node]):
        job = next(
            (j for j in JOBS if j.node == node and index in j.gpus and _runs(j, start, anchor)),
            None,
        )
        busy = job is not None and index not in job.idle_gpus
        joules = (BUSY_W if busy else IDLE_W) * seconds
        sample: dict = {
            "device_uuid": f"GPU-{node}-{index}",
            "device_kind": "gpu",
            "start": _z(start),
            "end": _z(end),
            "energy_j": joules,
            "method": "counter",
            "util_busy": 0.85 if busy else 0.0,
            "idle_s": 0.0 if busy else seconds,
        }
        if job is not None:
            began, ended = _span(job, anchor)
            share = {
                "energy_j": joules,
                "method": "utilization" if busy else "allocated-idle",
                "run": f"slurm:{CLUSTER}:{job.job_id}",
                "scheduler": _scheduler(job, began, ended),
            }
            if busy:
                share["pid"] = 4000 + index
            sample["shares"] = [share]
        samples.append(sample)
    return {
        "schema_version": 1,
        "host": {
            "hostname": node,
            "agent_version": "demo",
            "site": SITE,
            "clock": _z(now),
            "devices": [
                {"uuid": f"GPU-{node}-{i}", "kind": "gpu", "model": GPU_MODEL}
                for i in range(NODES[node])
            ],
        },
        "samples": samples,
    }


def _span(job: Job, anchor: datetime) -> tuple[datetime, datetime | None]:
    """When the job started and ended (None: running), placed before the load's hour."""
    start = anchor - job.hours_ago * HOUR
    return start, None if job.hours is None else start + job.hours * HOUR


def _runs(job: Job, moment: datetime, anchor: datetime) -> bool:
    start, end = _span(job, anchor)
    return start <= moment and (end is None or moment < end)


def _post(
    token: CollectorToken,
    node: str,
    start: datetime,
    end: datetime,
    now: datetime,
    anchor: datetime,
) -> int:
    batch = _node_batch(node, start, end, now, anchor)
    result = ingest_batch(
        token=token,
        idempotency_key=f"demo-slurm-{node}-{start:%Y%m%d%H%M}-{end:%H%M}",
        body=orjson.dumps(batch),
        now=now,
    )
    if result.status >= 300:
        raise RuntimeError(f"demo Slurm batch refused: {result.body}")
    return len(batch["samples"])


def slurm_load(*, organisation: Organisation, teams: dict[str, Team], now: datetime) -> int:
    """The cluster's mapping, token and the jobs' windows up to the last whole hour; returns the
    number of windows stored. Call before the rollups are computed."""
    first = hour_floor(now)  # jobs are placed before the load's hour (the anchor)
    mapping_save(
        organisation=organisation,
        kind=MappingKind.SLURM_ACCOUNT,
        pattern=MAPPED_ACCOUNT,
        team=teams["vision"],
        cluster=CLUSTER,
        note="demo: the vision group's Slurm account",
    )
    mapping_save(
        organisation=organisation,
        kind=MappingKind.SLURM_COMMENT,
        pattern=r"greenkpi:model=(?P<model>[\w.-]+)",
        cluster=CLUSTER,
        note="demo: a job names its model in its comment",
    )
    site = Site.objects.get(organisation=organisation, name=SITE)
    token, _ = token_create(
        organisation=organisation,
        name=f"slurm {CLUSTER}",
        default_team=teams["recsys"],
        default_site=site,
    )
    earliest = min(_span(j, first)[0] for j in JOBS) - HOUR
    stored = 0
    hour = earliest
    while hour < first:
        for node in NODES:
            stored += _post(token, node, hour, hour + HOUR, now, first)
        hour += HOUR
    return stored


def slurm_follow(*, organisation: Organisation, now: datetime) -> int:
    """The live tick's part: the nodes keep reporting up to the minute of ``now`` (one-minute
    windows, at most a day caught up), job 7104 still running on its GPU, the others idle, so
    the nodes never turn silent. Returns the windows stored; nothing before ``slurm_load``."""
    token = CollectorToken.objects.filter(
        organisation=organisation, name=f"slurm {CLUSTER}", revoked_at__isnull=True
    ).first()
    running = SchedulerJob.objects.filter(
        organisation=organisation, cluster=CLUSTER, job_id=JOBS[-1].job_id
    ).first()
    if token is None or running is None or running.started_at is None:
        return 0
    anchor = running.started_at + JOBS[-1].hours_ago * HOUR
    target = now.replace(second=0, microsecond=0)
    last = dict(
        Sample.objects.filter(
            device__host__organisation=organisation, device__host__hostname__in=list(NODES)
        )
        .values_list("device__host__hostname")
        .annotate(Max("window_end"))
    )
    stored = 0
    for node in NODES:
        cursor = max(last.get(node) or target - MINUTE, target - timedelta(days=1))
        while cursor < target:
            step = HOUR if cursor.minute == 0 and cursor + HOUR <= target else MINUTE
            stop = min(cursor + step, target)
            stored += _post(token, node, cursor, stop, now, anchor)
            cursor = stop
    return stored
