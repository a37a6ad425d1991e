"""Reads behind the carbon page and the monthly ESG report: rollups summed in the database, then
the KPI formulas of ``greenkpi.kpis.formulas`` (never re-derived here).

The one rollup read is ``carbon_frame``: rollups summed per UTC day x team x site x currency (a
few rows a day however many GPUs; whole days from DailyTeamRollup, carbon/days.py).
Row-wise products that the formulas need are summed beside the sums (facility kWh x renewable
share, idle kWh x PUE x intensity) and taken as they are by kpis.formulas, so each formula gives
exactly what it gives on the hourly rows (tests/dashboard/test_carbon_pages.py checks this). The report, the tiles, the chart and the per-team table all come from that frame.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from django.db.models import Q

from greenkpi.carbon.annual import annual_for, country_of, location_factors
from greenkpi.carbon.methodology import IntensitySource
from greenkpi.carbon.models import MarketFactor, ResidualMix
from greenkpi.dashboard.carbon import days as carbon_days
from greenkpi.inventory.access import Scope
from greenkpi.inventory.models import Site
from greenkpi.kpis import formulas, labels
from greenkpi.kpis.daily import SOURCE_COLUMNS
from greenkpi.lib.periods import Period

UNASSIGNED = "(no team)"
# Longer ranges are drawn per month: a year of days stacked by team is unreadable.
DAILY_UP_TO = timedelta(days=92)

FRAME_COLUMNS = carbon_days.FRAME_COLUMNS

# The per-team table, its CSV and the report's rows (units in the names).
TEAM_COLUMNS = [
    "team_id",
    "team",
    "energy_kwh",
    "facility_energy_kwh",
    "pue_used",
    "operational_location_kgco2e",
    "operational_market_kgco2e",
    "upstream_kgco2e",
    "embodied_kgco2e",
    "embodied_share",
    "total_kgco2e",
    "renewable_share",
    "cost",
    "currency",
    "uncosted_energy_kwh",
    "allocated_gpu_h",
    "avg_gpu_utilization",
    "idle_gpu_h",
    "idle_kgco2e",
    "estimated_share",
    "hourly_intensity_share",
    "annual_intensity_share",
    "default_intensity_share",
]
SERIES_COLUMNS = [
    "period_utc",
    "team_id",
    "team",
    "operational_location_kgco2e",
    "operational_market_kgco2e",
    "embodied_kgco2e",
]


# --- the one rollup read ---------------------------------------------------------------------


def carbon_frame(
    scope: Scope,
    start: datetime,
    end: datetime,
    team_ids: Collection[int] | None = None,
    *,
    by_day: bool = True,
) -> pd.DataFrame:
    """Rollups of the visible teams (or the chosen subset) in [start, end), summed per group.

    Rows without a team (hosts without a default team) count only for org-wide viewers who did not
    pick teams, as on the overview. Columns: FRAME_COLUMNS; ``day`` is a naive UTC datetime.
    The organisation's whole days come from the daily table (days.py). Without ``by_day`` the
    groups span [start, end) and ``day`` is empty: enough for every table and tile.
    """
    frame = carbon_days.org_frame(scope.organisation.pk, start, end, by_day=by_day)
    if frame.empty:
        return frame
    wanted = scope.team_ids if team_ids is None else scope.team_ids & frozenset(team_ids)
    keep = frame["team_id"].isin(list(wanted)).fillna(False).to_numpy(dtype=bool)
    if scope.org_wide and team_ids is None:
        keep |= frame["team_id"].isna().to_numpy(dtype=bool)
    return frame[keep].reset_index(drop=True)


def methodology_versions(frame: pd.DataFrame) -> list[str]:
    """Every methodology version the frame's figures were computed under."""
    if frame.empty:
        return []
    return sorted(set(frame["methodology_version"]) | set(frame["methodology_version_max"]))


# --- periods ---------------------------------------------------------------------------------
# previous_period, month_period and is_calendar_months live in greenkpi.lib.periods.


