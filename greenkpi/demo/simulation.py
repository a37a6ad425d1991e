"""A simulated ML organisation for `make demo`: plausible physics, not noise.

Four teams on three sites whose grids differ ~10x in carbon intensity (``fleet`` holds who runs what
when). Rows go straight to the ingest writers (the same COPY/bulk path as the API), because the API
rightly refuses windows older than its backfill horizon. The history is written in 30-minute
hour-long windows up to the start of the current hour; the live simulator (``live``) continues it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from greenkpi.demo import fleet
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
from greenkpi.lib.periods import hour_floor

DEMO_SLUG = "demo"
DEMO_PASSWORD = "greenkpi-demo"  # printed by make demo; a demo, not a secret
DEMO_USERS = ("admin", "vision-lead", "nlp-viewer")
BATCH_KEY = "demo-simulation"
# History in hour-long windows: the rollups are hourly anyway, and half the rows of 30-minute
# windows halves the load time of `make demo` (the live simulator writes 1-minute windows).
WINDOW = timedelta(hours=1)
CHUNK = 20_000  # rows per write: bounds memory, keeps each bulk statement large


@dataclass
class Loaded:
    """What the loader made, for the registry, carbon and alert steps and for make demo's output."""

    organisation: Organisation
    teams: dict[str, Team]
    sites: dict[str, Site]
    admin: AbstractBaseUser
    token: str
    batch: IngestBatch
    start: datetime
    now: datetime
    samples: int = 0
    inferences: dict[str, float] = field(default_factory=dict)  # run key -> requests served


def load_organisation(*, days: int, now: datetime, seed: int = 7) -> Loaded:
    """Create the demo organisation, its people, fleet and measurements up to the hour of ``now``."""
    end = hour_floor(now)
    start = end - timedelta(days=days)
    rng = random.Random(seed)
    with transaction.atomic():
        org = organisation_create(name="Demo Labs", slug=DEMO_SLUG)
        teams = {
            slug: team_create(organisation=org, name=name, slug=slug) for slug, name in fleet.TEAMS
        }
        sites = {
            name: site_create(
                organisation=org, name=name, grid_zone=zone, pue=pue, latitude=lat, longitude=lon
            )
            for name, zone, pue, lat, lon in fleet.SITES
        }
        admin = user_create(
            username="admin",
            password=DEMO_PASSWORD,
            email="admin@demo.local",
            organisation=org,
            role=Role.ADMIN,
            is_superuser=True,
        )
        user_create(
            username="vision-lead",
            password=DEMO_PASSWORD,
            email="vision-lead@demo.local",
            team=teams["vision"],
            role=Role.MANAGER,
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
            organisation=org, token=token, idempotency_key=BATCH_KEY, fingerprint="-", response={}
        )
        loaded = Loaded(org, teams, sites, admin, secret, batch, start, now)
        samples: list[tuple] = []
        for spec in fleet.HOSTS:
            host_end = end - fleet.SILENT_FOR if spec.hostname == fleet.SILENT_HOST else end
            gpu_ids, cpu_id, dram_id = _create_host(loaded, spec, host_end, rng)
            team_ids = {slug: team.pk for slug, team in teams.items()}
            for moment in fleet.windows(start, host_end, WINDOW):
                window = fleet.host_window(
                    spec, gpu_ids, cpu_id, dram_id, team_ids, moment, moment + WINDOW,
                    batch.pk, rng, now,
                )  # fmt: skip
                samples += window.samples
                for run, served in window.inferences.items():
                    loaded.inferences[run] = loaded.inferences.get(run, 0.0) + served
                if len(samples) >= CHUNK:
                    loaded.samples += _write(samples)
                    samples = []
        loaded.samples += _write(samples)
        IngestBatch.objects.filter(pk=batch.pk).update(
            sample_count=loaded.samples, accepted=loaded.samples
        )
    return loaded


def _write(samples: list[tuple]) -> int:
    if samples:
        writers.write_samples(samples)
    return len(samples)


def _create_host(
    loaded: Loaded, spec: fleet.HostSpec, end: datetime, rng: random.Random
) -> tuple[list[int], int, int]:
    host = Host.objects.create(
        organisation=loaded.organisation,
        site=loaded.sites[spec.site],
        default_team=loaded.teams[spec.team],
        hostname=spec.hostname,
        first_seen=loaded.start,
        last_seen=end,
        collector_version="0.1.0",
        clock_skew_s=round(rng.uniform(-0.4, 0.4), 3),
        spool_depth=0,
    )
    gpus = Device.objects.bulk_create(
        [
            Device(
                host=host,
                kind="gpu",
                uuid=f"GPU-{spec.hostname}-{i}",
                model_name=spec.gpu.name,
                power_limit_w=spec.gpu.max_w,
                last_seen=end,
            )
            for i in range(len(spec.gpus))
        ]
    )
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
    ids = [d.pk for d in gpus]
    if None in ids:  # a backend that does not return ids from bulk_create
        ids = list(host.devices.filter(kind="gpu").order_by("uuid").values_list("pk", flat=True))
    return ids, cpu.pk, dram.pk
