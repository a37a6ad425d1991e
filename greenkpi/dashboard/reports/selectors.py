"""Reads behind the monthly ESG report (/reports/): per-team and total figures of one month of the
organisation's zone
from ``carbon.selectors`` (the same frame and formulas as the carbon page), data completeness per
host, and where the grid figures came from with their licences."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cached_property

import numpy as np
import pandas as pd
from django.core.cache import cache
from django.db.models import Count, Max, Sum

from greenkpi.carbon.annual import SOURCES, annual_for, location_factors
from greenkpi.carbon.methodology import METHODOLOGY_VERSION, IntensitySource
from greenkpi.carbon.models import GridIntensityHourly
from greenkpi.carbon.selectors import market_method_texts
from greenkpi.dashboard.carbon import selectors as sc
from greenkpi.dashboard.overview.selectors import SILENT_AFTER
from greenkpi.inventory.access import Scope
from greenkpi.inventory.models import Site
from greenkpi.kpis import labels, reporting
from greenkpi.kpis.daily import SOURCE_COLUMNS
from greenkpi.kpis.market import InstrumentUse, instruments_applied
from greenkpi.kpis.models import RollupWindow
from greenkpi.kpis.read import sums as read
from greenkpi.kpis.read.hosts import hosts_visible
from greenkpi.lib.periods import Period

# The per-team table's columns (one list: carbon.selectors.TEAM_COLUMNS) plus the month, the row
# kind and the versions used.
REPORT_COLUMNS = [
    "month",
    "time_zone",
    "row",
    *(c for c in sc.TEAM_COLUMNS if c != "team_id"),
    "methodology_versions",
]
HOURLY_LICENCE = (
    "Electricity Maps data: not open data; used under your organisation's licence with "
    "Electricity Maps (docs/carbon-data.md)"
)


@dataclass(frozen=True)
class HostCompleteness:
    hostname: str
    hours_with_data: int
    hours_in_month: float
    last_seen: datetime | None
    silent: bool  # no batch for more than SILENT_AFTER (now)

    @property
    def share(self) -> float | None:
        return self.hours_with_data / self.hours_in_month if self.hours_in_month else None

    @property
    def share_pct(self) -> float | None:
        share = self.share
        return None if share is None else share * 100


@dataclass(frozen=True)
class Provenance:
    site: str
    zone: str
    sources_used: list[str]  # intensity sources of this month's rows at the site
    annual: str  # the annual figure's zone, year, basis and attribution (CC BY where it applies)
    hourly: list[str]  # providers of the imported hourly hours used, with their licence


@dataclass(frozen=True)
class MonthlyReport:
    month: Period
    generated_at: datetime
    table: pd.DataFrame  # REPORT_COLUMNS: one row per team, then the total row
    scoped: bool
    completeness: list[HostCompleteness]
    provenance: list[Provenance]
    methodology_versions: list[str]
    current_methodology: str
    hours_in_month: float
    # The GHG Protocol inventory by site boundary (kpis.reporting.by_boundary: the ESRS export's
    # grouping) and, for org-wide viewers, which methods produced the Scope 2 figures.
    inventory: list[dict[str, object]] = field(default_factory=list)
    methods: list[dict[str, str]] = field(default_factory=list)
    # Whose contractual instruments the page lists (org-wide viewers only; None: nobody's).
    instruments_org: int | None = None
    site_ids: list[int] = field(default_factory=list)

    @cached_property
    def instruments(self) -> list[InstrumentUse]:
        """The month's contractual instruments, contracted volume beside applied. Read when a
        page shows them (their allocation is hourly: the CSV, which has no such table, keeps to
        the daily rows of a refreshed month)."""
        if self.instruments_org is None:
            return []
        return instruments_applied(
            organisation_id=self.instruments_org,
            start=self.month.start,
            end=self.month.end,
            site_ids=self.site_ids,
        )

    @property
    def team_rows(self) -> list[dict[str, object]]:
        return self.table[self.table["row"] == "team"].to_dict("records")

    @property
    def total(self) -> dict[str, object] | None:
        rows = self.table[self.table["row"] == "total"].to_dict("records")
        return rows[0] if rows else None

    @property
    def last_day(self) -> date:
        """The month's last local day (``month.end`` is exclusive), for ``to=`` links."""
        return self.month.last_day

    @property
    def in_progress(self) -> bool:
        return self.generated_at < self.month.end

    @property
    def silent_hosts(self) -> list[HostCompleteness]:
        """Hosts with no batch for SILENT_AFTER, or no data in the month. In the month in
        progress a host that reported within SILENT_AFTER is healthy even before its first hour
        is rolled up (a collector started minutes ago was counted silent: issue 12)."""
        return [
            h
            for h in self.completeness
            if h.silent or (not h.hours_with_data and not (self.in_progress and h.last_seen))
        ]


