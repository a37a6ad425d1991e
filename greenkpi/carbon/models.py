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


class InstrumentKind(models.TextChoices):
    """Contractual instruments of the GHG Protocol Scope 2 Guidance (ch. 7)."""

    PPA = "ppa", "Power purchase agreement (with its certificates)"
    CERTIFICATE = "certificate", "Unbundled certificates (guarantees of origin, RECs)"
    SUPPLIER = "supplier", "Supplier-specific emission factor"


class MarketFactor(models.Model):
    """A contractual instrument of a site for a period: which share of the site's energy it
    covers and at what emission factor (a PPA or certificates: usually 0 g/kWh).

    Market-based figures apply the instruments valid in each hour, latest-starting first, up to
    the whole of the hour's energy; the rest takes the zone's residual mix, else the grid average
    (labelled). ``volume_mwh`` caps what the instrument covers: in any hour at most the volume
    spread evenly over the period (per calendar year when open-ended), so it never covers more
    than its volume (kpis/market.py; the report shows contracted beside applied). Market-based
    figures never reduce SCI.
    """

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="market_factors")
    kind = models.CharField(
        max_length=12,
        choices=InstrumentKind.choices,
        default=InstrumentKind.SUPPLIER,
        db_default=InstrumentKind.SUPPLIER,
    )
    valid_from = models.DateTimeField()
    valid_to = models.DateTimeField(null=True, blank=True, help_text="Exclusive; empty = open.")
    intensity_g_per_kwh = models.FloatField(validators=[MinValueValidator(0.0)])
    share = models.FloatField(
        default=1.0,
        db_default=1.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share of the site's energy the instrument covers in its period (0.6 = 60 %).",
    )
    volume_mwh = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0)],
        help_text=(
            "Contracted volume over the period (per year when open-ended), MWh: the instrument "
            "never covers more (at most its even part in any hour)."
        ),
    )
    instrument = models.CharField(max_length=200, blank=True, help_text="e.g. PPA with ...")
    tracking = models.CharField(
        max_length=200,
        blank=True,
        help_text="Certificate registry and ids, cancelled for this consumer (quality criteria).",
    )

    class Meta:
        ordering = ["site", "-valid_from"]
        verbose_name = "contractual instrument"

    def __str__(self) -> str:
        return (
            f"{self.site} from {self.valid_from:%Y-%m-%d}: {self.share:.0%} at "
            f"{self.intensity_g_per_kwh} g/kWh"
        )


class ResidualMix(models.Model):
    """A zone's residual mix for a year (e.g. AIB European Residual Mixes): the emission factor of
    the electricity left once tracked instruments are taken out, for market-based figures.

    Imported (``manage.py import_residual_mix``), not shipped: check the publisher's terms."""

    zone = models.CharField(max_length=32)
    year = models.PositiveSmallIntegerField()
    intensity_g_per_kwh = models.FloatField(validators=[MinValueValidator(0.0)])
    source = models.CharField(max_length=200, help_text="Publisher and edition.")
    licence = models.CharField(max_length=200, blank=True)
    imported_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["zone", "year"]
        constraints = [
            models.UniqueConstraint(fields=["zone", "year"], name="residual_mix_zone_year_unique")
        ]

    def __str__(self) -> str:
        return f"{self.zone} {self.year}: {self.intensity_g_per_kwh} g/kWh (residual)"


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
