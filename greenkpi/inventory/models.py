"""Who owns what: organisations, teams, people, sites, hosts, devices and collector tokens."""

from __future__ import annotations

from datetime import tzinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from greenkpi.lib.periods import BadZone, zone


def validate_time_zone(value: str) -> None:
    """An IANA zone name ("America/Los_Angeles", "UTC"), else a ValidationError saying so."""
    try:
        zone(value)
    except BadZone as exc:
        raise ValidationError(str(exc), code="invalid_time_zone") from exc


class Organisation(models.Model):
    """A tenant. Every other row belongs to exactly one organisation, directly or through a parent.

    ``time_zone`` is where its days, weeks, months, quarters and years begin: daily rollups, page
    ranges, budgets, forecasts, digests and reports follow it (docs/kpis.md, "Time zones and
    periods"). Changing it rebuilds the organisation's daily tables (kpis.daily)."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_time_zone],
        help_text="IANA time zone name (e.g. Europe/Paris, America/Los_Angeles): where days, "
        "months and budget periods begin. Changing it rebuilds the daily rollups.",
    )
    time_zone_changed_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When time_zone last changed."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def tz(self) -> tzinfo:
        """The organisation's zone (zoneinfo)."""
        return zone(self.time_zone)


class Team(models.Model):
    """A group that owns budgets, models and runs; collectors attribute energy to it by slug."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="teams")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "slug"], name="team_slug_unique_per_org"
            )
        ]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    MANAGER = "manager", "Manager"
    ADMIN = "admin", "Admin"


class Membership(models.Model):
    """A user's role in one team, or in the whole organisation when ``team`` is empty."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="memberships"
    )
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, null=True, blank=True, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "organisation", "team"], name="membership_unique"
            ),
            models.UniqueConstraint(
                fields=["user", "organisation"],
                condition=models.Q(team__isnull=True),
                name="org_membership_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.role} of {self.team or self.organisation}"


class Boundary(models.TextChoices):
    """Where a site's electricity falls in the GHG Protocol inventory (docs/kpis.md, "Reporting")."""

    OWNED = "owned", "Owned or leased (Scope 2)"
    COLOCATION = "colocation", "Colocation (Scope 2: the organisation controls the equipment)"
    CLOUD = "cloud", "Cloud provider (Scope 3 cat. 1, purchased services)"


class Site(models.Model):
    """A data centre or office: its grid zone sets the carbon intensity, its PUE the overhead."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="sites")
    name = models.CharField(max_length=200)
    grid_zone = models.CharField(
        max_length=32,
        help_text="Electricity Maps zone or ISO 3166 country code, e.g. FR, DE, US-CAL-CISO",
    )
    pue = models.FloatField(
        default=1.5,
        validators=[MinValueValidator(1.0), MaxValueValidator(4.0)],
        help_text="Power usage effectiveness: facility energy / IT energy (1.0 = no overhead).",
    )
    boundary = models.CharField(
        max_length=12,
        choices=Boundary.choices,
        default=Boundary.OWNED,
        db_default=Boundary.OWNED,
        help_text="Owned or colocation: its electricity is Scope 2; cloud: Scope 3 cat. 1.",
    )
    latitude = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(-90), MaxValueValidator(90)]
    )
    longitude = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(-180), MaxValueValidator(180)]
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "name"], name="site_name_unique_per_org"
            ),
            models.CheckConstraint(condition=models.Q(pue__gte=1.0), name="site_pue_at_least_one"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.grid_zone})"


class Host(models.Model):
    """A machine running a collector; registered on its first batch."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="hosts")
    site = models.ForeignKey(
        Site, on_delete=models.SET_NULL, null=True, blank=True, related_name="hosts"
    )
    default_team = models.ForeignKey(
        Team,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="default_hosts",
        help_text="Receives the energy no process claimed (unattributed).",
    )
    hostname = models.CharField(max_length=255)
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(null=True, blank=True)
    collector_version = models.CharField(max_length=64, blank=True)
    clock_skew_s = models.FloatField(
        null=True,
        blank=True,
        help_text="Server receive time minus the host's clock at its last batch.",
    )
    spool_depth = models.PositiveIntegerField(null=True, blank=True)
    dropped_windows = models.PositiveBigIntegerField(default=0)
    source_errors = models.JSONField(default=list, blank=True)
    # Whole-host embodied carbon (chassis, CPUs, DRAM, storage; GPUs carry their own): the class's
    # defaults (carbon.methodology.SERVER_CLASSES), each part overridable, amortised over the hours
    # the host reports whether or not its CPU is measured (docs/kpis.md, "Embodied").
    server_class = models.CharField(
        max_length=16,
        blank=True,
        # carbon.methodology.SERVER_CLASSES' keys (the inventory sits below carbon, so they are
        # restated here and tests/carbon/test_reporting_factors.py keeps the two equal)
        choices=[
            ("gpu-8", "8-GPU server"),
            ("gpu-4", "4-GPU server"),
            ("cpu-2s", "2-socket server"),
            ("cpu-1s", "1-socket server"),
        ],
        default="",
        db_default="",
        help_text="gpu-8, gpu-4, cpu-2s or cpu-1s; empty = gpu-8 if it reports a GPU, else cpu-2s.",
    )
    embodied_chassis_kgco2e = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.0)]
    )
    embodied_cpu_kgco2e = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.0)]
    )
    embodied_dram_kgco2e = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.0)]
    )
    embodied_storage_kgco2e = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.0)]
    )
    lifetime_years = models.FloatField(
        default=4.0, db_default=4.0, validators=[MinValueValidator(0.5)]
    )

    class Meta:
        ordering = ["hostname"]
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "hostname"], name="hostname_unique_per_org"
            )
        ]

    def __str__(self) -> str:
        return self.hostname


