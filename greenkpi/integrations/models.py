"""Personal access tokens (scripts, Grafana), each organisation's MLflow tracking server, and the
MLflow write-back outbox (one row per run: written once, sent exactly once)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from greenkpi.inventory.models import Organisation, Team
from greenkpi.workloads.models import Run


class TokenAccess(models.TextChoices):
    READ = "read", "Read"
    WRITE = "write", "Read and write"


class PersonalAccessToken(models.Model):
    """A person's API credential: it acts as its user, never beyond the user's own rights.

    Bound to one organisation; ``teams`` narrows it to some of the user's teams there (none: every
    team the user sees, as of each request). ``read`` tokens are refused on every write (403).
    Only a SHA-256 hash of the secret is stored (as for collector tokens, lib/tokens.py); the
    string is shown once, at creation. Every token expires (at most ``MAX_LIFETIME_DAYS``).
    """

    MAX_LIFETIME_DAYS = 366

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="personal_tokens"
    )
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    access = models.CharField(max_length=5, choices=TokenAccess.choices, default=TokenAccess.READ)
    teams = models.ManyToManyField(Team, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…, {self.access})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()


class MlflowLink(models.Model):
    """Where an organisation's runs are written back: its MLflow tracking server.

    ``token`` is a secret (sent as ``Authorization: Bearer``; never shown back by the admin).
    Loopback and private addresses are refused unless ``allow_private_network`` (alerts.ssrf).
    """

    organisation = models.OneToOneField(
        Organisation, on_delete=models.CASCADE, related_name="mlflow_link"
    )
    tracking_uri = models.URLField(max_length=500, help_text="e.g. https://mlflow.example.org")
    token = models.CharField(max_length=500, blank=True, help_text="Bearer token (a secret).")
    enabled = models.BooleanField(default=True)
    allow_private_network = models.BooleanField(
        default=False, help_text="Allow loopback and private addresses (an on-premise MLflow)."
    )

    def __str__(self) -> str:
        return f"{self.organisation} -> {self.tracking_uri}"


class MlflowExport(models.Model):
    """The write-back of one closed run into its MLflow run (the alerts outbox pattern).

    Written in the transaction that closes the run (one per run: a second close writes nothing),
    claimed by one conditional UPDATE before sending, retried with exponential backoff while
    MLflow is down or refuses (the reason is on the run page), given up after ``MAX_ATTEMPTS``.
    """

    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting for the run's last hour to be rolled up"
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Written to MLflow"
        FAILED = "failed", "Gave up"
        SKIPPED = "skipped", "No MLflow server configured"

    run = models.OneToOneField(Run, on_delete=models.CASCADE, related_name="mlflow_export")
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    mlflow_run_id = models.CharField(max_length=100)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    written = models.JSONField(default=dict, blank=True, help_text="The metrics and tags sent.")

    class Meta:
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="mlflow_export_due_idx")]

    def __str__(self) -> str:
        return f"run {self.run_id} -> MLflow {self.mlflow_run_id} ({self.status})"
