"""Demo Kubernetes pods (issue 13): one GPU node of the demo cluster, so the Kubernetes pods page
has something true to show. Posted through the ingest service as the collector DaemonSet would
post it (scheduler pods on the shares), mapped by ``k8s-namespace`` / ``k8s-label`` identity
mappings, rolled up with everything else by build.py.

Node ``k8s-gpu-01`` (site paris, 4 H100s), 5-minute windows over the last ``HOURS`` hours, then
1-minute windows continued by the live tick (``pods_tick``):
- GPU 0, MIG: slices held by cv-research/train-detector (model detr-small) and
  nlp-serving/chat-0 (model support-chat-8b); both run, split equally ("MIG slice").
- GPU 1, time-sliced: nlp-serving/chat-0 and nlp-serving/chat-1 by utilization 5 : 3.
- GPU 2: cv-research/train-detector alone.
- GPU 3: held by cv-research/detr-notebook, nothing runs: allocated-idle waste.
Namespace cv-research -> team vision (k8s-namespace), label team=nlp -> team nlp (k8s-label),
app.kubernetes.io/name -> model (the demo registry's detr-small and support-chat-8b, so no new
model appears). chat-1 names its run (annotation greenkpi.io/run).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import orjson
from django.db.models import Max

from greenkpi.ingest.models import Sample
from greenkpi.ingest.services import ingest_batch
from greenkpi.inventory.mappings import mapping_save
from greenkpi.inventory.models import CollectorToken, Organisation, Site, Team
from greenkpi.inventory.services import token_create
from greenkpi.lib.periods import hour_floor

HOSTNAME = "k8s-gpu-01"
CLUSTER = "demo-eks"
HOURS = 48
HISTORY_WINDOW = timedelta(minutes=5)
LIVE_WINDOW = timedelta(minutes=1)  # like the live hosts (live.py)
MAX_CATCH_UP = timedelta(hours=6)
TOKEN_NAME = "demo k8s DaemonSet"
BUSY_W, IDLE_W = 350.0, 62.0
GPUS = [f"GPU-demo-k8s-{i:02d}" for i in range(4)]

_TRAIN = {
    "namespace": "cv-research",
    "pod": "train-detector",
    "container": "trainer",
    "labels": {"app.kubernetes.io/name": "detr-small", "team": "vision"},
}
_CHAT0 = {
    "namespace": "nlp-serving",
    "pod": "chat-0",
    "container": "server",
    "labels": {"app.kubernetes.io/name": "support-chat-8b", "team": "nlp"},
}
_CHAT1 = {
    "namespace": "nlp-serving",
    "pod": "chat-1",
    "container": "server",
    "labels": {"app.kubernetes.io/name": "support-chat-8b", "team": "nlp"},
    "annotations": {"greenkpi.io/run": "support-chat-8b-canary"},
}
_IDLE = {  # a development notebook holding a GPU it does not use
    "namespace": "cv-research",
    "pod": "detr-notebook",
    "container": "jupyter",
    "labels": {"app.kubernetes.io/name": "detr-small", "team": "vision"},
}
MIG = {"gpu_sharing": "mig"}


def _pod(spec: dict) -> dict:
    return {"kind": "k8s", "cluster": CLUSTER, **spec}


def _shares(index: int, energy: float) -> list[dict]:
    """The window's shares on GPU ``index`` (they add up to its energy)."""
    if index == 0:  # MIG: the physical GPU's energy, equally per slice's process
        half = energy / 2
        return [
            {"energy_j": half, "method": "equal", "pid": 4101, "tags": MIG, "scheduler": _pod(p)}
            for p in (_TRAIN, _CHAT0)
        ]
    if index == 1:  # time-sliced: by per-process utilization, 50 % and 30 %
        return [
            {"energy_j": energy * 5 / 8, "method": "utilization", "pid": 4202, "scheduler": _pod(_CHAT0)},
            {"energy_j": energy * 3 / 8, "method": "utilization", "pid": 4303, "scheduler": _pod(_CHAT1)},
        ]  # fmt: skip
    if index == 2:
        return [
            {"energy_j": energy, "method": "utilization", "pid": 4101, "scheduler": _pod(_TRAIN)}
        ]
    return [{"energy_j": energy, "method": "allocated-idle", "scheduler": _pod(_IDLE)}]


