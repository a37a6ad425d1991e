"""Findings (one per detector x owner x subject), the decisions people take on them, and the
savings ledger (realised savings of accepted findings, never mixed with the estimates)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from greenkpi.inventory.models import Organisation, Team


class State(models.TextChoices):
    OPEN = "open", "Open"
    ACCEPTED = "accepted", "Accepted"
    DISMISSED = "dismissed", "Dismissed"
    SNOOZED = "snoozed", "Snoozed"


class Finding(models.Model):
    """A recommendation. Its identity (organisation, detector, owner, subject) is stable, so a
    recompute updates the estimate in place and the decision state survives it.

    Estimated figures are per year (docs/advice.md). ``present`` is false once the detector no
    longer finds it (kept for its decision history and ledger; not shown as a card).
    """

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    detector = models.CharField(max_length=32)
    owner_kind = models.CharField(max_length=16)
    owner = models.CharField(max_length=300)
    subject = models.CharField(max_length=200)
    team = models.ForeignKey(
        Team, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    model_key = models.CharField(max_length=200, blank=True)
    title = models.CharField(max_length=500)
    action = models.CharField(max_length=500)
    tactic = models.CharField(max_length=100)
    annual_kwh = models.FloatField(help_text="Estimated IT kWh saved a year.")
    annual_location_kgco2e = models.FloatField(help_text="Scope 2 location-based, a year.")
    annual_market_kgco2e = models.FloatField(null=True, help_text="Scope 2 market-based, a year.")
    annual_cost = models.FloatField(null=True)
    currency = models.CharField(max_length=3, blank=True)
    evidence = models.JSONField(default=dict)
    evidence_url = models.CharField(max_length=500, blank=True)
    present = models.BooleanField(default=True)
    first_seen = models.DateTimeField(default=timezone.now)
    computed_at = models.DateTimeField(default=timezone.now)

    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    reason = models.CharField(max_length=500, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    snoozed_until = models.DateTimeField(null=True, blank=True)
    # The estimate when it was dismissed: it comes back only when the evidence changes materially.
    dismissed_kwh = models.FloatField(null=True, blank=True)
    dismissed_kgco2e = models.FloatField(null=True, blank=True)
    dismissed_evidence = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "detector", "owner", "subject"],
                name="finding_identity_unique",
            )
        ]
        indexes = [
            models.Index(fields=["organisation", "present", "state"], name="finding_org_state_idx")
        ]

    def __str__(self) -> str:
        return f"{self.detector} {self.owner} {self.subject} ({self.state})"


class Decision(models.Model):
    """Who accepted, dismissed, snoozed or re-opened a finding, when and why (append-only)."""

    finding = models.ForeignKey(Finding, on_delete=models.CASCADE, related_name="decisions")
    state = models.CharField(max_length=10, choices=State.choices)
    reason = models.CharField(max_length=500, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    at = models.DateTimeField(default=timezone.now)
    snoozed_until = models.DateTimeField(null=True, blank=True)
    annual_kwh = models.FloatField(help_text="The estimate at the time of the decision.")
    annual_location_kgco2e = models.FloatField()

    class Meta:
        ordering = ["finding", "at", "pk"]

    def __str__(self) -> str:
        return f"{self.finding_id} {self.state} at {self.at:%Y-%m-%d %H:%M}"


class RealisedSaving(models.Model):
    """The savings ledger: what an accepted finding's change measurably saved (docs/advice.md §4).

    Booked once the change is detected and replaced by each recompute while measurements move.
    Measured figures only: never added to the estimates.
    """

    finding = models.OneToOneField(Finding, on_delete=models.CASCADE, related_name="realised")
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    team = models.ForeignKey(
        Team, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    change = models.CharField(max_length=300, help_text="What changed, as detected.")
    changed_at = models.DateTimeField()
    method = models.CharField(max_length=500)
    work_unit = models.CharField(max_length=100)
    baseline_start = models.DateTimeField()
    baseline_end = models.DateTimeField()
    after_end = models.DateTimeField()
    kwh_per_unit_before = models.FloatField()
    units_after = models.FloatField()
    counterfactual_kwh = models.FloatField()
    actual_kwh = models.FloatField()
    saved_kwh = models.FloatField()
    saved_location_kgco2e = models.FloatField()
    saved_market_kgco2e = models.FloatField(null=True)
    uncertainty_kwh = models.FloatField(help_text="± one standard error of the saving.")
    booked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["organisation", "changed_at"], name="saving_org_idx")]

    def __str__(self) -> str:
        return f"{self.finding}: {self.saved_kwh:.1f} kWh saved"
