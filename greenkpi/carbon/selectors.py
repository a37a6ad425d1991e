"""Reads of carbon factors for one hour: grid intensity (hourly else annual), contracts, tariffs.

The bulk forms take every zone or site a rollup window needs and cost one query each.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q

from greenkpi.carbon.annual import SOURCES, annual_for
from greenkpi.carbon.methodology import IntensitySource
from greenkpi.carbon.models import ElectricityTariff, GridIntensityHourly, MarketFactor


@dataclass(frozen=True, slots=True)
class IntensityFigure:
    """The location-based intensity used for one zone and hour, and where it came from."""

    zone: str
    hour: datetime
    intensity_g_per_kwh: float
    renewable_share: float | None
    source: str  # IntensitySource.*
    figure_zone: str  # the zone whose figure was used ("FR", "US" for "US-CAL-CISO", "WORLD")
    detail: str  # attribution or provider


@dataclass(frozen=True, slots=True)
class Tariff:
    price_per_kwh: float
    currency: str


def intensity_for(*, zone: str | None, hour: datetime) -> IntensityFigure:
    """Intensity of ``zone`` during the hour starting at ``hour``: measured hourly if imported,
    else the shipped annual average of the zone or its country, else the world average."""
    return intensities_for(zones=[zone], hour=hour)[_key(zone)]


def intensities_for(*, zones: Iterable[str | None], hour: datetime) -> dict[str, IntensityFigure]:
    """{zone (upper-cased, "" for none): figure} for one hour, in one query."""
    keys = {_key(z) for z in zones}
    hourly = {
        row.zone: row
        for row in GridIntensityHourly.objects.filter(zone__in=[k for k in keys if k], hour=hour)
    }
    figures: dict[str, IntensityFigure] = {}
    for key in keys:
        annual, is_default = annual_for(key)
        measured = hourly.get(key)
        if measured is not None:
            share = measured.renewable_share
            figures[key] = IntensityFigure(
                zone=key,
                hour=hour,
                intensity_g_per_kwh=measured.intensity_lifecycle_g_per_kwh,
                renewable_share=share if share is not None else annual.renewable_share,
                source=IntensitySource.HOURLY,
                figure_zone=key,
                detail=measured.source,
            )
        else:
            figures[key] = IntensityFigure(
                zone=key,
                hour=hour,
                intensity_g_per_kwh=annual.intensity_g_per_kwh,
                renewable_share=annual.renewable_share,
                source=IntensitySource.DEFAULT if is_default else IntensitySource.ANNUAL,
                figure_zone=annual.zone,
                detail=f"{annual.year} {annual.basis}; {SOURCES.get(annual.source, annual.source)}",
            )
    return figures


def market_factors_for(*, site_ids: Iterable[int], hour: datetime) -> dict[int, float]:
    """{site id: contractual gCO2e/kWh} for the sites with a contract covering ``hour``."""
    rows = (
        MarketFactor.objects.filter(site_id__in=list(site_ids), valid_from__lte=hour)
        .filter(Q(valid_to__isnull=True) | Q(valid_to__gt=hour))
        .order_by("site_id", "valid_from")
        .values_list("site_id", "intensity_g_per_kwh")
    )
    # Ordered by start, so where periods overlap the latest-starting contract wins.
    return dict(rows)


def tariffs_for(*, site_ids: Iterable[int], hour: datetime) -> dict[int, Tariff]:
    """{site id: tariff} for the sites with a price covering ``hour``."""
    rows = (
        ElectricityTariff.objects.filter(site_id__in=list(site_ids), valid_from__lte=hour)
        .filter(Q(valid_to__isnull=True) | Q(valid_to__gt=hour))
        .order_by("site_id", "valid_from")
        .values_list("site_id", "price_per_kwh", "currency")
    )
    return {site_id: Tariff(price, currency) for site_id, price, currency in rows}


def _key(zone: str | None) -> str:
    return (zone or "").strip().upper()