class DeviceKind(models.TextChoices):
    GPU = "gpu", "GPU"
    CPU = "cpu", "CPU package"
    DRAM = "dram", "DRAM"
    HOST = "host", "Whole host"


class Device(models.Model):
    """One measured component of a host. Embodied carbon is amortised over its lifetime."""

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="devices")
    kind = models.CharField(max_length=8, choices=DeviceKind.choices)
    uuid = models.CharField(
        max_length=200, help_text="Vendor UUID (GPU) or the collector's stable id."
    )
    model_name = models.CharField(max_length=200, blank=True)
    power_limit_w = models.FloatField(null=True, blank=True)
    embodied_kgco2e = models.FloatField(
        null=True,
        blank=True,
        help_text="Manufacturing footprint; empty = the default for its kind.",
    )
    lifetime_years = models.FloatField(default=4.0, validators=[MinValueValidator(0.5)])
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["host", "kind", "uuid"]
        constraints = [
            models.UniqueConstraint(fields=["host", "uuid"], name="device_uuid_unique_per_host")
        ]

    def __str__(self) -> str:
        return f"{self.host}:{self.kind}:{self.model_name or self.uuid}"


class CollectorToken(models.Model):
    """A write-only credential for collectors: it can post measurements and nothing else.

    Only a SHA-256 hash of the secret is stored (the secret is 190+ random bits, so a slow
    password hash would only cost CPU on every request); the prefix identifies it in lists.
    """

    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="collector_tokens"
    )
    name = models.CharField(max_length=200)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    default_team = models.ForeignKey(Team, on_delete=models.SET_NULL, null=True, blank=True)
    default_site = models.ForeignKey(Site, on_delete=models.SET_NULL, null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class MappingKind(models.TextChoices):
    """What an identity mapping matches on: a new kind is a new choice here, a field of
    ``attribution.Identity`` and a row in its tables. ``k8s-*`` (issue 13) match Kubernetes pods:
    a namespace (exact), or a label ``key=value`` (exact) or ``key`` (present; its value can be
    the model key)."""

    SLURM_USER = "slurm-user", "Slurm user → team"
    SLURM_ACCOUNT = "slurm-account", "Slurm account → team"
    SLURM_COMMENT = "slurm-comment", "Slurm comment pattern → model"
    SLURM_JOB_NAME = "slurm-job-name", "Slurm job-name pattern → model"
    K8S_NAMESPACE = "k8s-namespace", "Kubernetes namespace → team"
    K8S_LABEL = "k8s-label", "Kubernetes label (key=value, or key) → team or model"


# Run kinds a mapping may give the runs of the jobs it matches (workloads.RunKind's values; the
# inventory sits below workloads, so they are restated here and a test keeps the two equal).
RUN_KINDS = (
    ("data-prep", "Data preparation"),
    ("training", "Training"),
    ("fine-tuning", "Fine-tuning"),
    ("evaluation", "Evaluation"),
    ("inference", "Inference service"),
)


class IdentityMapping(models.Model):
    """An external identity (Slurm user / account, job-name or comment pattern) → team, model, run kind.

    Applied when rollups are computed (docs/kpis.md, "Attribution precedence"), so a change
    applies to history: saving or deleting one records an ``IdentityMappingChange`` that the KPI
    engine claims to mark the affected windows dirty. ``pattern`` is the exact value for user and
    account kinds, a Python regular expression (searched, not anchored) for job-name and comment
    kinds; a regex with a named group ``model`` gives the model key itself.
    """

    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="identity_mappings"
    )
    kind = models.CharField(max_length=32, choices=MappingKind.choices)
    cluster = models.CharField(
        max_length=200, blank=True, help_text="Only jobs of this cluster; empty = every cluster."
    )
    pattern = models.CharField(
        max_length=200,
        help_text="User or account name (exact), or a regular expression for job names and comments.",
    )
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, null=True, blank=True, related_name="identity_mappings"
    )
    model_key = models.CharField(
        max_length=200, blank=True, help_text="Model key; empty = the regex's (?P<model>…) group."
    )
    run_kind = models.CharField(max_length=12, choices=RUN_KINDS, blank=True)
    priority = models.SmallIntegerField(
        default=0, help_text="Higher wins when several mappings match the same job."
    )
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["organisation", "kind", "cluster", "pattern"]
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "kind", "cluster", "pattern"],
                name="identity_mapping_unique_per_org",
            )
        ]

    def __str__(self) -> str:
        target = self.team.slug if self.team_id else self.model_key or self.run_kind
        return f"{self.kind} {self.pattern!r} → {target}"


class IdentityMappingChange(models.Model):
    """A mapping spec (kind, cluster, pattern) whose jobs must be re-attributed: written with every
    save or delete of an ``IdentityMapping`` (an edit writes its old and its new spec), claimed by
    the KPI engine (kpis.attribution.mapping_changes_apply), which marks those jobs' windows dirty.
    The inventory sits below the KPI engine, so it leaves a row rather than calling it."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=32, choices=MappingKind.choices)
    cluster = models.CharField(max_length=200, blank=True)
    pattern = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["created_at"],
                condition=models.Q(applied_at__isnull=True),
                name="mapping_change_pending_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.pattern!r} ({'applied' if self.applied_at else 'pending'})"
