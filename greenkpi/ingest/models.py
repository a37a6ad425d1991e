"""What collectors measured, stored as sent: append-only, one row per device window.

Measurement tables carry no surrogate id and no foreign-key constraints in the database: each index
and per-row trigger costs ingest speed (reference/performance-limits.md), the natural key
(device, window start) is what deduplicates, and the ingest service resolves every id itself in the
same transaction.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from greenkpi.inventory.models import CollectorToken, Device, Host, Organisation, Team


class Method(models.TextChoices):
    COUNTER = "counter", "Energy counter"
    POWER_INTEGRAL = "power_integral", "Integrated power readings"
    ESTIMATE = "estimate", "Model estimate"


class IngestBatch(models.Model):
    """One accepted POST: its idempotency key, a fingerprint of its body, and the answer we gave.

    A replay with the same key gets the stored answer; the same key with another body is refused.
    """

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE)
    token = models.ForeignKey(CollectorToken, on_delete=models.SET_NULL, null=True)
    host = models.ForeignKey(Host, on_delete=models.SET_NULL, null=True)
    idempotency_key = models.CharField(max_length=200)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the decoded body.")
    received_at = models.DateTimeField(default=timezone.now)
    host_clock = models.DateTimeField(null=True, blank=True)
    sample_count = models.PositiveIntegerField(default=0)
    accepted = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    status_code = models.PositiveSmallIntegerField(default=201)
    response = models.JSONField(default=dict)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "idempotency_key"], name="batch_key_unique_per_org"
            )
        ]
        indexes = [models.Index(fields=["received_at"], name="batch_received_idx")]

    def __str__(self) -> str:
        return f"batch {self.pk} ({self.sample_count} samples)"


class Sample(models.Model):
    """One measurement window of one device. Energy in joules; powers in watts; fractions 0..1."""

    pk = models.CompositePrimaryKey("device_id", "window_start")
    # No index of its own: the key's index starts with device_id (and covers the host chart,
    # migration 0004); without the second one binary COPY runs ~40 % faster (docs/api.md).
    device = models.ForeignKey(
        Device, on_delete=models.CASCADE, db_constraint=False, db_index=False, related_name="+"
    )
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    energy_j = models.FloatField()
    method = models.CharField(max_length=16, choices=Method.choices)
    power_avg_w = models.FloatField(null=True)
    power_peak_w = models.FloatField(null=True)
    util_busy = models.FloatField(null=True)
    util_sm = models.FloatField(null=True)
    mem_used_bytes = models.BigIntegerField(null=True)
    mem_total_bytes = models.BigIntegerField(null=True)
    temperature_c = models.FloatField(null=True)
    idle_s = models.FloatField(null=True)
    batch = models.ForeignKey(
        IngestBatch, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    # The window's attribution shares, on its own row so one COPY writes one row per window
    # (columns.py says the encoding; SampleShare reads them back as rows). Empty = the host's.
    shares = models.JSONField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.device_id}@{self.window_start:%Y-%m-%dT%H:%M:%SZ} {self.energy_j:.1f} J"


class SampleShare(models.Model):
    """The part of a window's energy that one process (team / model / run) used.

    A window without shares belongs entirely to its host's default team (unattributed).
    Read-only: a database view over ``Sample.shares`` (one row per element; migration 0008), kept
    for readers and tests that think in share rows. Writes go through the sample row.
    """

    pk = models.CompositePrimaryKey("device_id", "window_start", "position")
    device = models.ForeignKey(
        Device, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    window_start = models.DateTimeField()
    position = models.PositiveSmallIntegerField()
    team = models.ForeignKey(
        Team, on_delete=models.DO_NOTHING, db_constraint=False, null=True, related_name="+"
    )
    model_key = models.CharField(max_length=200, blank=True)
    run_key = models.CharField(max_length=200, blank=True)
    pid = models.IntegerField(null=True)
    energy_j = models.FloatField()
    method = models.CharField(max_length=16)
    tags = models.JSONField(default=dict)
    # The scheduler job that held the device (Slurm today, Kubernetes next): a small reference,
    # the job's facts are stored once in SchedulerJob (upserted once per batch, not per share).
    scheduler_job = models.ForeignKey(
        "SchedulerJob",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        null=True,
        related_name="+",
    )

    class Meta:
        managed = False

    def __str__(self) -> str:
        return f"{self.device_id}@{self.window_start} #{self.position}: {self.energy_j:.1f} J"


class SchedulerJob(models.Model):
    """A scheduler's job as the collectors saw it, once per organisation (not once per share).

    ``kind`` is the scheduler: ``slurm``, or ``k8s`` (issue 13: one row per pod, ``job_id``
    ``<namespace>/<pod>``, its namespace / pod / container / uid / labels / annotations in
    ``attributes``, so the kind is additive: same table, same rollup link, same mapping path).
    A Slurm ``job_id`` is canonical: ``1234``, an array task ``1234_7``, a het component
    ``1234+1``; ``run_key`` (``slurm:<cluster>:<job id>``, ``k8s:<namespace>/<pod>`` or a pod's
    ``greenkpi.io/run``) is the run key its shares carry. Facts are refreshed by every batch that mentions the job (a known
    value is never blanked by an empty one); ``first_window`` / ``last_window`` bound the windows
    it holds (at hour resolution), which is what a mapping change marks dirty.
    """

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16)
    cluster = models.CharField(max_length=200, blank=True)
    # Slurm's canonical id, or a pod's "<namespace>/<pod>" (63 + 1 + 253 characters)
    job_id = models.CharField(max_length=320)
    run_key = models.CharField(max_length=200)
    user = models.CharField(max_length=200, blank=True)
    account = models.CharField(max_length=200, blank=True)
    partition = models.CharField(max_length=200, blank=True)
    qos = models.CharField(max_length=200, blank=True)
    job_name = models.CharField(max_length=500, blank=True)
    comment = models.CharField(max_length=1000, blank=True)
    nodes = models.CharField(
        max_length=1000, blank=True, help_text="Slurm node list, e.g. gpu[01-02]."
    )
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    complete = models.BooleanField(
        default=True, help_text="The collector knew all the job's facts (scontrol answered)."
    )
    attributes = models.JSONField(
        default=dict, blank=True, help_text="Kind-specific facts: array / het ids, MLflow run id."
    )
    first_window = models.DateTimeField(help_text="UTC hour of the first window seen for the job.")
    last_window = models.DateTimeField(help_text="UTC hour of the last window seen for the job.")
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)
    runs_synced_at = models.DateTimeField(
        null=True, blank=True, help_text="When workloads last made its run agree (empty = due)."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "kind", "cluster", "job_id"],
                name="scheduler_job_unique_per_org",
            )
        ]
        indexes = [
            models.Index(fields=["organisation", "run_key"], name="scheduler_job_run_key_idx"),
            models.Index(fields=["organisation", "last_window"], name="scheduler_job_last_idx"),
        ]

    def __str__(self) -> str:
        return self.run_key


class CodeCarbonRun(models.Model):
    """Where one CodeCarbon run (``run_id``) stands, so its cumulative posts become window deltas.

    CodeCarbon's HTTP output posts the run's totals since the tracker started. We keep the last
    totals and the end of the last stored window; the next post stores only the difference, for
    the window between the two. The row is locked (SELECT ... FOR UPDATE) while a post is handled,
    so two concurrent posts of one run cannot both compute a delta from the same previous totals.
    """

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    run_id = models.CharField(max_length=150)
    project_name = models.CharField(max_length=200, blank=True)
    experiment_id = models.CharField(max_length=200, blank=True)
    host = models.ForeignKey(Host, on_delete=models.SET_NULL, null=True, related_name="+")
    utc_offset_s = models.IntegerField(
        null=True,
        help_text="Inferred UTC offset of the client's naive local timestamps (local - UTC).",
    )
    last_timestamp = models.DateTimeField(null=True, help_text="End (UTC) of the last stored post.")
    last_duration_s = models.FloatField(default=0.0)
    last_cpu_energy_kwh = models.FloatField(default=0.0)
    last_gpu_energy_kwh = models.FloatField(default=0.0)
    last_ram_energy_kwh = models.FloatField(default=0.0)
    posts = models.PositiveIntegerField(default=0, help_text="Posts that stored a window.")
    ignored_posts = models.PositiveIntegerField(
        default=0, help_text="Replayed or out-of-order posts (stored nothing)."
    )
    resets = models.PositiveIntegerField(
        default=0, help_text="Posts whose totals went down (a restarted run reusing its run_id)."
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "run_id"], name="codecarbon_run_unique_per_org"
            )
        ]

    def __str__(self) -> str:
        return f"codecarbon run {self.run_id} ({self.project_name})"
