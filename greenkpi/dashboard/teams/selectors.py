"""Reads behind the team pages: each visible team's totals, one team's energy per model and run."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from greenkpi.dashboard.common import rollups
from greenkpi.dashboard.overview.selectors import Money
from greenkpi.inventory.access import Scope
from greenkpi.inventory.models import Team
from greenkpi.lib.periods import Period

TEAM_RUN_COLUMNS = ["model", "run", "energy_kwh", "first_window_utc", "last_window_utc"]


def team_energy_by_run(team: Team, period: Period) -> pd.DataFrame:
    """Energy (kWh) of the team per model and run, largest first. One GROUP BY on the rollups.

    All of the team's energy: what its processes claimed by model and run, and the unclaimed rest
    of its default hosts as "(unnamed model)". first/last_window_utc are the start of the first
    and of the last rollup bucket with energy: an hour, or a day for periods of whole days.
    """
    grain = "day" if period.days is not None else "hour"
    rows = rollups.sums(
        team.organisation_id,
        period,
        ["energy_kwh"],
        by=["model_key", "run_key"],
        teams=[team.pk],
        grain=grain,
    )
    if rows.empty:
        return pd.DataFrame(columns=TEAM_RUN_COLUMNS)
    frame = (
        rows.groupby(["model_key", "run_key"], as_index=False)
        .agg(
            energy_kwh=("energy_kwh", "sum"),
            first_window_utc=("bucket_utc", "min"),
            last_window_utc=("bucket_utc", "max"),
        )
        .rename(columns={"model_key": "model", "run_key": "run"})
        .sort_values(["energy_kwh", "model", "run"], ascending=[False, True, True], kind="stable")
        .reset_index(drop=True)
    )
    frame["model"] = frame["model"].replace("", "(unnamed model)")
    frame["run"] = frame["run"].replace("", "(no run)")
    return frame[TEAM_RUN_COLUMNS]


@dataclass(frozen=True)
class TeamTotal:
    team: Team
    energy_kwh: float
    co2e_kg: float = 0.0  # CO2e, total (SCI numerator): Scope 2 location-based + embodied
    costs: tuple[Money, ...] = ()  # one per currency, largest first; none without a tariff


def team_totals(scope: Scope, period: Period) -> list[TeamTotal]:
    """Every visible team with its energy, CO2e total and cost over the period (zero when
    absent): one read per team and currency of the rows team_energy_daily reads, so the
    totals equal its days summed and the overview's tiles (same columns, same rows)."""
    rows = rollups.sums(
        scope.organisation.pk,
        period,
        ["energy_kwh", "operational_location_kgco2e", "embodied_kgco2e", "cost"],
        by=["team_id", "currency"],
        teams=sorted(scope.team_ids),
    )
    kwh: dict[int, float] = {}
    kg: dict[int, float] = {}
    money: dict[int, list[Money]] = {}
    for row in rows.itertuples(index=False):
        team_id = int(row.team_id)
        kwh[team_id] = kwh.get(team_id, 0.0) + row.energy_kwh
        kg[team_id] = kg.get(team_id, 0.0) + row.operational_location_kgco2e + row.embodied_kgco2e
        if row.currency and not pd.isna(row.cost):
            money.setdefault(team_id, []).append(Money(row.currency, float(row.cost)))
    return [
        TeamTotal(
            team=t,
            energy_kwh=float(kwh.get(t.pk, 0.0)),
            co2e_kg=float(kg.get(t.pk, 0.0)),
            costs=tuple(sorted(money.get(t.pk, []), key=lambda m: -m.amount)),
        )
        for t in scope.teams
    ]