def monthly_report(scope: Scope, month: Period, *, now: datetime | None = None) -> MonthlyReport:
    """The report of ``month`` for what the scope sees: its teams' rows and their sum."""
    now = now or datetime.now(UTC)
    frame = sc.carbon_frame(scope, month.start, month.end, by_day=False)
    label = f"{month.first_day:%Y-%m}"
    versions = sc.methodology_versions(frame)
    if frame.empty:
        table = pd.DataFrame(columns=REPORT_COLUMNS)
    else:
        teams = sc.team_table(scope, frame).assign(row="team")
        total = sc.kpi_table(frame, []).assign(
            row="total", team="Organisation total" if scope.org_wide else "Total of your teams"
        )
        table = pd.concat([teams, total], ignore_index=True)
        table["month"] = label
        table["time_zone"] = month.zone_name
        table["methodology_versions"] = " ".join(versions)
        table = table[REPORT_COLUMNS]
    hours = sc.month_hours(month, now)
    sites = {s.pk: s for s in Site.objects.filter(organisation=scope.organisation)}
    boundaries = {pk: site.boundary for pk, site in sites.items()}
    inventory = [
        {**row, "label": labels.BOUNDARIES.get(row["boundary"], row["boundary"])}
        for row in reporting.by_boundary(frame, boundaries).to_dict("records")
    ]
    methods = site_methods(frame, month, sites)
    return MonthlyReport(
        month=month,
        generated_at=now,
        table=table,
        scoped=not scope.org_wide,
        completeness=completeness(scope, month, hours, now),
        provenance=provenance(scope, month, frame),
        methodology_versions=versions,
        current_methodology=METHODOLOGY_VERSION,
        hours_in_month=hours,
        inventory=inventory,
        methods=methods,
        instruments_org=scope.organisation.pk if scope.org_wide else None,
        site_ids=list(sites),
    )


CACHE_TIMEOUT_S = 14 * 86400  # keys change with the data; old ones just expire


def windows_state(organisation_id: int, start: datetime, end: datetime) -> str:
    """A key that changes whenever a rollup window in [start, end) is added or recomputed."""
    state = RollupWindow.objects.filter(
        organisation_id=organisation_id, hour__gte=start, hour__lt=end
    ).aggregate(n=Count("pk"), at=Max("computed_at"), v=Sum("computed_version"))
    at = state["at"].timestamp() if state["at"] else 0
    return f"{organisation_id}:{start:%Y%m%d%H}:{end:%Y%m%d%H}:{state['n']}:{at}:{state['v']}"


def completeness(
    scope: Scope, month: Period, hours_in_month: float, now: datetime
) -> list[HostCompleteness]:
    """Per visible host: distinct hours with rollup rows in the month / hours of the month. Three
    queries (two when cached); hosts with no hour at all are listed too (silent all month)."""
    hosts = list(
        hosts_visible(scope).order_by("hostname").values_list("pk", "hostname", "last_seen")
    )
    # Distinct hours per host scan the month's hourly rows: cached until a window changes.
    key = "gk:carbon-hours:v1:" + windows_state(scope.organisation.pk, month.start, month.end)
    per_host: dict[int, int] | None = cache.get(key)
    if per_host is None:
        hours = read.sums(
            organisation_id=scope.organisation.pk,
            start=month.start,
            end=month.end,
            columns=["hours_with_rows"],
            by=["host_id"],
        )
        per_host = {
            int(h): int(n)
            for h, n in zip(
                hours["host_id"].tolist(), hours["hours_with_rows"].tolist(), strict=True
            )
            if not pd.isna(h)
        }
        cache.set(key, per_host, timeout=CACHE_TIMEOUT_S)
    counted = per_host
    return [
        HostCompleteness(
            hostname=name,
            hours_with_data=int(counted.get(pk, 0)),
            hours_in_month=hours_in_month,
            last_seen=seen,
            silent=seen is None or now - seen > SILENT_AFTER,
        )
        for pk, name, seen in hosts
    ]


