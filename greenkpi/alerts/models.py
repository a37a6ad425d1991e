"""Budgets, alert rules, channels, silences, alert instances and the notification outbox."""

from __future__ import annotations

import base64
import secrets
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from greenkpi.alerts import lifecycle, ssrf
from greenkpi.alerts.choices import (
    BudgetScope,
    ForecastMethod,
    Metric,
    NoDataHandling,
    RuleKind,
    RuleState,
)
from greenkpi.alerts.forecast import DEFAULT_THRESHOLDS_PCT
from greenkpi.inventory.models import Organisation, Team
from greenkpi.lib.periods import PeriodKind


def default_thresholds() -> list[int]:
    return list(DEFAULT_THRESHOLDS_PCT)


class Budget(models.Model):
    """An amount of one metric an organisation, team or model may use per calendar period (UTC).

    A model is named by ``model_key``, the key collectors send and rollups carry. When the model
    registry (issue 5) lands, a nullable ``model`` FK is added beside it and filled from the key;
    consumption keeps joining rollups on ``model_key``, so no budget needs rewriting.
    """

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    scope = models.CharField(max_length=16, choices=BudgetScope.choices)
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    model_key = models.CharField(max_length=200, blank=True)
    metric = models.CharField(max_length=12, choices=Metric.choices)
    period = models.CharField(max_length=8, choices=[(p.value, p.value) for p in PeriodKind])
    amount = models.FloatField(help_text="In the metric's unit (the currency for cost).")
    currency = models.CharField(max_length=3, blank=True, help_text="Cost budgets only.")
    thresholds_pct = models.JSONField(default=default_thresholds)
    forecast_method = models.CharField(
        max_length=16,
        choices=ForecastMethod.choices,
        default=ForecastMethod.AUTO,
        help_text="auto: the weekday profile once the scope has 14 days of history, else the "
        "recent 7-day rate (docs/alerts.md, Forecast).",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["organisation", "name"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="budget_amount_positive"),
            models.CheckConstraint(
                condition=(Q(scope="team") & Q(team__isnull=False))
                | (Q(scope="model") & ~Q(model_key=""))
                | Q(scope="organisation", team__isnull=True, model_key=""),
                name="budget_scope_consistent",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.amount:g} {self.unit}/{self.period})"

    @property
    def unit(self) -> str:
        return (
            self.currency
            if self.metric == Metric.COST
            else {
                Metric.ENERGY_KWH: "kWh",
                Metric.CO2E_KG: "kgCO2e",
                Metric.SCOPE2_LOCATION: "kgCO2e",
                Metric.SCOPE2_MARKET: "kgCO2e",
                Metric.GPU_HOURS: "GPU-h",
            }[Metric(self.metric)]
        )

    def clean(self) -> None:
        pcts = self.thresholds_pct
        if (
            not isinstance(pcts, list)
            or not pcts
            or not all(isinstance(p, int) and 0 < p <= 1000 for p in pcts)
        ):
            raise ValidationError(
                {"thresholds_pct": "a list of whole percents, e.g. [50, 80, 100]"}
            )
        if self.metric == Metric.COST and len(self.currency) != 3:
            raise ValidationError({"currency": "a cost budget needs its currency (ISO 4217)"})
        if self.team_id and self.team.organisation_id != self.organisation_id:
            raise ValidationError({"team": "the team belongs to another organisation"})


def default_group_by() -> list[str]:
    return ["rule"]