def month_hours(period: Period, now: datetime | None = None) -> float:
    """Hours of the month that have passed (a month in progress counts up to now)."""
    now = now or datetime.now(UTC)
    return max(0.0, (min(period.end, now) - period.start).total_seconds() / 3600)


# --- KPI tables ------------------------------------------------------------------------------


def source_shares(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Share of facility kWh computed with each intensity source (hourly / annual / default)."""
    columns = list(SOURCE_COLUMNS.values())
    sums = (
        frame.groupby(by, dropna=False)[columns].sum().reset_index()
        if by
        else pd.DataFrame({c: [float(frame[c].sum())] for c in columns})
    )
    total = sums[columns].sum(axis=1)
    for source, column in SOURCE_COLUMNS.items():
        sums[f"{source}_intensity_share"] = sums[column] / total.where(total > 0)
    return sums.drop(columns=columns)


def kpi_table(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Every figure of the table and the report per ``by`` group (empty ``by``: one total row),
    each from its formula in kpis.formulas. Cost is one row per group and currency: a group with
    two currencies (sites on two tariffs) gets its currencies joined and its cost left empty."""
    parts = [
        formulas.energy(frame, by),
        formulas.co2e(frame, by),
        # Scope 3 cat. 3 beside Scope 2, never in the total (docs/kpis.md, "Vocabulary")
        _summed(frame, by, "upstream_kgco2e"),
        formulas.renewable_share(frame, by)[[*by, "renewable_share"]],
        formulas.gpu_utilization(frame, by)[[*by, "avg_gpu_utilization"]],
        formulas.idle_waste(frame, by)[[*by, "idle_gpu_h", "idle_kgco2e", "allocated_gpu_h"]],
        source_shares(frame, by),
        _cost_per_group(frame, by),
    ]
    out = parts[0]
    for part in parts[1:]:
        out = out.merge(part, on=by, how="outer") if by else pd.concat([out, part], axis=1)
    out["pue_used"] = out["facility_energy_kwh"] / out["energy_kwh"].where(out["energy_kwh"] > 0)
    out["embodied_share"] = out["embodied_kgco2e"] / out["total_kgco2e"].where(
        out["total_kgco2e"] > 0
    )
    return out


def _summed(frame: pd.DataFrame, by: list[str], column: str) -> pd.DataFrame:
    if by:
        return frame.groupby(by, dropna=False)[column].sum().reset_index()
    return pd.DataFrame({column: [float(frame[column].sum())]})


def _cost_per_group(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    costs = formulas.cost(frame, by)
    uncosted = (
        costs.groupby(by, dropna=False)["uncosted_energy_kwh"].sum().reset_index()
        if by
        else pd.DataFrame({"uncosted_energy_kwh": [float(costs["uncosted_energy_kwh"].sum())]})
    )
    priced = costs[costs["currency"] != ""]
    if by:
        money = (
            priced.groupby(by, dropna=False)
            .agg(cost=("cost", "sum"), currency=("currency", lambda c: "+".join(sorted(set(c)))))
            .reset_index()
        )
        out = uncosted.merge(money, on=by, how="left")
    else:
        currencies = sorted(set(priced["currency"]))
        out = uncosted.assign(
            cost=[float(priced["cost"].sum()) if currencies else np.nan],
            currency=["+".join(currencies)],
        )
    out["currency"] = out["currency"].fillna("")
    out.loc[out["currency"].str.contains("+", regex=False), "cost"] = np.nan
    return out


def _team_names(scope: Scope, team_ids: pd.Series) -> list[str]:
    names = {t.pk: t.name for t in scope.teams}
    return [UNASSIGNED if pd.isna(t) else names.get(int(t), UNASSIGNED) for t in team_ids]


def team_table(scope: Scope, frame: pd.DataFrame) -> pd.DataFrame:
    """One row per team with data (TEAM_COLUMNS), largest location-based CO2e first."""
    if frame.empty:
        return pd.DataFrame(columns=TEAM_COLUMNS)
    table = kpi_table(frame, ["team_id"])
    table["team"] = _team_names(scope, table["team_id"])
    table = table.sort_values(["total_kgco2e", "team"], ascending=[False, True])
    return table[TEAM_COLUMNS].reset_index(drop=True)


def co2e_series(scope: Scope, frame: pd.DataFrame, period: Period) -> pd.DataFrame:
    """kgCO2e per UTC day (month for ranges over 92 days) and team: location, market, embodied."""
    if frame.empty:
        return pd.DataFrame(columns=SERIES_COLUMNS)
    grain = "D" if period.end - period.start <= DAILY_UP_TO else "M"
    work = frame.assign(period_utc=frame["day"].dt.to_period(grain).dt.start_time)
    out = formulas.co2e(work, ["period_utc", "team_id"])
    out["team"] = _team_names(scope, out["team_id"])
    return out[SERIES_COLUMNS].sort_values(["period_utc", "team"]).reset_index(drop=True)


def series_grain(period: Period) -> str:
    return "day" if period.end - period.start <= DAILY_UP_TO else "month"


# --- what produced the figures ---------------------------------------------------------------


@dataclass(frozen=True)
class FigureMethods:
    """Which methods produced a frame's figures, in words, for the tiles that show them."""

    location: str  # Scope 2 location-based factor: methods by share of facility kWh
    market: str  # Scope 2 market-based: instruments, residual mix or the labelled grid average
    energy: str  # IT energy measured vs estimated


def figure_methods(
    organisation_id: int, frame: pd.DataFrame, start: datetime, end: datetime
) -> FigureMethods | None:
    """The methods behind the frame's figures without reading rollups again: the intensity source
    shares per site (the frame's columns) with each site's annual method, whether the sites have
    contractual instruments or a residual mix loaded, and the estimated share of IT energy.
    Three small queries (sites, instruments, residual mixes)."""
    if frame.empty:
        return None
    zones = dict(
        Site.objects.filter(organisation_id=organisation_id).values_list("id", "grid_zone")
    )
    columns = list(SOURCE_COLUMNS.values())
    per_site = frame.groupby(frame["site_id"].fillna(-1))[columns].sum()
    kwh: dict[str, float] = {}
    hourly = "hourly provider's figure (direct where it states one, else lifecycle, said per row)"
    for site_id, row in per_site.iterrows():
        zone = zones.get(int(site_id)) if int(site_id) != -1 else None
        method = labels.INTENSITY_METHODS[location_factors(annual_for(zone)[0]).method]
        annual = float(
            row[SOURCE_COLUMNS[IntensitySource.ANNUAL]]
            + row[SOURCE_COLUMNS[IntensitySource.DEFAULT]]
        )
        kwh[method] = kwh.get(method, 0.0) + annual
        kwh[hourly] = kwh.get(hourly, 0.0) + float(row[SOURCE_COLUMNS[IntensitySource.HOURLY]])
    whole = sum(kwh.values())
    location = "; ".join(
        f"{name} {value / whole:.0%}" for name, value in kwh.items() if whole > 0 and value > 0
    )
    used = [int(s) for s in per_site.index if int(s) != -1]
    wanted = {z.strip().upper() for s, z in zones.items() if s in used and z}
    wanted |= {country_of(z) for z in wanted}
    residual = ResidualMix.objects.filter(zone__in=wanted).exists()
    instruments = (
        MarketFactor.objects.filter(site_id__in=used, valid_from__lt=end)
        .filter(Q(valid_to__isnull=True) | Q(valid_to__gt=start))
        .exists()
    )
    if residual:
        market = (
            "contractual instruments, the residual mix for the rest"
            if instruments
            else (labels.MARKET_SOURCES["residual"])
        )
    elif instruments:
        # Whether they cover all of it varies by hour (rows say; the tile sums many): say both.
        market = "contractual instruments; the grid average for any rest (no residual mix loaded)"
    else:
        market = labels.MARKET_SOURCES["location"]
    energy_kwh = float(frame["energy_kwh"].sum())
    estimated = float(frame["estimated_energy_kwh"].sum()) / energy_kwh if energy_kwh > 0 else 0.0
    return FigureMethods(
        location=location,
        market=market,
        energy=f"measured {1 - estimated:.0%}, estimated {estimated:.0%}",
    )
