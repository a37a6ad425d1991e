"""Reads behind the overview: its tiles and energy per team and day. Each takes a Scope.

Energy, carbon and cost come from the rollups (through common/rollups.py and kpis.read). Frames
carry units in column names and tz-naive UTC times (what Plotly serialises fastest;
reference/performance-limits.md section 7).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
from django.db.models import Count, Q

from greenkpi.dashboard.common import rollups
from greenkpi.dashboard.fleet.selectors import SILENT_AFTER
from greenkpi.inventory.access import Scope
from greenkpi.kpis.read.hosts import hosts_visible
from greenkpi.lib.periods import Period

UNASSIGNED = "(no team)"

TEAM_DAILY_COLUMNS = ["day", "team_id", "team", "energy_kwh"]


def team_energy_daily(
    scope: Scope, period: Period, team_ids: Collection[int] | None = None
) -> pd.DataFrame:
    """Energy per UTC day and team in kWh, for the visible teams (or the chosen subset).

    Read from the rollups (kpis.read), whose attribution is: energy a share names a team for goes
    to that team, the rest of every window to the host's default team; a window counts in the
    hour (so the day) it starts.
    """
    out = rollups.sums(
        scope.organisation.pk,
        period,
        ["energy_kwh"],
        by=["team_id"],
        teams=rollups.team_where(scope, team_ids),
        grain="day",
    ).rename(columns={"bucket_utc": "day"})
    if out.empty:
        return pd.DataFrame(columns=TEAM_DAILY_COLUMNS)
    out["team_id"] = out["team_id"].astype("Int64")
    out = out.sort_values(["day", "team_id"], na_position="last")
    names = {t.pk: t.name for t in scope.teams}
    out["team"] = out["team_id"].map(names).astype(object).fillna(UNASSIGNED)
    return out[TEAM_DAILY_COLUMNS].reset_index(drop=True)


@dataclass(frozen=True)
class Money:
    currency: str
    amount: float


@dataclass(frozen=True)
class Overview:
    energy_kwh: float
    avg_power_kw: float
    hosts: int
    hosts_silent: int
    devices: int
    co2e_kg: float = 0.0  # location-based operational + embodied (the SCI numerator)
    costs: tuple[Money, ...] = ()  # per currency, largest first
    uncosted_energy_kwh: float = 0.0  # facility energy no tariff priced
    # IT energy of scheduler jobs no identity mapping gave a team (docs/kpis.md §8): it stayed
    # with the hosts' default teams; the page links to the mappings.
    unmapped_energy_kwh: float = 0.0

    @property
    def unmapped_share(self) -> float | None:
        return self.unmapped_energy_kwh / self.energy_kwh if self.energy_kwh else None


def overview(scope: Scope, period: Period, team_ids: Collection[int] | None = None) -> Overview:
    """The tiles above the overview chart: sums of the same rollup rows and team filter as
    team_energy_daily, so the tiles and the chart agree (tested).

    Two queries: visible hosts with their devices, and energy, carbon and cost of the rollup rows
    per currency (costs in two currencies are never added).
    """
    now = datetime.now(UTC)
    counts = hosts_visible(scope).aggregate(
        hosts=Count("pk", distinct=True),
        silent=Count(
            "pk",
            distinct=True,
            filter=Q(last_seen__isnull=True) | Q(last_seen__lt=now - SILENT_AFTER),
        ),
        devices=Count("devices", distinct=True),
    )
    money = rollups.sums(
        scope.organisation.pk,
        period,
        [
            "energy_kwh",
            "operational_location_kgco2e",
            "embodied_kgco2e",
            "facility_energy_kwh",
            "cost",
            "unmapped_energy_kwh",
        ],
        by=["currency"],
        teams=rollups.team_where(scope, team_ids),
    )
    energy_kwh = co2e = uncosted = unmapped = 0.0
    costs: list[Money] = []
    for row in money.itertuples(index=False):
        unmapped += row.unmapped_energy_kwh
        energy_kwh += row.energy_kwh
        co2e += row.operational_location_kgco2e + row.embodied_kgco2e
        if pd.isna(row.cost):  # no tariff priced it (cost is empty exactly without a currency)
            uncosted += row.facility_energy_kwh
        elif row.currency:
            costs.append(Money(row.currency, float(row.cost)))
    return Overview(
        energy_kwh=energy_kwh,
        avg_power_kw=energy_kwh / period.hours if period.hours else 0.0,
        hosts=counts["hosts"],
        hosts_silent=counts["silent"],
        devices=counts["devices"],
        co2e_kg=co2e,
        costs=tuple(sorted(costs, key=lambda m: -m.amount)),
        uncosted_energy_kwh=uncosted,
        unmapped_energy_kwh=unmapped,
    )
