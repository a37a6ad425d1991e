"""A simulated ML organisation for `make demo`: plausible physics, not noise.

Four teams on three sites whose grids differ ~10x in carbon intensity. GPUs draw idle power plus a
share of their headroom proportional to utilization; training runs hold GPUs busy for days, inference
follows the working day, one pool of GPUs is allocated but idle, and one collector went silent two
days ago. Rows go straight to the ingest writers (the same COPY/bulk path as the API), because the
API rightly refuses windows older than its backfill horizon.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import transaction

from greenkpi.ingest import writers
from greenkpi.ingest.models import IngestBatch
from greenkpi.inventory.models import Device, Host, Organisation, Role, Site, Team
from greenkpi.inventory.services import (
    organisation_create,
    site_create,
    team_create,
    token_create,
    user_create,
)

DEMO_SLUG = "demo"
DEMO_PASSWORD = "greenkpi-demo"  # printed by make demo; a demo, not a secret
WINDOW = timedelta(minutes=30)


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
    """What runs on a host: a team's model, with a utilization profile over time."""

    team: str
    model: str
    kind: str  # training | inference | idle-pool
    run_days: float = 0.0  # training: length of each run
    gap_days: float = 0.0  # training: pause between runs


HOSTS = [
    # hostname, site, gpu model, gpus, workload
    ("gpu-paris-01", "paris", L4, 4, Workload("recsys", "two-tower-ranker", "inference")),
    ("gpu-paris-02", "paris", H100, 4, Workload("nlp", "llama-8b-lora", "training", 4, 3)),
    ("gpu-frankfurt-01", "frankfurt", A100, 4, Workload("nlp", "summarizer-t5", "inference")),
    ("gpu-frankfurt-02", "frankfurt", A100, 4, Workload("vision", "detr-small", "training", 2, 2)),
    ("gpu-frankfurt-03", "frankfurt", H100, 4, Workload("platform", "notebook-pool", "idle-pool")),
    ("gpu-warsaw-01", "warsaw", H100, 4, Workload("vision", "resnet50-v3", "training", 5, 2)),
    (
        "gpu-warsaw-02",
        "warsaw",
        A100,
        4,
        Workload("recsys", "two-tower-ranker", "training", 0.1, 0.9),
    ),
    ("gpu-warsaw-03", "warsaw", H100, 4, Workload("vision", "segformer-b2", "training", 3, 4)),
]
SILENT_HOST = "gpu-warsaw-03"  # its collector stopped two days ago
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


def utilization(
    workload: Workload, gpu: int, moment: datetime, rng: random.Random
) -> tuple[float, str | None]:
    """(busy fraction, run key or None when the GPU is not running the workload)."""
    hours = moment.timestamp() / 3600
    if workload.kind == "inference":
        # Diurnal load: peak mid-afternoon UTC, a floor at night, quieter weekends.
        day = 0.55 + 0.4 * math.sin((moment.hour - 9) / 24 * 2 * math.pi)
        weekend = 0.6 if moment.weekday() >= 5 else 1.0
        return min(1.0, max(0.03, day * weekend + rng.gauss(0, 0.04))), f"{workload.model}-serving"
    if workload.kind == "idle-pool":
        # Allocated to notebooks all day, used a few hours a week.
        busy = 0.45 if (moment.weekday() == 2 and 13 <= moment.hour < 16) else 0.02
        return max(0.0, busy + rng.gauss(0, 0.01)), "notebook-pool"
    period = workload.run_days + workload.gap_days
    if workload.model == "two-tower-ranker":  # nightly retrain at 01:00 UTC for ~2.4 h
        if 1 <= moment.hour < 3 or (moment.hour == 3 and moment.minute < 30):
            return min(1.0, 0.88 + rng.gauss(0, 0.03)), f"nightly-{moment:%Y%m%d}"
        return 0.0, None
    cycle, phase = divmod(hours / 24, period)
    if phase < workload.run_days and gpu < 4:
        return min(1.0, max(0.5, 0.93 + rng.gauss(0, 0.03))), f"{workload.model}-run-{int(cycle)}"
    return 0.0, None


def windows(start: datetime, end: datetime) -> Iterator[datetime]:
    moment = start
    while moment < end:
        yield moment
        moment += WINDOW