def provenance(scope: Scope, month: Period, frame: pd.DataFrame) -> list[Provenance]:
    """For each site the month's rows used: the zone, which intensity sources were applied, the
    annual figure's attribution and the providers of the hourly hours. Two queries."""
    site_ids = sorted({int(s) for s in frame["site_id"].dropna()}) if not frame.empty else []
    sites = list(Site.objects.filter(organisation=scope.organisation, pk__in=site_ids))
    used: dict[int, list[str]] = {}
    if not frame.empty:
        columns = list(SOURCE_COLUMNS.values())
        per_site = frame.groupby("site_id")[columns].sum()  # rows without a site drop out
        for site_id, kwh in per_site.iterrows():
            used[int(site_id)] = [s for s, c in SOURCE_COLUMNS.items() if kwh[c] > 0]
    hourly: dict[str, list[str]] = {}
    for zone, source in (
        GridIntensityHourly.objects.filter(
            zone__in={s.grid_zone for s in sites}, hour__gte=month.start, hour__lt=month.end
        )
        .values_list("zone", "source")
        .annotate(n=Count("pk"))
        .values_list("zone", "source")
        .order_by("zone", "source")
    ):
        text = source or "hourly series, source not recorded"
        licence = (
            HOURLY_LICENCE
            if "electricity" in text.lower()
            else "simulated: no provider, no licence"
            if "simulated" in text.lower()
            else "licence as agreed with the provider"
        )
        hourly.setdefault(zone, []).append(f"{text} — {licence}")
    out = []
    for site in sorted(sites, key=lambda s: s.name):
        figure, _ = annual_for(site.grid_zone)
        annual = (
            f"{figure.zone} {figure.intensity_g_per_kwh:g} gCO2e/kWh ({figure.year}, "
            f"{figure.basis}); {SOURCES.get(figure.source, figure.source)}"
        )
        sources = sorted(set(used.get(site.pk, [])))
        out.append(
            Provenance(
                site=site.name,
                zone=site.grid_zone,
                sources_used=sources,
                annual=annual,
                hourly=hourly.get(site.grid_zone, []) if IntensitySource.HOURLY in sources else [],
            )
        )
    if not frame.empty and frame["site_id"].isna().any():
        world, _ = annual_for(None)
        out.append(
            Provenance(
                site="(hosts without a site)",
                zone="",
                sources_used=[IntensitySource.DEFAULT],
                annual=f"WORLD {world.intensity_g_per_kwh:g} gCO2e/kWh ({world.year}); "
                f"{SOURCES.get(world.source, world.source)}",
                hourly=[],
            )
        )
    return out


def site_methods(
    frame: pd.DataFrame, month: Period, sites: dict[int, Site]
) -> list[dict[str, str]]:
    """Per site with figures: how its Scope 2 location-based factor was obtained (from the daily
    sums' intensity sources and the zone's method: no hourly rows read) and how its market-based
    figure was built (instruments, residual mix or the labelled grid average)."""
    if frame.empty:
        return []
    sources = frame.groupby(frame["site_id"].fillna(-1))[list(SOURCE_COLUMNS.values())].sum()
    used_sites = {int(i): sites[int(i)] for i in sources.index if int(i) in sites}
    market = market_method_texts(
        sites={pk: site.grid_zone for pk, site in used_sites.items()},
        start=month.start,
        end=month.end,
    )
    out = []
    for site_id, row in sources.iterrows():
        site = used_sites.get(int(site_id))
        zone = site.grid_zone if site else None
        method = location_factors(annual_for(zone)[0]).method
        used = []
        if row[SOURCE_COLUMNS[IntensitySource.HOURLY]] > 0:
            used.append("hourly provider's figure (direct where it states one)")
        if (
            row[SOURCE_COLUMNS[IntensitySource.ANNUAL]]
            + row[SOURCE_COLUMNS[IntensitySource.DEFAULT]]
        ):
            used.append(labels.INTENSITY_METHODS[method])
        out.append(
            {
                "site": site.name if site else "(hosts without a site)",
                "location": "; ".join(used),
                "market": market[site.pk] if site else labels.MARKET_SOURCES["location"],
            }
        )
    return out


def report_csv_frame(report: MonthlyReport) -> pd.DataFrame:
    """The report's table as written to CSV (shares as fractions 0..1, energy kWh, CO2e kg)."""
    return report.table.replace({np.nan: None}) if len(report.table) else report.table
