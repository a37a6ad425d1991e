"""The carbon methodology as constants and scalar formulas: no Django, no I/O (docs/kpis.md).

Follows the Software Carbon Intensity specification (GSF SCI 1.1, ISO/IEC 21031:2024):
``SCI = (O + M) per R`` with ``O = E x I`` and ``M = TE x (TiR / EL) x (RR / ToR)``.
Every stored figure records METHODOLOGY_VERSION, so a change to any constant or formula here must
bump it: figures computed under different versions are then told apart, and a backfill recomputes.
"""

from __future__ import annotations

from typing import Final

METHODOLOGY_VERSION: Final = "gk-2026.1"

J_PER_KWH: Final = 3.6e6
G_PER_KG: Final = 1000.0
# Julian year: the SCI spec gives lifespans in years without a calendar; 365.25 d avoids leap drift.
HOURS_PER_YEAR: Final = 365.25 * 24.0
SECONDS_PER_YEAR: Final = HOURS_PER_YEAR * 3600.0

# Embodied (manufacturing) kgCO2e per device when the inventory has no figure for it.
# Sources (reference/measurement-and-carbon.md section 3.4):
# - gpu: +150 kgCO2e per GPU, Cloud Carbon Footprint coefficients (Teads / Dell R740 LCA), also the
#   BLOOM paper's GPU figure (Luccioni et al., JMLR 24(253), 2023).
# - cpu: +100 kgCO2e per additional CPU, same CCF coefficients.
# - dram: 533 kgCO2e, CCF's figure for 384 GB of DRAM above the base 16 GB (~1.39 kg/GB), i.e. a
#   typical GPU server's memory; override per device when its size differs.
# - host: 1,000 kgCO2e, CCF's base rack server (one socket, 16 GB DRAM, no disk).
EMBODIED_DEFAULT_KGCO2E: Final[dict[str, float]] = {
    "gpu": 150.0,
    "cpu": 100.0,
    "dram": 533.0,
    "host": 1000.0,
}
# Lifespan when the inventory has none: 4 years, the Dell R740 LCA behind CCF's coefficients.
LIFETIME_DEFAULT_YEARS: Final = 4.0

# When a site has no grid zone or its zone is unknown, intensity falls back to the world average
# (recorded as source "default") rather than zero: an unknown grid is not a clean grid.
WORLD_ZONE: Final = "WORLD"
# PUE of a host without a site: 1.0 (IT energy only), as CodeCarbon does; never a silent 1.58.
PUE_DEFAULT: Final = 1.0


class IntensitySource:
    """Where a location-based intensity came from, best first (stored on every rollup row)."""

    HOURLY = "hourly"  # an imported hourly series for the zone and hour
    ANNUAL = "annual"  # the shipped annual average of the zone (or of its country)
    DEFAULT = "default"  # the world annual average: the site's zone is missing or unknown

    CHOICES: Final = (
        (HOURLY, "Hourly, imported series"),
        (ANNUAL, "Annual average (shipped data)"),
        (DEFAULT, "World average (zone unknown)"),
    )


class MarketSource:
    """Where a market-based factor came from."""

    CONTRACT = "contract"  # a contractual factor declared for the site (PPA, REC/GO, supplier mix)
    LOCATION = "location"  # no contract: the location-based intensity stands in (GHG Protocol)

    CHOICES: Final = (
        (CONTRACT, "Contractual factor of the site"),
        (LOCATION, "No contract: location-based"),
    )


def energy_kwh(energy_j: float) -> float:
    """Joules to kilowatt-hours."""
    return energy_j / J_PER_KWH


def operational_kgco2e(*, energy_kwh: float, pue: float, intensity_g_per_kwh: float) -> float:
    """SCI ``O = E x I`` with ``E`` the facility energy (IT energy x PUE), in kgCO2e."""
    return energy_kwh * pue * intensity_g_per_kwh / G_PER_KG


def embodied_kgco2e(
    *, device_kgco2e: float, seconds_used: float, lifetime_years: float, share: float = 1.0
) -> float:
    """SCI ``M = TE x (TiR / EL) x (RR / ToR)``: the part of a device's manufacturing footprint
    that ``seconds_used`` of reservation (times ``share`` of the device) amortises."""
    if lifetime_years <= 0:
        raise ValueError("lifetime_years must be positive")
    return device_kgco2e * (seconds_used / (lifetime_years * SECONDS_PER_YEAR)) * share


def sci_per_unit(*, operational_kgco2e: float, embodied_kgco2e: float, units: float) -> float:
    """SCI = (O + M) per R, in kgCO2e per functional unit."""
    if units <= 0:
        raise ValueError("the functional unit count R must be positive")
    return (operational_kgco2e + embodied_kgco2e) / units


def embodied_default_kgco2e(kind: str) -> float:
    """The documented default for a device kind; unknown kinds count nothing (stated, not guessed)."""
    return EMBODIED_DEFAULT_KGCO2E.get(kind, 0.0)