def load_demo(*, days: int = 90, now: datetime | None = None, seed: int = 7) -> dict[str, object]:
    """Create the demo organisation and its measurements; returns what make demo prints."""
    now = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    rng = random.Random(seed)
    with transaction.atomic():
        org = organisation_create(name="Demo Labs", slug=DEMO_SLUG)
        teams = {slug: team_create(organisation=org, name=name, slug=slug) for slug, name in TEAMS}
        sites = {
            name: site_create(
                organisation=org, name=name, grid_zone=zone, pue=pue, latitude=lat, longitude=lon
            )
            for name, zone, pue, lat, lon in SITES
        }
        user_create(
            username="admin",
            password=DEMO_PASSWORD,
            email="admin@demo.local",
            organisation=org,
            role=Role.ADMIN,
            is_superuser=True,
        )
        user_create(
            username="vision-lead", password=DEMO_PASSWORD, team=teams["vision"], role=Role.MANAGER
        )
        user_create(
            username="nlp-viewer", password=DEMO_PASSWORD, team=teams["nlp"], role=Role.VIEWER
        )
        token, secret = token_create(
            organisation=org,
            name="demo machine",
            default_team=teams["platform"],
            default_site=sites["paris"],
        )
        batch = IngestBatch.objects.create(
            organisation=org,
            token=token,
            idempotency_key="demo-simulation",
            fingerprint="-",
            response={},
        )
        total = 0
        for hostname, site, gpu_model, gpus, workload in HOSTS:
            total += _simulate_host(
                org, teams, sites[site], hostname, gpu_model, gpus, workload, batch, days, now, rng
            )
        IngestBatch.objects.filter(pk=batch.pk).update(sample_count=total, accepted=total)
    return {"organisation": org, "samples": total, "token": secret}


def _simulate_host(
    org: Organisation,
    teams: dict[str, Team],
    site: Site,
    hostname: str,
    gpu: GpuModel,
    gpus: int,
    workload: Workload,
    batch: IngestBatch,
    days: int,
    now: datetime,
    rng: random.Random,
) -> int:
    end = now - timedelta(days=2) if hostname == SILENT_HOST else now
    host = Host.objects.create(
        organisation=org,
        site=site,
        default_team=teams["platform"],
        hostname=hostname,
        first_seen=now - timedelta(days=days),
        last_seen=end,
        collector_version="0.1.0",
        clock_skew_s=round(rng.uniform(-0.4, 0.4), 3),
        spool_depth=0,
    )
    devices = [
        Device.objects.create(
            host=host,
            kind="gpu",
            uuid=f"GPU-{hostname}-{i}",
            model_name=gpu.name,
            power_limit_w=gpu.max_w,
            last_seen=end,
        )
        for i in range(gpus)
    ]
    cpu = Device.objects.create(
        host=host,
        kind="cpu",
        uuid="rapl:package-0",
        model_name="AMD EPYC 9454",
        power_limit_w=290,
        last_seen=end,
    )
    dram = Device.objects.create(
        host=host, kind="dram", uuid="rapl:dram-0", model_name="DDR5", last_seen=end
    )
    team_id = teams[workload.team].pk
    window_s = WINDOW.total_seconds()
    samples: list[tuple] = []
    shares: list[tuple] = []
    for start in windows(now - timedelta(days=days), end):
        stop = start + WINDOW
        host_load = 0.0
        for index, device in enumerate(devices):
            busy, run = utilization(workload, index, start, rng)
            power = gpu.idle_w + (gpu.max_w - gpu.idle_w) * busy**0.9
            energy = power * window_s
            idle_s = window_s * (1 - min(1.0, busy * 3)) if busy < 0.3 else 0.0
            host_load += busy / gpus
            samples.append(
                (
                    device.pk,
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
                    batch.pk,
                )
            )
            if run is not None:
                shares.append(
                    (
                        device.pk,
                        start,
                        0,
                        team_id,
                        workload.model,
                        run,
                        1000 + index,
                        energy,
                        "utilization",
                        {"kind": workload.kind},
                    )
                )
        cpu_w = 60 + 140 * host_load
        samples.append(
            (
                cpu.pk,
                start,
                stop,
                cpu_w * window_s,
                "counter",
                cpu_w,
                cpu_w * 1.3,
                host_load,
                None,
                None,
                None,
                None,
                None,
                batch.pk,
            )
        )
        samples.append(
            (
                dram.pk,
                start,
                stop,
                (8 + 6 * host_load) * window_s,
                "counter",
                8 + 6 * host_load,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                batch.pk,
            )
        )
    for offset in range(0, len(samples), 20_000):
        chunk = samples[offset : offset + 20_000]
        keys = {(row[0], row[1]) for row in chunk}
        writers.write_samples(chunk, [s for s in shares if (s[0], s[1]) in keys])
    return len(samples)
