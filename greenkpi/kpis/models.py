"""Hourly rollups (the only table KPIs read), the state of each rollup window, and run records."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from greenkpi.carbon.methodology import IntensityMethod, IntensitySource, MarketSource
from greenkpi.ingest.models import SchedulerJob
from greenkpi.inventory.models import Device, Host, Organisation, Site, Team


class HourlyRollup(models.Model):
    """Energy, utilization, carbon and cost of one device x owner (team, model, run) x hour.

    Written only by ``kpis.services`` which replaces all rows of an (organisation, hour) window at
    once. A window belongs to the hour its sample starts in. Energy is IT energy (kWh) as measured;
    ``facility_energy_kwh`` includes the site's PUE and is what carbon and cost are computed on.
    GPU-hour columns are zero for non-GPU devices. Carbon follows SCI (docs/kpis.md).
    """

    # No single-column FK indexes and no organisation constraint: each index and the deferred
    # per-row constraint check slowed the window's delete + insert (bench/rollup.py: paired ratio
    # 3.0 -> 2.54 without them). Reads go through the composite indexes below; deleting an
    # organisation still removes its rollups (Django's collector cascades, not the database).
    organisation = models.ForeignKey(
        Organisation,
        on_delete=models.CASCADE,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    hour = models.DateTimeField(help_text="Start of the UTC hour.")
    device = models.ForeignKey(
        Device, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    device_kind = models.CharField(max_length=8)
    host = models.ForeignKey(
        Host, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    site = models.ForeignKey(
        Site,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        null=True,
        related_name="+",
    )
    team = models.ForeignKey(
        Team,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        null=True,
        related_name="+",
    )
    model_key = models.CharField(max_length=200, blank=True)
    run_key = models.CharField(max_length=200, blank=True)
    scheduler_job = models.ForeignKey(
        SchedulerJob,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        null=True,
        related_name="+",
        help_text="The scheduler job whose shares these are (Slurm), if any.",
    )

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
    allocated_idle_gpu_h = models.FloatField(
        default=0.0, help_text="GPU-hours allocated to a job with no busy process (waste)."
    )
    allocated_idle_energy_kwh = models.FloatField(
        default=0.0, help_text="IT energy of those GPU-hours (waste, docs/kpis.md)."
    )
    unmapped_energy_kwh = models.FloatField(
        default=0.0,
        help_text="IT energy of scheduler jobs no mapping gave a team (left to the host's team).",
    )

    intensity_g_per_kwh = models.FloatField(help_text="Location-based, gCO2e per kWh.")
    intensity_source = models.CharField(max_length=8, choices=IntensitySource.CHOICES)
    intensity_zone = models.CharField(max_length=32, help_text="Zone whose figure was used.")
    market_g_per_kwh = models.FloatField()
    market_source = models.CharField(max_length=8, choices=MarketSource.CHOICES)
    operational_location_kgco2e = models.FloatField()
    operational_market_kgco2e = models.FloatField()
    embodied_kgco2e = models.FloatField(
        help_text="Device + its share of the whole host's embodied (Scope 3 cat. 2, SCI's M)."
    )
    # Since gk-2026.2 (database defaults: a bench once broke on non-null columns without them).
    upstream_kgco2e = models.FloatField(
        default=0.0,
        db_default=0.0,
        help_text="Scope 3 cat. 3: upstream of the electricity + T&D losses, kgCO2e.",
    )
    intensity_method = models.CharField(
        max_length=8,
        choices=IntensityMethod.CHOICES,
        blank=True,
        default="",
        db_default="",
        help_text="How intensity_g_per_kwh was obtained (direct or lifecycle, from what).",
    )
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
            # The host page beyond 7 days (dashboard/selectors/hosts.host_series_hourly) filters
            # on host and hour only: a parallel seq scan of every row without it (EXPLAIN on 4.6 M
            # rows: 3.1 s; with it 35 ms). The one read-side index the table keeps.
            models.Index(fields=["host", "hour"], name="rollup_host_hour_idx"),
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


class DailySums(models.Model):
    """The summed columns of a day of HourlyRollup, shared by DailyRollup and DailyTeamRollup.

    Shares are kept as their kWh numerators and denominators (``renewable_kwh`` /
    ``renewable_known_kwh``) so a share over any set of rows is re-derived exactly; intensities
    likewise are kgCO2e / facility kWh.
    """

    # The key both tables share (the site: the carbon pages show which intensity sources each site
    # used; the currency: cost never sums two currencies). No single-column FK indexes: the
    # composite ones serve every read, and each extra index slows the refresh's bulk insert.
    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    day = models.DateField(help_text="The UTC day.")
    team = models.ForeignKey(
        Team,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        related_name="+",
        db_index=False,
    )
    site = models.ForeignKey(
        Site,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        related_name="+",
        db_index=False,
    )
    currency = models.CharField(max_length=3, blank=True)

    samples = models.PositiveBigIntegerField()
    covered_s = models.FloatField()
    energy_kwh = models.FloatField()
    estimated_energy_kwh = models.FloatField()
    facility_energy_kwh = models.FloatField()
    allocated_gpu_h = models.FloatField()
    busy_gpu_h = models.FloatField()
    util_known_gpu_h = models.FloatField()
    idle_gpu_h = models.FloatField()
    idle_energy_kwh = models.FloatField()
    sm_active_gpu_h = models.FloatField()
    sm_known_gpu_h = models.FloatField()
    operational_location_kgco2e = models.FloatField()
    operational_market_kgco2e = models.FloatField()
    embodied_kgco2e = models.FloatField()
    unmapped_energy_kwh = models.FloatField(
        default=0.0, help_text="IT kWh of scheduler jobs no mapping gave a team (overview)."
    )
    upstream_kgco2e = models.FloatField(
        default=0.0, db_default=0.0, help_text="Scope 3 cat. 3 (upstream + T&D losses), kgCO2e."
    )
    renewable_kwh = models.FloatField(
        help_text="sum of renewable_share x facility kWh, where known."
    )
    renewable_known_kwh = models.FloatField(
        help_text="Facility kWh whose renewable share is known."
    )
    cost = models.FloatField(
        null=True, help_text="Σ cost of the priced hours; empty = none priced."
    )
    # What the carbon pages and the report show beside the sums (dashboard/carbon/days.py).
    idle_location_kgco2e = models.FloatField(
        default=0.0, help_text="Σ idle IT kWh x PUE x location intensity of each hour, kgCO2e."
    )
    facility_kwh_hourly_intensity = models.FloatField(
        default=0.0, help_text="Facility kWh whose intensity came from an hourly series."
    )
    facility_kwh_annual_intensity = models.FloatField(
        default=0.0, help_text="Facility kWh whose intensity was the zone's annual average."
    )
    facility_kwh_default_intensity = models.FloatField(
        default=0.0, help_text="Facility kWh whose intensity was the world average."
    )
    # A pair, not a key: a day's hours nearly always share one version, and a key would split
    # every row whenever the methodology changes mid-day (the pages only list the versions).
    methodology_version_min = models.CharField(max_length=16, blank=True, default="")
    methodology_version_max = models.CharField(max_length=16, blank=True, default="")

    class Meta:
        abstract = True


class DailyRollup(DailySums):
    """HourlyRollup summed per organisation x UTC day x owner (team, model, run) x site x device kind.

    What pages read for ranges of days to months: a year of 2,000 GPUs is ~17.5 M hourly rows but
    only the owners' distinct combinations per day here. Written only by ``kpis.daily``, which
    replaces every row of an (organisation, day) at once from HourlyRollup (never increments), so
    it always equals the sum of the day's hourly rows. Shares are kept as their kWh numerators and
    denominators (``renewable_kwh`` / ``renewable_known_kwh``) so a share over any set of rows is
    re-derived exactly; intensities likewise are kgCO2e / facility kWh. ``currency`` is part of the
    key, so ``cost`` never sums two currencies.
    """

    model_key = models.CharField(max_length=200, blank=True)
    run_key = models.CharField(max_length=200, blank=True)
    device_kind = models.CharField(max_length=8)

    hours = models.PositiveIntegerField(help_text="Distinct hours with rows.")
    devices = models.PositiveIntegerField(help_text="Distinct devices with rows.")

    class Meta:
        indexes = [
            models.Index(fields=["organisation", "day"], name="daily_org_day_idx"),
            models.Index(fields=["organisation", "team", "day"], name="daily_org_team_day_idx"),
            # Budgets on a model (alerts/consumption.py) read one model's days: a full scan of the
            # year without it (bench/budgets.py data, EXPLAIN: 78 ms; with it 2.6 ms).
            models.Index(
                fields=["organisation", "model_key", "day"], name="daily_org_model_day_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} team {self.team_id} {self.model_key}: {self.energy_kwh:.3f} kWh"


class DailyHostTeam(models.Model):
    """The teams that had rollup rows on each host on one UTC day (refreshed with DailyRollup).

    Lets kpis.read.hosts show a team the hosts it computed on without scanning shares or hourly rows.
    """

    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    day = models.DateField()
    host = models.ForeignKey(
        Host, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+", db_index=False
    )
    team = models.ForeignKey(
        Team, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+", db_index=False
    )

    class Meta:
        indexes = [
            models.Index(fields=["organisation", "day"], name="daily_host_team_day_idx"),
            models.Index(fields=["organisation", "team", "host"], name="daily_host_team_team_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.day} host {self.host_id} team {self.team_id}"


class DailyWindow(models.Model):
    """When an (organisation, UTC day) of DailyRollup was last rebuilt from HourlyRollup.

    A day is stale while one of its hourly windows was recomputed after ``refreshed_at``
    (see ``kpis.daily.stale_days``).
    """

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    refreshed_at = models.DateTimeField()
    rows = models.PositiveIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["organisation", "day"]
        constraints = [
            models.UniqueConstraint(fields=["organisation", "day"], name="daily_window_unique")
        ]

    def __str__(self) -> str:
        return f"org {self.organisation_id} {self.day} refreshed {self.refreshed_at:%H:%M:%S}"


class DailyTeamRollup(DailySums):
    """DailyRollup summed per organisation x UTC day x team x site x currency (no model, run, kind).

    What organisation-wide pages of whole days read (a year of 50 teams is ~20 k rows, against
    ~430 k DailyRollup rows for 500 models). Rebuilt with its day by ``kpis.daily.days_refresh``.
    """

    class Meta:
        indexes = [models.Index(fields=["organisation", "day"], name="daily_team_org_day_idx")]

    def __str__(self) -> str:
        return f"{self.day} team {self.team_id}: {self.energy_kwh:.3f} kWh"
