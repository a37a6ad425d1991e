"""Filing figures: the GHG Protocol inventory by site boundary and the ESRS E1 export (issue 14
items 3 and 8; docs/kpis.md, "Reporting").

Everything is summed through kpis.read (the dashboard's one read) and then grouped by the site's
boundary: owned and colocation sites' electricity is Scope 2 (with its Scope 3 cat. 3 beside it
and its hosts' embodied carbon as cat. 2); a cloud site's whole footprint (operational, cat. 3 and
embodied) is what the organisation buys as a service, Scope 3 cat. 1. Hosts without a site count
as owned. ``by_boundary`` is the one grouping, used by the monthly report and by the export, so a
figure of the export is the same sum as the report's.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd

from greenkpi.carbon import methodology as m
from greenkpi.carbon.annual import SOURCES, annual_for, location_factors
from greenkpi.carbon.models import GridIntensityHourly, ResidualMix
from greenkpi.inventory.models import Boundary, Organisation, Site
from greenkpi.kpis import labels
from greenkpi.kpis.read import methods as read_methods
from greenkpi.kpis.read import sums as read
from greenkpi.lib.periods import day_start, period_bounds

ESRS_VERSION = (
    "ESRS E1 Climate change, ESRS Set 1 (Commission Delegated Regulation (EU) 2023/2772); "
    "GHG Protocol Corporate Standard, Scope 2 Guidance (2015), Scope 3 Standard (2011)"
)
SUMMED = (
    "energy_kwh",
    "estimated_energy_kwh",
    "facility_energy_kwh",
    "operational_location_kgco2e",
    "operational_market_kgco2e",
    "upstream_kgco2e",
    "embodied_kgco2e",
    "renewable_kwh",
    "renewable_known_kwh",
)
SCOPE2_BOUNDARIES = (Boundary.OWNED, Boundary.COLOCATION)


def site_boundaries(organisation_id: int) -> dict[int, str]:
    return dict(Site.objects.filter(organisation_id=organisation_id).values_list("id", "boundary"))


def by_boundary(frame: pd.DataFrame, boundaries: dict[int, str]) -> pd.DataFrame:
    """A frame with ``site_id`` and SUMMED columns summed per boundary (owned, colocation,
    cloud; hosts without a site count as owned), one row per boundary that has rows."""
    if frame.empty:
        return pd.DataFrame(columns=["boundary", *SUMMED])
    site = frame["site_id"]
    boundary = [
        Boundary.OWNED if pd.isna(s) else boundaries.get(int(s), Boundary.OWNED) for s in site
    ]
    out = frame.assign(boundary=boundary).groupby("boundary")[list(SUMMED)].sum().reset_index()
    return out


@dataclass(frozen=True)
class Figure:
    """One reported value: what it is, its value and unit, the share of it that was estimated
    rather than measured, and how it was obtained."""

    disclosure: str
    datapoint: str
    value: float | None
    unit: str
    estimated_share: float | None
    method: str


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole > 0 else None


def esrs_e1(
    organisation: Organisation, year: int, *, now: datetime | None = None
) -> dict[str, Any]:
    """The ESRS E1-5 and E1-6 figures of one organisation and calendar year (in the organisation's
    zone: 1 January to 1 January local, lib.periods), as a JSON-able dict with the figures, the
    methods and shares behind them, and the data sources and licences."""
    tz = organisation.tz
    start, end = period_bounds("year", day_start(date(year, 7, 1), tz), tz)
    org = organisation.pk
    boundaries = site_boundaries(org)
    per_site = read.sums(
        organisation_id=org,
        start=start,
        end=end,
        columns=[*SUMMED, "methodology_version_min", "methodology_version_max"],
        by=["site_id"],
    )
    groups = by_boundary(per_site, boundaries).set_index("boundary")

    def total(column: str, which: tuple[str, ...]) -> float:
        return float(sum(groups.at[b, column] for b in which if b in groups.index))

    own = SCOPE2_BOUNDARIES
    cloud = (Boundary.CLOUD,)
    facility = total("facility_energy_kwh", own)
    energy, estimated = total("energy_kwh", own), total("estimated_energy_kwh", own)
    renewable = total("renewable_kwh", own)
    nuclear = _nuclear_kwh(per_site, boundaries)
    fossil = max(facility - renewable - nuclear, 0.0)
    energy_estimated = _share(estimated, energy)
    cloud_estimated = _share(total("estimated_energy_kwh", cloud), total("energy_kwh", cloud))
    methods = methods_for(org, start, end, boundaries)
    figures = [
        Figure(
            "E1-5",
            "Total energy consumption",
            facility / 1000,
            "MWh",
            energy_estimated,
            "IT energy measured at the devices x site PUE (owned and colocation sites)",
        ),
        Figure(
            "E1-5",
            "from fossil sources",
            fossil / 1000,
            "MWh",
            energy_estimated,
            "total - renewable - nuclear",
        ),
        Figure(
            "E1-5",
            "from nuclear sources",
            nuclear / 1000,
            "MWh",
            energy_estimated,
            "facility energy x the zone's annual nuclear share of generation",
        ),
        Figure(
            "E1-5",
            "from renewable sources",
            renewable / 1000,
            "MWh",
            energy_estimated,
            "facility energy x the grid's renewable share of each hour (hourly series or annual)",
        ),
        Figure(
            "E1-5",
            "Renewable share",
            _share(renewable, facility),
            "share",
            energy_estimated,
            "renewable / total energy consumption",
        ),
        Figure(
            "E1-6",
            f"Gross {labels.SCOPE2_LOCATION.name}",
            total("operational_location_kgco2e", own) / 1000,
            "tCO2e",
            energy_estimated,
            methods["location"],
        ),
        Figure(
            "E1-6",
            f"Gross {labels.SCOPE2_MARKET.name}",
            total("operational_market_kgco2e", own) / 1000,
            "tCO2e",
            energy_estimated,
            methods["market"],
        ),
        Figure(
            "E1-6",
            "Scope 3 cat. 1 purchased services (cloud sites)",
            (
                total("operational_location_kgco2e", cloud)
                + total("upstream_kgco2e", cloud)
                + total("embodied_kgco2e", cloud)
            )
            / 1000,
            "tCO2e",
            cloud_estimated,
            "cloud sites' location-based operational + cat. 3 + embodied",
        ),
        Figure(
            "E1-6",
            "Scope 3 cat. 2 capital goods (embodied, amortised)",
            total("embodied_kgco2e", own) / 1000,
            "tCO2e",
            1.0,
            "devices' and whole hosts' LCA footprints amortised over their lifetime by time "
            "used (SCI's M), not the GHG Protocol's whole-footprint-at-purchase convention",
        ),
        Figure(
            "E1-6",
            "Scope 3 cat. 3 fuel- and energy-related activities",
            total("upstream_kgco2e", own) / 1000,
            "tCO2e",
            energy_estimated,
            f"facility energy x (lifecycle - direct factor + {m.TD_LOSS_DEFAULT:.2%} T&D loss "
            "x lifecycle factor; WDI EG.ELC.LOSS.ZS, World 2022)",
        ),
    ]
    versions = sorted(
        {v for c in ("methodology_version_min", "methodology_version_max") for v in per_site[c]}
        if not per_site.empty
        else set()
    )
    return {
        "standard": "ESRS E1",
        "esrs_version": ESRS_VERSION,
        "organisation": organisation.slug,
        "organisation_name": organisation.name,
        "year": year,
        "time_zone": organisation.time_zone,
        "period_utc": [start.isoformat(), end.isoformat()],
        "generated_at": (now or datetime.now(UTC)).isoformat(),
        "methodology_version": m.METHODOLOGY_VERSION,
        "methodology_versions_used": versions,
        "figures": [f.__dict__ for f in figures],
        "boundaries": [
            {
                "boundary": b,
                "label": labels.BOUNDARIES.get(b, b),
                "facility_energy_mwh": float(groups.at[b, "facility_energy_kwh"]) / 1000,
                "scope2_location_tco2e": float(groups.at[b, "operational_location_kgco2e"]) / 1000,
                "scope2_market_tco2e": float(groups.at[b, "operational_market_kgco2e"]) / 1000,
                "scope3_cat3_tco2e": float(groups.at[b, "upstream_kgco2e"]) / 1000,
                "embodied_tco2e": float(groups.at[b, "embodied_kgco2e"]) / 1000,
            }
            for b in groups.index
        ],
        "methods": methods["shares"],
        "sources": _sources(org, start, end, per_site),
    }


def _nuclear_kwh(per_site: pd.DataFrame, boundaries: dict[int, str]) -> float:
    """Facility kWh of owned and colocation sites x their zone's annual nuclear share."""
    if per_site.empty:
        return 0.0
    zones = dict(Site.objects.filter(id__in=list(boundaries)).values_list("id", "grid_zone"))
    kwh = 0.0
    for site, facility in zip(per_site["site_id"], per_site["facility_energy_kwh"], strict=True):
        site_id = None if pd.isna(site) else int(site)
        if site_id is not None and boundaries.get(site_id) == Boundary.CLOUD:
            continue
        share = location_factors(annual_for(zones.get(site_id) if site_id else None)[0])
        kwh += float(facility) * (share.nuclear_share or 0.0)
    return kwh