def _z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def pods_load(
    *,
    organisation: Organisation,
    teams: dict[str, Team],
    site: Site,
    start: datetime,
    now: datetime,
) -> int:
    """Map the namespaces and labels, post the node's history in 5-minute windows up to the
    hour of ``now`` and 1-minute windows since (what the live tick continues); returns the
    samples stored."""
    mapping_save(
        organisation=organisation, kind="k8s-namespace", pattern="cv-research", team=teams["vision"]
    )
    mapping_save(organisation=organisation, kind="k8s-label", pattern="team=nlp", team=teams["nlp"])
    mapping_save(organisation=organisation, kind="k8s-label", pattern="app.kubernetes.io/name")
    token, _ = token_create(
        organisation=organisation,
        name=TOKEN_NAME,
        default_team=teams["platform"],
        default_site=site,
    )
    end = hour_floor(now)
    moment = max(hour_floor(start), end - timedelta(hours=HOURS))
    stored = 0
    while moment < end:
        batch_end = min(end, moment + timedelta(hours=6))
        stored += _post(token, site.name, moment, batch_end, HISTORY_WINDOW, now)
        moment = batch_end
    return stored + pods_tick(organisation=organisation, now=now)


def pods_tick(*, organisation: Organisation, now: datetime) -> int:
    """Continue the node up to the minute of ``now`` in 1-minute windows, like the live hosts
    (live.tick calls it); idempotent within the minute. Returns the samples stored."""
    token = (
        CollectorToken.objects.filter(organisation=organisation, name=TOKEN_NAME)
        .select_related("default_site")
        .first()
    )
    if token is None or token.default_site is None:
        return 0  # a demo built before the pods existed
    target = now.replace(second=0, microsecond=0)
    last = Sample.objects.filter(
        device__host__organisation=organisation, device__host__hostname=HOSTNAME
    ).aggregate(end=Max("window_end"))["end"]
    cursor = max(last or target - LIVE_WINDOW, target - MAX_CATCH_UP)
    if cursor >= target:
        return 0
    return _post(token, token.default_site.name, cursor, target, LIVE_WINDOW, now)


def _post(
    token: CollectorToken,
    site: str,
    start: datetime,
    end: datetime,
    window: timedelta,
    now: datetime,
) -> int:
    """One batch of the node's windows in [start, end), through the ingest service."""
    samples = []
    seconds = window.total_seconds()
    moment = start
    while moment + window <= end:
        for index, device in enumerate(GPUS):
            busy = index != 3
            energy = (BUSY_W if busy else IDLE_W) * seconds
            samples.append(
                {
                    "device_uuid": device,
                    "device_kind": "gpu",
                    "start": _z(moment),
                    "end": _z(moment + window),
                    "energy_j": energy,
                    "method": "counter",
                    "util_busy": 0.85 if busy else 0.0,
                    "idle_s": 0.0 if busy else seconds,
                    "shares": _shares(index, energy),
                }
            )
        moment += window
    if not samples:
        return 0
    body = {
        "schema_version": 1,
        "host": {
            "hostname": HOSTNAME,
            "agent_version": "demo",
            "site": site,
            "clock": _z(now),
            "devices": [{"uuid": d, "kind": "gpu", "model": "NVIDIA H100"} for d in GPUS],
        },
        "samples": samples,
    }
    result = ingest_batch(
        token=token, idempotency_key=str(uuid.uuid4()), body=orjson.dumps(body), now=now
    )
    return int(result.body.get("accepted", 0))
