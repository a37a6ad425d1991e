"""Reads of carbon factors for one hour: grid intensity (hourly else annual), contracts, tariffs.

The bulk forms take every zone or site a rollup window needs and cost one query each; the
``*_over`` forms do the same for a batch of hours (the one-hour forms are their one-hour case).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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
    return intensities_over(zones=zones, hours=[hour])[hour]


def intensities_over(
    *, zones: Iterable[str | None], hours: Sequence[datetime]
) -> dict[datetime, dict[str, IntensityFigure]]:
    """{hour: {zone: figure}} for several hours, in one query (a rollup batch of hours)."""
    keys = {_key(z) for z in zones}
    hourly = {
        (row.zone, row.hour): row
        for row in GridIntensityHourly.objects.filter(
            zone__in=[k for k in keys if k], hour__in=list(hours)
        )
    }
    annuals = {key: annual_for(key) for key in keys}
    out: dict[datetime, dict[str, IntensityFigure]] = {}
    for hour in hours:
        figures = out[hour] = {}
        for key in keys:
            annual, is_default = annuals[key]
            measured = hourly.get((key, hour))
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
    return out


def market_factors_for(*, site_ids: Iterable[int], hour: datetime) -> dict[int, float]:
    """{site id: contractual gCO2e/kWh} for the sites with a contract covering ``hour``."""
    return market_factors_over(site_ids=site_ids, hours=[hour])[hour]


def market_factors_over(
    *, site_ids: Iterable[int], hours: Sequence[datetime]
) -> dict[datetime, dict[int, float]]:
    """{hour: {site id: contractual gCO2e/kWh}} for several hours, in one query."""
    if not hours:
        return {}
    rows = _valid_during(MarketFactor.objects, site_ids, hours).values_list(
        "site_id", "valid_from", "valid_to", "intensity_g_per_kwh"
    )
    return _per_hour(list(rows), hours)


def tariffs_for(*, site_ids: Iterable[int], hour: datetime) -> dict[int, Tariff]:
    """{site id: tariff} for the sites with a price covering ``hour``."""
    return tariffs_over(site_ids=site_ids, hours=[hour])[hour]


def tariffs_over(
    *, site_ids: Iterable[int], hours: Sequence[datetime]
) -> dict[datetime, dict[int, Tariff]]:
    """{hour: {site id: tariff}} for several hours, in one query."""
    if not hours:
        return {}
    rows = _valid_during(ElectricityTariff.objects, site_ids, hours).values_list(
        "site_id", "valid_from", "valid_to", "price_per_kwh", "currency"
    )
    return _per_hour([(*r[:3], Tariff(r[3], r[4])) for r in rows], hours)


def _valid_during(manager: Any, site_ids: Iterable[int], hours: Sequence[datetime]) -> Any:
    """Rows of a validity-period table overlapping [first hour, last hour], by site and start."""
    return (
        manager.filter(site_id__in=list(site_ids), valid_from__lte=max(hours))
        .filter(Q(valid_to__isnull=True) | Q(valid_to__gt=min(hours)))
        .order_by("site_id", "valid_from", "pk")
    )


def _per_hour(rows: list[tuple[Any, ...]], hours: Sequence[datetime]) -> dict[datetime, dict]:
    """{hour: {site: value}} from (site, valid_from, valid_to, value) rows ordered by start:
    where periods overlap, the latest-starting one valid at the hour wins."""
    out: dict[datetime, dict] = {}
    for hour in hours:
        out[hour] = {
            site: value
            for site, start, end, value in rows
            if start <= hour and (end is None or end > hour)
        }
    return out


def _key(zone: str | None) -> str:
    return (zone or "").strip().upper()
