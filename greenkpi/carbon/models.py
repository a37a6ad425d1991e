"""Carbon factors that vary by place and time: hourly grid series, site contracts, site tariffs."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from greenkpi.inventory.models import Site


class GridIntensityHourly(models.Model):
    """One hour of a grid zone's average carbon intensity, imported (Electricity Maps CSV export).

    ``hour`` is the start of the hour in UTC. Lifecycle intensity is what the rollups use, matching
    the basis of the shipped Ember annual averages; direct is kept for comparison.
    """

    zone = models.CharField(max_length=32)
    hour = models.DateTimeField()
    intensity_lifecycle_g_per_kwh = models.FloatField(validators=[MinValueValidator(0.0)])
    intensity_direct_g_per_kwh = models.FloatField(null=True, blank=True)
    renewable_share = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    carbon_free_share = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    estimated = models.BooleanField(
        default=False, help_text="The provider estimated this hour (no measured generation mix)."
    )
    source = models.CharField(max_length=200, blank=True, help_text="Provider and data source.")
    imported_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["zone", "hour"]
        constraints = [
            models.UniqueConstraint(fields=["zone", "hour"], name="grid_hourly_zone_hour_unique")
        ]

    def __str__(self) -> str:
        return (
            f"{self.zone} {self.hour:%Y-%m-%dT%H}Z {self.intensity_lifecycle_g_per_kwh:.0f} g/kWh"
        )


class MarketFactor(models.Model):
    """A site's contractual emission factor (PPA, guarantees of origin, supplier mix) for a period.

    Used only for market-based figures, which are reported apart from location-based ones and
    never reduce SCI (GHG Protocol Scope 2 dual reporting; SCI excludes market-based measures).
    """

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="market_factors")
    valid_from = models.DateTimeField()
    valid_to = models.DateTimeField(null=True, blank=True, help_text="Exclusive; empty = open.")
    intensity_g_per_kwh = models.FloatField(validators=[MinValueValidator(0.0)])
    instrument = models.CharField(max_length=200, blank=True, help_text="e.g. PPA with ...")

    class Meta:
        ordering = ["site", "-valid_from"]

    def __str__(self) -> str:
        return f"{self.site} from {self.valid_from:%Y-%m-%d}: {self.intensity_g_per_kwh} g/kWh"


class ElectricityTariff(models.Model):
    """What a site pays per kWh of facility energy, in its currency, for a period."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="tariffs")
    valid_from = models.DateTimeField()
    valid_to = models.DateTimeField(null=True, blank=True, help_text="Exclusive; empty = open.")
    price_per_kwh = models.FloatField(validators=[MinValueValidator(0.0)])
    currency = models.CharField(max_length=3, help_text="ISO 4217, e.g. EUR")

    class Meta:
        ordering = ["site", "-valid_from"]

    def __str__(self) -> str:
        return (
            f"{self.site} from {self.valid_from:%Y-%m-%d}: {self.price_per_kwh} {self.currency}/kWh"
        )
