"""The living demo: each tick continues the simulation up to the current minute.

Without it the simulated hosts stop at load time and ten minutes later the overview calls them all
silent. A tick does what the collectors on those hosts would: it writes the windows since each
host's last one (hour-long windows to catch up a long gap, then 1-minute windows like the real
collector's), marks their rollup hours dirty in the same transaction (so the worker recomputes
them), refreshes ``last_seen``, extends the simulated grid series to the current hour and lets
the model registry follow the schedule. The silent host stays silent. Idempotent: a second tick
in the same minute writes nothing new.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from greenkpi.carbon.models import GridIntensityHourly
from greenkpi.carbon.services import grid_hourly_import_csv
from greenkpi.demo import carbon, fleet, pods, registry, slurm
from greenkpi.demo.simulation import BATCH_KEY, DEMO_SLUG, WINDOW
from greenkpi.ingest import writers
from greenkpi.ingest.models import IngestBatch, Sample
from greenkpi.inventory.models import Device, Host, Organisation
from greenkpi.kpis.dirty import windows_mark_dirty
from greenkpi.lib.periods import hour_floor

LIVE_WINDOW = timedelta(minutes=1)
# A demo restarted after a long break catches up at most this much; older hours stay a gap.
MAX_CATCH_UP = timedelta(days=7)
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class TickResult:
    samples: int = 0
    hours_marked: int = 0
    hosts: int = 0
    runs_changed: int = 0
    cluster_samples: int = 0  # the Slurm nodes' windows (demo/slurm.py), posted through ingest


def _step(cursor: datetime, target: datetime) -> timedelta:
    """An hour while a whole aligned window fits (catching up), else the collector's minute."""
    aligned = cursor.minute == 0 and cursor.second == 0 and cursor.microsecond == 0
    return WINDOW if aligned and cursor + WINDOW <= target else LIVE_WINDOW


def grid_follow(*, now: datetime) -> int:
    """Extend the simulated series of each demo zone through the next hour; returns hours added."""
    upto = hour_floor(now) + 2 * HOUR
    last = dict(
        GridIntensityHourly.objects.filter(zone__in=list(carbon.ZONES), source=carbon.SOURCE)
        .values_list("zone")
        .annotate(Max("hour"))
    )
    if not last:
        return 0  # not a demo database (or the series was replaced by real data): leave it
    since = min(last.get(zone, upto) for zone in carbon.ZONES) + HOUR
    since = max(since, hour_floor(now) - MAX_CATCH_UP)
    if since >= upto:
        return 0
    csv = carbon.grid_series_csv(start=since, end=upto, seed=int(since.timestamp()))
    return grid_hourly_import_csv(text=csv, source=carbon.SOURCE).hours_written


def tick(*, now: datetime | None = None, rng: random.Random | None = None) -> TickResult:
    """Continue the demo organisation's live hosts up to the minute of ``now`` (see module)."""
    now = now or timezone.now()
    rng = rng or random.Random()
    org = Organisation.objects.filter(slug=DEMO_SLUG).first()
    if org is None:
        return TickResult()
    target = now.replace(second=0, microsecond=0)
    specs = {s.hostname: s for s in fleet.HOSTS if s.hostname != fleet.SILENT_HOST}
    hosts = {h.hostname: h for h in Host.objects.filter(organisation=org, hostname__in=specs)}
    devices: dict[int, dict[str, list[int]]] = {h.pk: {} for h in hosts.values()}
    for pk, host_id, kind in (
        Device.objects.filter(host__in=hosts.values()).order_by("uuid").values_list("pk", "host_id", "kind")
    ):  # fmt: skip
        devices[host_id].setdefault(kind, []).append(pk)
    last_end = dict(
        Sample.objects.filter(device__host__in=hosts.values())
        .values_list("device__host_id")
        .annotate(Max("window_end"))
    )
    batch = IngestBatch.objects.get(organisation=org, idempotency_key=BATCH_KEY)
    team_ids = dict(org.teams.values_list("slug", "pk"))
    samples: list[tuple] = []
    since = target
    for hostname, host in hosts.items():
        spec, ids = specs[hostname], devices[host.pk]
        cursor = max(last_end.get(host.pk) or target - LIVE_WINDOW, target - MAX_CATCH_UP)
        since = min(since, cursor)
        while cursor < target:
            stop = cursor + _step(cursor, target)
            window = fleet.host_window(
                spec, ids["gpu"], ids["cpu"][0], ids["dram"][0], team_ids, cursor, stop,
                batch.pk, rng, target,
            )  # fmt: skip
            samples += window.samples
            cursor = stop
    grid_follow(now=target)
    marked = 0
    with transaction.atomic():
        for offset in range(0, len(samples), 20_000):
            writers.write_samples(samples[offset : offset + 20_000])
        # Marked in the transaction that writes the samples, as the ingest API does.
        marked = windows_mark_dirty(
            organisation_id=org.pk, window_starts={row[1] for row in samples}, now=now
        )
        Host.objects.filter(pk__in=[h.pk for h in hosts.values()]).update(last_seen=now)
        Device.objects.filter(host__in=hosts.values()).update(last_seen=now)
        if samples:
            IngestBatch.objects.filter(pk=batch.pk).update(received_at=now)
    pods.pods_tick(organisation=org, now=now)  # the demo Kubernetes node (its own module)
    changed = registry.registry_follow(organisation_id=org.pk, now=target, rng=rng, since=since)
    # The Slurm nodes report through the ingest service (their own transactions and marks).
    cluster = slurm.slurm_follow(organisation=org, now=now)
    return TickResult(len(samples), marked, len(hosts), changed, cluster)