class Channel(models.Model):
    """Where notifications go: email (Django mail) or a signed JSON webhook."""

    class Kind(models.TextChoices):
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Webhook"

    class BodyFormat(models.TextChoices):
        STANDARD = "standard", "GreenKPI JSON"
        SLACK = "slack", "Slack-compatible"

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    enabled = models.BooleanField(default=True)
    addresses = models.TextField(blank=True, help_text="Email: extra recipients, one per line.")
    notify_team_managers = models.BooleanField(
        default=True, help_text="Email: also the managers of the alert's team (org admins if none)."
    )
    url = models.URLField(max_length=500, blank=True)
    secret = models.CharField(max_length=100, blank=True, help_text="whsec_... (HMAC-SHA256 key)")
    body_format = models.CharField(max_length=8, choices=BodyFormat.choices, default="standard")
    group_by = models.JSONField(
        default=default_group_by,
        blank=True,
        help_text='Labels whose values make a group (Alertmanager group_by): ["rule"] (default) '
        'sends one message per rule; ["team"] one per team across rules; ["..."] one per alert.',
    )
    group_wait_s = models.PositiveIntegerField(
        default=30, help_text="group_wait: seconds a new group waits to collect its siblings."
    )
    group_interval_s = models.PositiveIntegerField(
        default=300, help_text="group_interval: at most one message per group this often."
    )
    daily_digest = models.BooleanField(
        default=True, help_text="Email: the daily digest goes to this channel's recipients."
    )
    allow_private_network = models.BooleanField(
        default=False,
        help_text="Admins only: let this webhook reach private/loopback addresses (on-premises "
        "receivers). Cloud metadata addresses stay refused.",
    )

    class Meta:
        ordering = ["organisation", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    def clean(self) -> None:
        if self.kind == self.Kind.WEBHOOK:
            if not self.url:
                raise ValidationError({"url": "a webhook needs a URL"})
            try:
                ssrf.check_url(self.url, allow_private=self.allow_private_network)
            except ssrf.UnsafeURL as exc:
                raise ValidationError({"url": str(exc)}) from exc
            if not self.secret:
                self.secret = new_webhook_secret()

        group_by = self.group_by
        if not isinstance(group_by, list) or not all(
            isinstance(x, str) and x.strip() for x in group_by
        ):
            raise ValidationError({"group_by": 'a list of label names, e.g. ["rule", "team"]'})

    def address_list(self) -> list[str]:
        return [a.strip() for a in self.addresses.replace(",", "\n").splitlines() if a.strip()]


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class AlertRule(models.Model):
    """A condition evaluated every minute, its timing (`for`, repeat) and where it notifies.

    Budget kinds read ``budget``; the others watch ``team`` (empty: every team / host of the
    organisation). Evaluation claims the rule with a lease so two evaluators never race on it.
    """

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=RuleKind.choices)
    enabled = models.BooleanField(default=True)
    budget = models.ForeignKey(
        Budget, on_delete=models.CASCADE, null=True, blank=True, related_name="rules"
    )
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    utilization_floor = models.FloatField(
        default=0.30, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    utilization_window_h = models.PositiveIntegerField(default=24)
    idle_hours = models.PositiveIntegerField(default=4, validators=[MinValueValidator(1)])
    idle_share_min = models.FloatField(
        default=0.95, help_text="A GPU counts as idle when idle GPU-h / allocated GPU-h >= this."
    )
    silent_minutes = models.PositiveIntegerField(default=15, validators=[MinValueValidator(1)])
    for_s = models.PositiveIntegerField(
        default=300, help_text="`for`: seconds pending before firing."
    )
    keep_firing_s = models.PositiveIntegerField(default=0)
    repeat_interval_s = models.PositiveIntegerField(default=4 * 3600)
    channels = models.ManyToManyField(Channel, blank=True, related_name="rules")
    no_data = models.CharField(
        max_length=8,
        choices=NoDataHandling.choices,
        default=NoDataHandling.NODATA,
        help_text="When there is nothing to judge (no rollups in the window, a collector that "
        "never reported): notify 'no data', alert, or treat as OK. No data is not under budget.",
    )
    claimed_until = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=64, blank=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    state = models.CharField(max_length=8, choices=RuleState.choices, default=RuleState.NORMAL)
    state_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["organisation", "name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        budget_kind = self.kind in (RuleKind.BUDGET_THRESHOLD, RuleKind.BUDGET_FORECAST)
        if budget_kind != bool(self.budget_id):
            raise ValidationError({"budget": "budget rules need a budget; other rules none"})
        for related in (self.budget, self.team):
            if related is not None and related.organisation_id != self.organisation_id:
                raise ValidationError(f"{related} belongs to another organisation")


class Silence(models.Model):
    """Mutes notifications of alerts whose labels match all ``matchers`` during [starts_at, ends_at)."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    matchers = models.JSONField(help_text='Label equality, e.g. {"rule": "3", "host": "gpu-1"}.')
    starts_at = models.DateTimeField(default=timezone.now)
    ends_at = models.DateTimeField()
    comment = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-ends_at"]
        indexes = [models.Index(fields=["organisation", "ends_at"], name="silence_org_ends_idx")]

    def __str__(self) -> str:
        return f"silence {self.matchers} until {self.ends_at:%Y-%m-%d %H:%M}Z"

    def matches(self, labels: dict[str, str]) -> bool:
        return lifecycle.silence_matches(self.matchers, labels)


class Alert(models.Model):
    """One episode of one alert instance (fingerprint): pending, firing, then resolved.

    At most one open (pending or firing) row per fingerprint; a resolved row is history, and the
    condition coming back opens a new row. ``notified_at`` is the last firing notification.
    """

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    team = models.ForeignKey(
        Team, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    fingerprint = models.CharField(max_length=64)
    labels = models.JSONField(default=dict)
    state = models.CharField(max_length=8, choices=[(s.value, s.value) for s in lifecycle.State])
    value = models.FloatField(null=True, blank=True)
    summary = models.TextField(blank=True)
    annotations = models.JSONField(default=dict, blank=True)
    active_since = models.DateTimeField()
    last_active_at = models.DateTimeField()
    fired_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-active_since"]
        constraints = [
            models.UniqueConstraint(
                fields=["fingerprint"],
                condition=Q(state__in=["pending", "firing", "nodata"]),
                name="alert_one_open_per_fingerprint",
            )
        ]
        indexes = [models.Index(fields=["organisation", "state"], name="alert_org_state_idx")]

    def __str__(self) -> str:
        return f"{self.rule} {self.labels} {self.state}"


class Notification(models.Model):
    """The outbox: one message to one channel about a group of alerts that changed together.

    Written in the transaction that changed the alerts; sent by a task dispatched on commit, which
    claims the row with a conditional UPDATE so it is sent once; a sweeper re-dispatches rows a lost
    broker message left behind. ``id`` (a UUID) is the stable ``webhook-id`` across retries.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed (permanent error or retries exhausted)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="notifications")
    # None: a group across rules (group_by without "rule") or the daily digest.
    rule = models.ForeignKey(
        AlertRule, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    group = models.ForeignKey(
        "AlertGroup", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    event = models.CharField(max_length=8, choices=[(e.value, e.value) for e in lifecycle.Event])
    alerts = models.ManyToManyField(Alert, related_name="notifications")
    dedup_key = models.CharField(max_length=64, help_text="Same alerts + event => one row.")
    payload = models.JSONField()
    recipients = models.JSONField(default=list, blank=True)
    # An email goes out as one message per link set (admins get the admin link too): addresses a
    # message already reached are recorded so a retry after a later message failed skips them.
    delivered_to = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "dedup_key"], name="notification_dedup")
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="notification_due_idx")]

    def __str__(self) -> str:
        return f"{self.event} {self.rule_id} -> {self.channel_id} ({self.status})"

    def record_delivered(self, addresses: list[str]) -> None:
        """Note that one message of this notification reached ``addresses`` (saved at once)."""
        self.delivered_to = sorted({*self.delivered_to, *addresses})
        Notification.objects.filter(pk=self.pk).update(delivered_to=self.delivered_to)


class AlertGroup(models.Model):
    """Alertmanager's aggregation group: the firing (or no-data) alerts of one channel whose
    ``group_by`` labels are equal, notified together (group_wait, group_interval, repeat).

    ``notified`` is what the last message said ({fingerprint: state}); a flush compares the group
    with it to decide whether there is news. The row is deleted once every alert in it has
    resolved and been told, so the next alert starts a new group (and waits group_wait again).
    """

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="groups")
    key = models.CharField(max_length=64)
    labels = models.JSONField(default=dict)
    rule = models.ForeignKey(
        AlertRule, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    alerts = models.ManyToManyField(Alert, related_name="groups", blank=True)
    created_at = models.DateTimeField()
    last_notified_at = models.DateTimeField(null=True, blank=True)
    notified = models.JSONField(default=dict, blank=True)
    seq = models.PositiveIntegerField(default=0, help_text="Messages sent for this group.")

    class Meta:
        ordering = ["channel", "created_at"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "key"], name="alertgroup_channel_key")
        ]

    def __str__(self) -> str:
        return f"group {self.labels} -> {self.channel}"
