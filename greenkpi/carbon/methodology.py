"""The carbon methodology as constants and scalar formulas: no Django, no I/O (docs/kpis.md).

Follows the Software Carbon Intensity specification (GSF SCI 1.1, ISO/IEC 21031:2024):
``SCI = (O + M) per R`` with ``O = E x I`` and ``M = TE x (TiR / EL) x (RR / ToR)``.
Every stored figure records METHODOLOGY_VERSION, so a change to any constant or formula here must
bump it: figures computed under different versions are then told apart, and a backfill recomputes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

# gk-2026.2: Scope 2 location-based on direct (combustion) factors, Scope 3 cat. 3 beside it,
# market-based with instruments and residual mixes, whole-host embodied (docs/kpis.md, "Reporting").
# gk-2026.3: T&D loss rate checked against the WDI data (6.87 %, was 8.3 % from memory); a
# contractual instrument never covers more than its contracted volume (docs/kpis.md, "Methodology
# changes").
METHODOLOGY_VERSION: Final = "gk-2026.3"

J_PER_KWH: Final = 3.6e6
G_PER_KG: Final = 1000.0
# Julian year: the SCI spec gives lifespans in years without a calendar; 365.25 d avoids leap drift.
HOURS_PER_YEAR: Final = 365.25 * 24.0
SECONDS_PER_YEAR: Final = HOURS_PER_YEAR * 3600.0

# Embodied (manufacturing) kgCO2e per device when the inventory has no figure for it.
# Sources (reference/measurement-and-carbon.md section 3.4):
# - gpu: +150 kgCO2e per GPU, Cloud Carbon Footprint coefficients (Teads / Dell R740 LCA), also the
#   BLOOM paper's GPU figure (Luccioni et al., JMLR 24(253), 2023).
# - cpu, dram, host: 0 since gk-2026.2. The host's own figure (chassis, CPUs, DRAM, storage:
#   SERVER_CLASSES below) carries them whether or not the collector measures them, so a measured
#   CPU package or DIMM set adds nothing of its own (it would count twice). A device's explicit
#   figure still counts: use it for an add-on the server class does not include.
EMBODIED_DEFAULT_KGCO2E: Final[dict[str, float]] = {
    "gpu": 150.0,
    "cpu": 0.0,
    "dram": 0.0,
    "host": 0.0,
}

# Whole-host embodied kgCO2e by server class, split into the parts the GHG Protocol's capital
# goods (Scope 3 cat. 2) and SCI's M both cover. Built from Cloud Carbon Footprint's coefficients
# (ccf-coefficients constants.py, from the Teads / Dell PowerEdge R740 LCA): a base rack server of
# 1,000 kgCO2e with one socket and 16 GB of DRAM and no disk (counted here as "chassis"), +100 per
# further CPU, 533 kgCO2e per 384 GB of DRAM above 16 GB (~1.388 kg/GB), +100 per SSD, +50 per HDD.
# GPUs are not included: each GPU device carries its own 150 kgCO2e.
DRAM_KG_PER_GB: Final = 533.0 / 384.0
SSD_KG: Final = 100.0
HDD_KG: Final = 50.0
CPU_EXTRA_KG: Final = 100.0
CHASSIS_KG: Final = 1000.0


def _server(sockets: int, dram_gb: float, ssd: int, hdd: int = 0) -> dict[str, float]:
    return {
        "chassis": CHASSIS_KG,
        "cpu": CPU_EXTRA_KG * (sockets - 1),
        "dram": DRAM_KG_PER_GB * max(dram_gb - 16.0, 0.0),
        "storage": SSD_KG * ssd + HDD_KG * hdd,
    }


# class -> (description, parts). "gpu-8": an HGX/DGX-class 8-GPU server (2 sockets, 1 TB DRAM,
# 4 NVMe SSDs); "gpu-4": 2 sockets, 512 GB, 2 SSDs; "cpu-2s": CCF's typical 2-socket server with
# 384 GB and 2 SSDs; "cpu-1s": 1 socket, 64 GB, 1 SSD. Stated configurations, overridable per host.
SERVER_CLASSES: Final[dict[str, tuple[str, dict[str, float]]]] = {
    "gpu-8": ("8-GPU server: 2 CPUs, 1 TB DRAM, 4 SSDs", _server(2, 1024, 4)),
    "gpu-4": ("4-GPU server: 2 CPUs, 512 GB DRAM, 2 SSDs", _server(2, 512, 2)),
    "cpu-2s": ("2-socket server: 384 GB DRAM, 2 SSDs", _server(2, 384, 2)),
    "cpu-1s": ("1-socket server: 64 GB DRAM, 1 SSD", _server(1, 64, 1)),
}
# A host with no class: an 8-GPU server when the collector reports a GPU on it, else a 2-socket one.
SERVER_CLASS_GPU_DEFAULT: Final = "gpu-8"
SERVER_CLASS_CPU_DEFAULT: Final = "cpu-2s"
HOST_PARTS: Final = ("chassis", "cpu", "dram", "storage")

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
    """Where a market-based factor came from (GHG Protocol Scope 2 Guidance, ch. 6 and 7)."""

    CONTRACT = "contract"  # contractual instruments cover all of the hour's energy
    CONTRACT_RESIDUAL = "ctr+res"  # instruments cover part, the residual mix the rest
    CONTRACT_GRID = "ctr+grid"  # instruments cover part, the grid average the rest (no residual)
    RESIDUAL = "residual"  # no instrument: the zone's residual mix
    LOCATION = "location"  # no instrument and no residual mix loaded: the grid average

    CHOICES: Final = (
        (CONTRACT, "Contractual instruments"),
        (CONTRACT_RESIDUAL, "Instruments + residual mix"),
        (CONTRACT_GRID, "Instruments + grid average (no residual mix loaded)"),
        (RESIDUAL, "Residual mix"),
        (LOCATION, "Grid average used — no residual mix loaded"),
    )


class IntensityMethod:
    """How the Scope 2 location-based factor of a zone and hour was obtained (stored per row)."""

    MIX = "mix"  # direct, derived from the zone's generation mix x per-fuel direct factors
    PUBLISHED = "pub"  # direct, published by the zone's authority (eGRID, China MEE)
    HOURLY_DIRECT = "hr-dir"  # direct, as the hourly provider states it
    HOURLY_LIFECYCLE = "hr-lca"  # lifecycle, the hourly provider gave no direct figure
    LIFECYCLE = "lca"  # lifecycle: no generation mix for the zone (Scope 2 overstated, stated)

    CHOICES: Final = (
        (MIX, "Direct, derived from the generation mix"),
        (PUBLISHED, "Direct, published for the zone"),
        (HOURLY_DIRECT, "Direct, hourly provider"),
        (HOURLY_LIFECYCLE, "Lifecycle, hourly provider (no direct figure)"),
        (LIFECYCLE, "Lifecycle (no generation mix for the zone)"),
    )
    DIRECT: Final = frozenset({MIX, PUBLISHED, HOURLY_DIRECT})


# Per-fuel emission factors of electricity generation, gCO2e/kWh generated: (direct, lifecycle).
# IPCC AR5 WG III Annex III (Schlömer et al. 2014), Table A.III.2, medians: coal (PC) 760 / 820,
# gas (combined cycle) 370 / 490, nuclear 0 / 12, hydropower 0 / 24, wind onshore 0 / 11,
# geothermal 0 / 38, biomass dedicated 0 (biogenic CO2 counted apart) / 230. Solar 0 / 45 and oil
# 406 / 650 are not IPCC medians: they are the defaults Electricity Maps uses (config/defaults.yaml
# of electricitymaps-contrib: solar between IPCC's rooftop 41 and utility 48; oil direct a blend of
# EIA 2020 and BEIS 2021, lifecycle UK POST 2014). Keys are grid_mix.csv's fuel columns.
FUEL_FACTORS_G_PER_KWH: Final[dict[str, tuple[float, float]]] = {
    "coal": (760.0, 820.0),
    "gas": (370.0, 490.0),
    "oil": (406.0, 650.0),
    "nuclear": (0.0, 12.0),
    "hydro": (0.0, 24.0),
    "wind": (0.0, 11.0),
    "solar": (0.0, 45.0),
    "bioenergy": (0.0, 230.0),
    "other_renewable": (0.0, 38.0),
}
FOSSIL_FUELS: Final = ("coal", "gas", "oil")
NUCLEAR_FUELS: Final = ("nuclear",)
RENEWABLE_FUELS: Final = ("hydro", "wind", "solar", "bioenergy", "other_renewable")

# Transmission and distribution losses as a share of the electricity consumed, when the zone has
# no figure of its own: the World value for 2022 of the World Bank's WDI series EG.ELC.LOSS.ZS
# ("Electric power transmission and distribution losses (% of output)", data from IEA
# statistics), 6.87112576586161 % in the WDI CSV last updated 2026-02-24, rounded to three
# significant digits. 2022, not 2023: the 2023 aggregates rest on fewer countries (the World falls
# to 6.13 % while the upper-middle-income group jumps from 6.21 % to 12.9 %), a break in coverage,
# not in the grids. The series was 7.85 % in 2014; gk-2026.2's 8.3 % was written from memory.
# GHG Protocol Scope 3 Technical Guidance, cat. 3 activity (c): T&D losses = electricity consumed
# x loss rate x the lifecycle factor of the electricity. Per-zone rates are not shipped (the WDI
# metadata refers IEA-sourced values to IEA's terms): docs/carbon-data.md.
TD_LOSS_DEFAULT: Final = 0.0687


@dataclass(frozen=True, slots=True)
class MixFigures:
    """Intensities and shares of a generation mix (g/kWh generated, shares 0..1)."""

    direct_g_per_kwh: float
    lifecycle_g_per_kwh: float
    fossil_share: float
    nuclear_share: float
    renewable_share: float


def mix_figures(twh: Mapping[str, float]) -> MixFigures | None:
    """Direct and lifecycle intensity of a generation mix: sum over fuels of (share x factor).
    None for an empty mix."""
    total = sum(twh.get(fuel, 0.0) for fuel in FUEL_FACTORS_G_PER_KWH)
    if total <= 0:
        return None
    direct = sum(twh.get(f, 0.0) * d for f, (d, _) in FUEL_FACTORS_G_PER_KWH.items()) / total
    lifecycle = sum(twh.get(f, 0.0) * lc for f, (_, lc) in FUEL_FACTORS_G_PER_KWH.items()) / total
    return MixFigures(
        direct_g_per_kwh=direct,
        lifecycle_g_per_kwh=lifecycle,
        fossil_share=sum(twh.get(f, 0.0) for f in FOSSIL_FUELS) / total,
        nuclear_share=sum(twh.get(f, 0.0) for f in NUCLEAR_FUELS) / total,
        renewable_share=sum(twh.get(f, 0.0) for f in RENEWABLE_FUELS) / total,
    )


def upstream_g_per_kwh(*, direct: float, lifecycle: float, td_loss: float) -> float:
    """Scope 3 cat. 3 factor per kWh consumed: the upstream part of the lifecycle factor
    (fuel extraction, processing, transport; plant construction) plus the T&D losses' share of
    the lifecycle factor. When the Scope 2 factor is itself lifecycle (``direct == lifecycle``)
    only the T&D losses remain."""
    return max(lifecycle - direct, 0.0) + td_loss * lifecycle


def instrument_kwh_per_hour(
    *, volume_mwh: float, valid_from: datetime, valid_to: datetime | None, hour: datetime
) -> float:
    """The most a contractual instrument may cover in one hour: its contracted volume spread
    evenly over its period (``valid_to`` exclusive), or over the calendar year (UTC) of ``hour``
    for an open-ended instrument, whose volume is then per year. A volume never moves from one
    hour to another, so an instrument covers at most its volume whatever the consumption, and the
    cap of an hour depends on nothing but that hour (docs/kpis.md, "Reporting")."""
    if valid_to is not None:
        hours = (valid_to - valid_from).total_seconds() / 3600.0
    else:
        year = datetime(hour.year, 1, 1, tzinfo=UTC)
        hours = (year.replace(year=hour.year + 1) - year).total_seconds() / 3600.0
    return volume_mwh * 1000.0 / hours if hours > 0 else 0.0


def host_embodied_kgco2e(
    *, host_kgco2e: float, seconds_used: float, devices: int, lifetime_years: float
) -> float:
    """The host's share on one of its rows: the host's footprint amortised over its lifetime for
    the mean time its reporting devices covered (``seconds_used`` of this row / ``devices``
    reporting in the hour), so the host's rows of a fully reported hour sum to kg x 1 h / life."""
    if lifetime_years <= 0:
        raise ValueError("lifetime_years must be positive")
    return host_kgco2e * (seconds_used / (devices * lifetime_years * SECONDS_PER_YEAR))


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
