"""Hourly rollups (the only table KPIs read), the state of each rollup window, and run records."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from greenkpi.carbon.methodology import IntensitySource, MarketSource
from greenkpi.inventory.models import Device, Host, Organisation, Site, Team


class HourlyRollup(models.Model):
    """Energy, utilization, carbon and cost of one device x owner (team, model, run) x hour.

    Written only by ``kpis.services`` which replaces all rows of an (organisation, hour) window at
    once. A window belongs to the hour its sample starts in. Energy is IT energy (kWh) as measured;
    ``facility_energy_kwh`` includes the site's PUE and is what carbon and cost are computed on.
    GPU-hour columns are zero for non-GPU devices. Carbon follows SCI (docs/kpis.md).
    """

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField(help_text="Start of the UTC hour.")
    device = models.ForeignKey(
        Device, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    device_kind = models.CharField(max_length=8)
    host = models.ForeignKey(
        Host, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    site = models.ForeignKey(
        Site, on_delete=models.DO_NOTHING, db_constraint=False, null=True, related_name="+"
    )
    team = models.ForeignKey(
        Team, on_delete=models.DO_NOTHING, db_constraint=False, null=True, related_name="+"
    )
    model_key = models.CharField(max_length=200, blank=True)
    run_key = models.CharField(max_length=200, blank=True)

    samples = models.PositiveIntegerField(help_text="Sample windows (or shares of them) counted.")
    covered_s = models.FloatField(help_text="Seconds of measured windows x this owner's share.")
    energy_kwh = models.FloatField(help_text="IT energy measured at the device.")
    estimated_energy_kwh = models.FloatField(help_text="Part of energy_kwh that was estimated.")
    pue = models.FloatField()
    facility_energy_kwh = models.FloatField(help_text="energy_kwh x PUE.")

    allocated_gpu_h = models.FloatField(default=0.0)
    busy_gpu_h = models.FloatField(default=0.0)
    util_known_gpu_h = models.FloatField(default=0.0, help_text="GPU-hours with a busy reading.")
    idle_gpu_h = models.FloatField(default=0.0)
    idle_energy_kwh = models.FloatField(default=0.0, help_text="IT energy of the idle time.")
    sm_active_gpu_h = models.FloatField(default=0.0)
    sm_known_gpu_h = models.FloatField(default=0.0, help_text="GPU-hours with an SM reading.")

    intensity_g_per_kwh = models.FloatField(help_text="Location-based, gCO2e per kWh.")
    intensity_source = models.CharField(max_length=8, choices=IntensitySource.CHOICES)
    intensity_zone = models.CharField(max_length=32, help_text="Zone whose figure was used.")
    market_g_per_kwh = models.FloatField()
    market_source = models.CharField(max_length=8, choices=MarketSource.CHOICES)
    operational_location_kgco2e = models.FloatField()
    operational_market_kgco2e = models.FloatField()
    embodied_kgco2e = models.FloatField()
    renewable_share = models.FloatField(null=True, help_text="Grid renewable share, 0..1.")
    cost = models.FloatField(
        null=True, help_text="Facility energy x site price; empty = no tariff."
    )
    currency = models.CharField(max_length=3, blank=True)

    methodology_version = models.CharField(max_length=16)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["organisation", "hour"], name="rollup_org_hour_idx"),
            models.Index(fields=["organisation", "team", "hour"], name="rollup_org_team_hour_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%dT%H}Z dev {self.device_id} team {self.team_id}: {self.energy_kwh:.3f} kWh"


class RollupWindow(models.Model):
    """The state of one (organisation, hour) rollup window.

    Ingest bumps ``version`` whenever samples land in the window; a recompute records the version it
    read in ``computed_version``, so the window is dirty while ``version > computed_version``. A
    worker claims a window by a conditional UPDATE on ``claimed_until`` (a lease), so two workers
    never recompute one window at once and a killed worker's claim lapses by itself.
    """

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    version = models.BigIntegerField(default=1)
    computed_version = models.BigIntegerField(default=0)
    marked_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=64, blank=True)
    computed_at = models.DateTimeField(null=True, blank=True)
    rows = models.PositiveIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0, help_text="Consecutive failed recomputes.")
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["organisation", "hour"]
        constraints = [
            models.UniqueConstraint(fields=["organisation", "hour"], name="rollup_window_unique")
        ]
        indexes = [models.Index(fields=["hour"], name="rollup_window_hour_idx")]

    def __str__(self) -> str:
        state = "dirty" if self.version > self.computed_version else "clean"
        return f"org {self.organisation_id} {self.hour:%Y-%m-%dT%H}Z ({state})"


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    OK = "ok", "OK"
    PARTIAL = "partial", "Some windows failed"
    FAILED = "failed", "Failed"
    ABANDONED = "abandoned", "Abandoned (worker lost)"


class RecomputeRun(models.Model):
    """One run of a periodic or manual recompute, for the UI ("last recompute: ok, 40 s ago")."""

    kind = models.CharField(max_length=32, help_text="e.g. periodic, backfill, window")
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.RUNNING)
    duration_s = models.FloatField(null=True, blank=True)
    windows_done = models.PositiveIntegerField(default=0)
    windows_failed = models.PositiveIntegerField(default=0)
    rows_written = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["kind", "-started_at"], name="recompute_run_kind_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {self.started_at:%Y-%m-%d %H:%M:%S} {self.status}"
