"""The simulated fleet of `make demo`: sites, teams, hosts, and what each GPU runs when.

Pure (no Django): the loader, the live simulator and the registry all read the same schedule, so a
run key in the measurements is exactly the run key in the model registry. GPUs draw idle power plus
a share of their headroom proportional to utilization; training runs hold GPUs busy for days,
inference follows the working day, one pool of GPUs is allocated but idle.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

DAY = timedelta(days=1)
EPOCH = datetime(2020, 1, 6, tzinfo=UTC)  # a Monday: training cycles are counted from it


@dataclass(frozen=True)
class GpuModel:
    name: str
    idle_w: float
    max_w: float


H100 = GpuModel("NVIDIA H100 80GB HBM3", 70.0, 700.0)
A100 = GpuModel("NVIDIA A100-SXM4-40GB", 55.0, 400.0)
L4 = GpuModel("NVIDIA L4", 16.0, 72.0)


@dataclass(frozen=True)
class Workload:
    """What a GPU runs: a team's model with a utilization profile over time.

    kind: ``training`` / ``fine-tuning`` (runs of ``run_days`` every ``run_days + gap_days``,
    shifted by ``offset_days``; or one run ``once_days_ago`` days before the load), ``nightly``
    (01:00-03:30 UTC every night), ``inference`` (diurnal, one registry run per UTC day) or
    ``idle-pool`` (allocated notebooks, rarely used).
    """

    team: str
    model: str
    kind: str
    run_days: float = 0.0
    gap_days: float = 0.0
    offset_days: float = 0.0
    once_days_ago: float | None = None
    throughput_per_s: float = 0.0  # inference: requests a GPU serves per second at 100 % busy
    busy_scale: float = 1.0  # inference: a service sized for more traffic than it gets
    spare: bool = False  # idle-pool: a GPU given back when the pool shrinks (POOL_SHRUNK_AGO)

    @property
    def registry_kind(self) -> str:
        return {"nightly": "training", "idle-pool": "inference"}.get(self.kind, self.kind)


@dataclass(frozen=True)
class HostSpec:
    hostname: str
    site: str
    gpu: GpuModel
    gpus: tuple[tuple[Workload, ...], ...]  # per GPU, workloads in priority order

    @property
    def team(self) -> str:
        """The host's default team (owner of unattributed time): its first GPU's first workload."""
        return self.gpus[0][0].team


def _each(n: int, *workloads: Workload) -> tuple[tuple[Workload, ...], ...]:
    return tuple(workloads for _ in range(n))


RANKER_SERVE = Workload("recsys", "two-tower-ranker", "inference", throughput_per_s=2400)
RANKER_TRAIN = Workload("recsys", "two-tower-ranker", "nightly")
SESSION_REC = Workload("recsys", "session-recommender", "inference", throughput_per_s=900)
LLAMA_TUNE = Workload("nlp", "llama-8b-lora", "fine-tuning", 4, 3, offset_days=1)
SUPPORT_CHAT = Workload("nlp", "support-chat-8b", "inference", throughput_per_s=12)
# Sized for a launch that never came: an A100 pair under 30 % busy, the demo's right-size card.
SUMMARIZER = Workload("nlp", "summarizer-t5", "inference", throughput_per_s=60, busy_scale=0.3)
INTENT = Workload("nlp", "intent-classifier", "inference", throughput_per_s=3000)
DETR = Workload("vision", "detr-small", "training", 2, 2)
PRODUCT_TRAIN = Workload("vision", "product-classifier", "training", 1.5, once_days_ago=84)
PRODUCT_SERVE = Workload("vision", "product-classifier", "inference", throughput_per_s=1500)
RESNET = Workload("vision", "resnet50-v3", "training", 5, 2, offset_days=3)
SEGFORMER = Workload("vision", "segformer-b2", "training", 3, 4, offset_days=5)
NOTEBOOKS = Workload("platform", "notebook-pool", "idle-pool")
NOTEBOOKS_SPARE = Workload("platform", "notebook-pool", "idle-pool", spare=True)
# The platform team accepted the idle-pool recommendation (greenkpi/demo/advice.py) and shrank
# the pool from four GPUs to two this long before the anchor: the spare GPUs are given back
# (unowned, idle) and the two left carry the same notebook work, twice as busy.
POOL_SHRUNK_AGO = timedelta(days=2)

HOSTS = [
    HostSpec("gpu-paris-01", "paris", L4, _each(2, RANKER_SERVE) + _each(2, SESSION_REC)),
    HostSpec("gpu-paris-02", "paris", H100, _each(3, LLAMA_TUNE) + _each(1, SUPPORT_CHAT)),
    HostSpec("gpu-frankfurt-01", "frankfurt", A100, _each(2, SUMMARIZER) + _each(2, INTENT)),
    HostSpec("gpu-frankfurt-02", "frankfurt", A100, _each(4, PRODUCT_TRAIN, DETR)),
    HostSpec(
        "gpu-frankfurt-03", "frankfurt", H100, _each(2, NOTEBOOKS) + _each(2, NOTEBOOKS_SPARE)
    ),
    HostSpec("gpu-warsaw-01", "warsaw", H100, _each(4, RESNET)),
    HostSpec("gpu-warsaw-02", "warsaw", A100, _each(2, RANKER_TRAIN) + _each(2, PRODUCT_SERVE)),
    HostSpec("gpu-warsaw-03", "warsaw", H100, _each(4, SEGFORMER)),
]
SILENT_HOST = "gpu-warsaw-03"  # its collector stopped two days before the load
SILENT_FOR = timedelta(days=2)
SITES = [
    # name, grid zone, PUE, lat, lon
    ("paris", "FR", 1.25, 48.86, 2.35),
    ("frankfurt", "DE", 1.4, 50.11, 8.68),
    ("warsaw", "PL", 1.5, 52.23, 21.01),
]
TEAMS = [
    ("vision", "Computer Vision"),
    ("nlp", "Language"),
    ("recsys", "Recommendations"),
    ("platform", "ML Platform"),
]


def workloads() -> list[Workload]:
    """Every distinct workload of the fleet, in host order."""
    seen: dict[Workload, None] = {}
    for host in HOSTS:
        for gpu in host.gpus:
            for workload in gpu:
                seen.setdefault(workload)
    return list(seen)


@dataclass(frozen=True)
class RunSpan:
    key: str
    start: datetime
    end: datetime


def training_runs(
    workload: Workload, start: datetime, end: datetime, anchor: datetime
) -> list[RunSpan]:
    """Training runs of ``workload`` overlapping [start, end); ``anchor`` dates a one-off run."""
    if workload.kind == "nightly":
        day = start.replace(hour=0, minute=0, second=0, microsecond=0) - DAY
        spans = []
        while day < end:
            span = RunSpan(
                f"{workload.model}-nightly-{day:%Y%m%d}",
                day + timedelta(hours=1),
                day + timedelta(hours=3, minutes=30),
            )
            if span.end > start and span.start < end:
                spans.append(span)
            day += DAY
        return spans
    if workload.once_days_ago is not None:
        first = (anchor - timedelta(days=workload.once_days_ago)).replace(minute=0)
        first = first.replace(hour=0)
        span = RunSpan(
            f"{workload.model}-{first:%Y%m%d}", first, first + timedelta(days=workload.run_days)
        )
        return [span] if span.end > start and span.start < end else []
    period = workload.run_days + workload.gap_days
    cycle = math.floor(((start - EPOCH) / DAY - workload.offset_days) / period) - 1
    spans = []
    while True:
        run_start = _cycle_start(workload, cycle)
        if run_start >= end:
            return spans
        span = RunSpan(
            f"{workload.model}-{run_start:%Y%m%d}",
            run_start,
            run_start + timedelta(days=workload.run_days),
        )
        if span.end > start:
            spans.append(span)
        cycle += 1


def _cycle_start(workload: Workload, cycle: int) -> datetime:
    return EPOCH + timedelta(
        days=cycle * (workload.run_days + workload.gap_days) + workload.offset_days
    )


def serving_key(workload: Workload, moment: datetime) -> str:
    return f"{workload.model}-serving-{moment:%Y%m%d}"


def _active_run(workload: Workload, moment: datetime, anchor: datetime) -> str | None:
    """The run key of the training run going on at ``moment`` (O(1): called per GPU window)."""
    if workload.kind == "nightly":
        minutes = moment.hour * 60 + moment.minute
        return f"{workload.model}-nightly-{moment:%Y%m%d}" if 60 <= minutes < 210 else None
    if workload.once_days_ago is not None:
        spans = training_runs(workload, moment, moment + timedelta(seconds=1), anchor)
        return spans[0].key if spans else None
    period = workload.run_days + workload.gap_days
    cycle = math.floor(((moment - EPOCH) / DAY - workload.offset_days) / period)
    run_start = _cycle_start(workload, cycle)
    if moment < run_start:  # float rounding at a cycle edge
        cycle -= 1
        run_start = _cycle_start(workload, cycle)
    if moment < run_start + timedelta(days=workload.run_days):
        return f"{workload.model}-{run_start:%Y%m%d}"
    return None


def utilization(
    gpu: tuple[Workload, ...], moment: datetime, rng: random.Random, anchor: datetime
) -> tuple[float, Workload | None, str | None]:
    """(busy fraction, workload, run key) of one GPU at ``moment``; (0, None, None) when idle."""
    for workload in gpu:
        if workload.kind == "inference":
            # Diurnal load: peak mid-afternoon UTC, a floor at night, quieter weekends.
            day = 0.55 + 0.4 * math.sin((moment.hour + moment.minute / 60 - 9) / 24 * 2 * math.pi)
            weekend = 0.6 if moment.weekday() >= 5 else 1.0
            busy = min(1.0, max(0.03, day * weekend + rng.gauss(0, 0.04)))
            return busy * workload.busy_scale, workload, serving_key(workload, moment)
        if workload.kind == "idle-pool":
            # Allocated to notebooks all day, used a few hours a week.
            shrunk = moment >= anchor - POOL_SHRUNK_AGO
            noise = rng.gauss(0, 0.01)  # drawn either way: the other GPUs' numbers stay the same
            if shrunk and workload.spare:
                return 0.0, None, None
            busy = 0.45 if (moment.weekday() == 2 and 13 <= moment.hour < 16) else 0.02
            return max(0.0, busy * (2 if shrunk else 1) + noise), workload, "notebook-pool"
        run = _active_run(workload, moment, anchor)
        if run is not None:
            busy = 0.88 if workload.kind == "nightly" else 0.93
            return min(1.0, max(0.5, busy + rng.gauss(0, 0.03))), workload, run
    return 0.0, None, None


def windows(start: datetime, end: datetime, step: timedelta) -> Iterator[datetime]:
    moment = start
    while moment < end:
        yield moment
        moment += step


@dataclass
class HostWindow:
    """The sample rows of one host for one window (ingest writer column order, shares on the row)."""

    samples: list[tuple]
    inferences: dict[str, float]  # run key -> requests served in the window


def host_window(
    spec: HostSpec,
    gpu_ids: list[int],
    cpu_id: int,
    dram_id: int,
    team_ids: dict[str, int],
    start: datetime,
    stop: datetime,
    batch_id: int,
    rng: random.Random,
    anchor: datetime,
) -> HostWindow:
    window_s = (stop - start).total_seconds()
    gpu = spec.gpu
    out = HostWindow([], {})
    host_load = 0.0
    for index, device_id in enumerate(gpu_ids):
        busy, workload, run = utilization(spec.gpus[index], start, rng, anchor)
        power = gpu.idle_w + (gpu.max_w - gpu.idle_w) * busy**0.9
        energy = power * window_s
        # Seconds with no kernel running: most of a nearly idle window, none of a busy one.
        idle_s = window_s * max(0.0, 1 - busy * 2) if busy < 0.3 else 0.0
        host_load += busy / len(gpu_ids)
        shares = None
        if workload is not None and run is not None:
            # encoded as the ingest path does (ingest.columns.SHARE_KEYS): the whole window's
            shares = [
                {
                    "e": energy,
                    "k": "utilization",
                    "t": team_ids[workload.team],
                    "m": workload.model,
                    "r": run,
                    "p": 1000 + index,
                    "g": {"kind": workload.registry_kind},
                }
            ]
        out.samples.append(
            (
                device_id,
                start,
                stop,
                energy,
                "counter",
                power,
                min(gpu.max_w, power * 1.15),
                busy,
                busy * 0.8,
                int(busy * 60e9),
                80 * 2**30,
                35 + 40 * busy,
                idle_s,
                batch_id,
                shares,
            )
        )
        if workload is not None and run is not None and workload.throughput_per_s:
            served = busy * window_s * workload.throughput_per_s
            out.inferences[run] = out.inferences.get(run, 0.0) + served
    cpu_w = 60 + 140 * host_load
    out.samples.append(
        (cpu_id, start, stop, cpu_w * window_s, "counter", cpu_w, cpu_w * 1.3, host_load)
        + (None,) * 5
        + (batch_id, None)
    )
    dram_w = 8 + 6 * host_load
    out.samples.append(
        (dram_id, start, stop, dram_w * window_s, "counter", dram_w)
        + (None,) * 7
        + (batch_id, None)
    )
    return out
