"""Build the whole demo in the order the real system would have produced it (`manage.py load_demo`).

measurements -> grid series, PPA, tariffs -> model registry -> the live tick up to now -> Slurm jobs
(demo/slurm.py, through the ingest service) ->
hourly rollups (carbon and cost priced with the hourly series) -> daily rollups -> retraining
assessments (computed, with retrain costs from the rollups) -> recommendations (the pool's card
accepted before it shrank, its saving booked) -> budgets set from the forecasts ->
alert rules evaluated, so every page has something true to show the moment the server starts.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import transaction

from greenkpi.carbon.models import GridIntensityHourly
from greenkpi.demo import alerting, carbon, live, pods, recommendations, registry, simulation, slurm
from greenkpi.ingest.models import Sample
from greenkpi.inventory.models import Organisation
from greenkpi.kpis import daily
from greenkpi.kpis import services as kpi_services
from greenkpi.kpis.models import HourlyRollup, RollupWindow
from greenkpi.lib.periods import hour_floor
from greenkpi.workloads import retraining
from greenkpi.workloads.scheduler_runs import scheduler_runs_sync


@dataclass
class Built:
    organisation: Organisation
    token: str
    samples: int
    windows: int
    failed_windows: int
    timings_s: dict[str, float] = field(default_factory=dict)


def demo_reset() -> None:
    """Remove the demo organisation, its users, measurements and simulated grid series."""
    existing = Organisation.objects.filter(slug=simulation.DEMO_SLUG)
    ids = list(existing.values_list("pk", flat=True))
    with transaction.atomic():
        device_ids = list(existing.values_list("hosts__devices__id", flat=True))
        # Measurements and rollups carry no cascading foreign keys (bulk tables): delete them first.
        Sample.objects.filter(device_id__in=device_ids).delete()
        HourlyRollup.objects.filter(organisation_id__in=ids).delete()
        RollupWindow.objects.filter(organisation_id__in=ids).delete()
        existing.delete()
        get_user_model().objects.filter(username__in=simulation.DEMO_USERS).delete()
        GridIntensityHourly.objects.filter(source=carbon.SOURCE).delete()


def demo_build(
    *, days: int = 90, now: datetime, seed: int = 7, say: Callable[[str], None] = lambda _: None
) -> Built:
    """Create the demo organisation with ``days`` of history ending at ``now`` (see module)."""
    timings: dict[str, float] = {}
    clock = time.monotonic()

    def lap(name: str) -> None:
        nonlocal clock
        timings[name] = round(time.monotonic() - clock, 2)
        clock = time.monotonic()

    loaded = simulation.load_organisation(days=days, now=now, seed=seed)
    org = loaded.organisation
    lap("measurements")
    hour = hour_floor(now)
    carbon.carbon_load(
        sites=loaded.sites, start=loaded.start - timedelta(days=1), end=hour + 2 * live.HOUR
    )
    lap("carbon")
    # One transaction around ~4,000 small service writes: their own atomic blocks become
    # savepoints, and PostgreSQL waits for one commit instead of thousands (16 s -> ~2 s).
    with transaction.atomic():
        registry.registry_load(
            teams=loaded.teams,
            owner=loaded.admin,
            start=loaded.start,
            now=now,
            inferences=loaded.inferences,
        )
    lap("registry")
    tick = live.tick(now=now, rng=random.Random(seed))
    lap("live tick")
    # a Kubernetes GPU node (greenkpi/demo/pods.py): the Kubernetes pods page's pods
    pods.pods_load(
        organisation=org,
        teams=loaded.teams,
        site=loaded.sites["paris"],
        start=loaded.start,
        now=now,
    )
    lap("kubernetes pods")
    with transaction.atomic():
        slurm_windows = slurm.slurm_load(organisation=org, teams=loaded.teams, now=now)
    lap("slurm jobs")
    say(f"Loaded {loaded.samples + tick.samples:,} measurement windows for '{org}'.")
    say("Computing hourly rollups (energy, carbon with the hourly grid series, cost) ...")
    windows = kpi_services.backfill_windows(
        start=loaded.start - timedelta(days=1),
        end=hour + timedelta(hours=1),
        organisation_ids=[org.pk],
    )
    run = kpi_services.windows_recompute(windows=windows, kind="backfill")
    lap("hourly rollups")
    # the scheduler jobs' runs (the demo pods' and Slurm jobs'), as the periodic workloads task
    # makes them
    scheduler_runs_sync(organisation_id=org.pk, now=now)
    daily.days_refresh_stale(limit=10_000)  # the days pages read for long ranges
    lap("daily rollups")
    retraining.models_recompute(organisation_id=org.pk, now=now)
    lap("retraining")
    recommendations.recommendations_load(organisation=org, admin=loaded.admin, now=now)
    lap("recommendations")
    with transaction.atomic():
        budgets = alerting.budgets_load(
            organisation=org, teams=loaded.teams, admin=loaded.admin, now=now
        )
        alerting.rules_load(
            organisation=org, teams=loaded.teams, admin=loaded.admin, budgets=budgets
        )
    alerting.rules_first_evaluations(organisation=org, now=now)
    lap("budgets and alerts")
    return Built(
        organisation=org,
        token=loaded.token,
        samples=loaded.samples + tick.samples + slurm_windows,
        windows=run.windows_done,
        failed_windows=run.windows_failed,
        timings_s=timings,
    )
