"""Reads behind every dashboard page, chart and CSV. Each takes a Scope (or a scoped object).

Energy, carbon and cost come from the rollups through kpis.read (rollups.py: fresh whole days from
the daily tables, partial and stale days from the hours); only the host power/utilization charts read raw windows, for ranges up to 7 days
where minute resolution matters. Frames carry units in column names and tz-naive UTC times (what
Plotly serialises fastest; reference/performance-limits.md section 7).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd
from django.db.models import Count, Q

from greenkpi.dashboard import rollups

# The fleet and host pages' reads live in hosts.py; callers keep using selectors.<name>.
from greenkpi.dashboard.selectors.hosts import (  # noqa: F401
    FLEET_PAGE_SIZE,
    HOST_SERIES_COLUMNS,
    J_PER_KWH,
    RAW_SERIES_MAX,
    SERIES_ROWS_PER_DEVICE,
    SILENT_AFTER,
    DeviceGroup,
    FleetPage,
    HostHealth,
    fleet,
    host_detail,
    host_health,
    host_series,
    host_series_hourly,
)
from greenkpi.inventory.access import Scope
from greenkpi.inventory.models import CollectorToken, Team
from greenkpi.kpis.models import HourlyRollup, RecomputeRun
from greenkpi.kpis.read.hosts import hosts_visible
from greenkpi.kpis.selectors import last_run
from greenkpi.lib.periods import Period

UNASSIGNED = "(no team)"

TEAM_DAILY_COLUMNS = ["day", "team_id", "team", "energy_kwh"]
TEAM_RUN_COLUMNS = ["model", "run", "energy_kwh", "first_window_utc", "last_window_utc"]


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


@dataclass(frozen=True)
class Freshness:
    """How current the pages are: "rollups up to HH:00, last recompute ok 40 s ago"."""

    rollups_until: datetime | None  # end of the newest hour with rollup rows, never past now
    last_run: RecomputeRun | None  # the newest periodic recompute
    hour_in_progress: bool = False  # the newest hour is the current one: counted so far


def freshness(scope: Scope) -> Freshness:
    """Two index probes: the organisation's newest rollup hour and the newest periodic run."""
    newest = (
        HourlyRollup.objects.filter(organisation_id=scope.organisation.pk)
        .order_by("-hour")
        .values_list("hour", flat=True)
        .first()
    )
    now = datetime.now(UTC)
    # The current hour's rows hold its minutes so far: "up to 17:00" at 16:25 promised the future.
    until = min(newest + timedelta(hours=1), now) if newest else None
    return Freshness(
        rollups_until=until,
        last_run=last_run(kind="periodic"),
        hour_in_progress=bool(newest and until == now),
    )


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


def tokens_visible(scope: Scope) -> list[CollectorToken]:
    """Collector tokens the user may see: all of the organisation's for its managers, else those
    whose default team they manage; empty for viewers."""
    if not scope.can_manage_tokens:
        return []
    tokens = CollectorToken.objects.filter(organisation=scope.organisation).select_related(
        "default_team", "created_by"
    )
    if not scope.manages_org:
        tokens = tokens.filter(default_team_id__in=list(scope.managed_team_ids))
    return list(tokens.order_by("-created_at", "-pk"))