def methods_for(
    organisation_id: int, start: datetime, end: datetime, boundaries: dict[int, str]
) -> dict[str, Any]:
    """Shares of Scope 2 facility kWh per intensity method and per market-based source."""
    location: dict[str, float] = {}
    market: dict[str, float] = {}
    for site, method, source, kwh in read_methods.facility_kwh_by_method(
        organisation_id=organisation_id, start=start, end=end
    ):
        if site is not None and boundaries.get(site) == Boundary.CLOUD:
            continue
        location[method] = location.get(method, 0.0) + kwh
        market[source] = market.get(source, 0.0) + kwh
    whole = sum(location.values())

    def shares(sums: dict[str, float], words: dict[str, str]) -> dict[str, float]:
        return {words.get(k, k): v / whole for k, v in sorted(sums.items()) if whole > 0}

    location_shares = shares(location, labels.INTENSITY_METHODS)
    market_shares = shares(market, labels.MARKET_SOURCES)
    return {
        "location": "; ".join(f"{k}: {v:.1%}" for k, v in location_shares.items()),
        "market": "; ".join(f"{k}: {v:.1%}" for k, v in market_shares.items()),
        "shares": {"scope2_location": location_shares, "scope2_market": market_shares},
    }


def _sources(
    organisation_id: int, start: datetime, end: datetime, per_site: pd.DataFrame
) -> list[dict[str, str]]:
    """The data sources behind the year's factors, with their licences (attribution required)."""
    sites = Site.objects.filter(organisation_id=organisation_id)
    zones = {z.strip().upper() for z in sites.values_list("grid_zone", flat=True)}
    if per_site.empty:
        return []
    keys: set[str] = set()
    if per_site["site_id"].isna().any():
        zones.add("")
    for zone in zones:
        annual, _ = annual_for(zone or None)
        keys.add(annual.source)
        factors = location_factors(annual)
        if factors.method == m.IntensityMethod.MIX:
            keys.add("owid-energy-sum" if annual.zone == m.WORLD_ZONE else "owid-energy")
    out = [{"source": SOURCES[k], "kind": "grid factors"} for k in sorted(keys) if k in SOURCES]
    out += [
        {
            "source": "IPCC AR5 WG III Annex III Table A.III.2 (per-fuel direct and lifecycle "
            "factors); T&D losses 6.87 %: World Bank WDI EG.ELC.LOSS.ZS, World 2022, from IEA "
            "statistics (one figure quoted with attribution)",
            "kind": "factors",
        },
        {
            "source": "Cloud Carbon Footprint coefficients (Teads / Dell R740 LCA), Apache-2.0",
            "kind": "embodied",
        },
    ]
    residual = ResidualMix.objects.filter(zone__in=[z for z in zones if z])
    for source, licence in residual.values_list("source", "licence").distinct():
        out.append({"source": f"{source} ({licence or 'licence not stated'})", "kind": "residual"})
    hourly = GridIntensityHourly.objects.filter(
        zone__in=[z for z in zones if z], hour__gte=start, hour__lt=end
    )
    for source in hourly.values_list("source", flat=True).distinct():
        out.append({"source": f"{source} (your licence with the provider)", "kind": "hourly"})
    return out


CSV_HEADER = ("disclosure", "datapoint", "value", "unit", "estimated_share", "method")


def esrs_e1_csv(report: dict[str, Any]) -> str:
    """The export as CSV: a header block (standard, version, organisation, year, methodology),
    one row per figure, then the boundaries and the sources."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for key in (
        "standard",
        "esrs_version",
        "organisation",
        "year",
        "time_zone",
        "methodology_version",
    ):
        writer.writerow([f"# {key}", report[key]])
    writer.writerow(["# methodology_versions_used", " ".join(report["methodology_versions_used"])])
    writer.writerow(CSV_HEADER)
    for figure in report["figures"]:
        writer.writerow([figure[c] if figure[c] is not None else "" for c in CSV_HEADER])
    for row in report["boundaries"]:
        writer.writerow(
            ["boundary", row["label"], row["facility_energy_mwh"], "MWh", "", "facility energy"]
        )
    for source in report["sources"]:
        writer.writerow(["source", source["kind"], "", "", "", source["source"]])
    return out.getvalue()
