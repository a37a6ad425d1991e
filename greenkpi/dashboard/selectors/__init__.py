"""Reads behind every dashboard page, chart and CSV. Each takes a Scope (or a scoped object).

Energy, carbon and cost come from the rollups (DailyRollup for whole days, HourlyRollup for hours;
see rollups.py); only the host power/utilization charts read raw windows, for ranges up to 7 days
where minute resolution matters. Frames carry units in column names and tz-naive UTC times (what
Plotly serialises fastest; reference/performance-limits.md section 7).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd
from django.db.models import Count, F, Max, Min, Q, Sum

from greenkpi.dashboard import rollups
from greenkpi.dashboard.scoping import Scope, hosts_visible

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
from greenkpi.dashboard.sql import EpochDays, fetch_rows
from greenkpi.inventory.models import CollectorToken, Team
from greenkpi.kpis.models import HourlyRollup, RecomputeRun
from greenkpi.kpis.selectors import last_run
from greenkpi.lib.periods import Period, naive_utc_series

UNASSIGNED = "(no team)"

TEAM_DAILY_COLUMNS = ["day", "team_id", "team", "energy_kwh"]
TEAM_RUN_COLUMNS = ["model", "run", "energy_kwh", "first_window_utc", "last_window_utc"]


def team_energy_daily(
    scope: Scope, period: Period, team_ids: Collection[int] | None = None
) -> pd.DataFrame:
    """Energy per UTC day and team in kWh, for the visible teams (or the chosen subset).

    Read from the rollups (DailyRollup for whole days, HourlyRollup for hours), whose attribution
    is: energy a share names a team for goes to that team, the rest of every window to the host's
    default team; a window counts in the hour (so the day) it starts. One GROUP BY query.
    """
    src = rollups.source(scope.organisation.pk, period, per_team=True)
    rows = (
        src.rows.filter(rollups.team_filter(scope, team_ids))
        .annotate(d=EpochDays(src.day))
        .values("d", "team_id")
        .annotate(kwh=Sum("energy_kwh"))
        .order_by()
        .values_list("d", "team_id", "kwh")
    )
    out = pd.DataFrame.from_records(fetch_rows(rows), columns=["day", "team_id", "energy_kwh"])
    if out.empty:
        return pd.DataFrame(columns=TEAM_DAILY_COLUMNS)
    out["team_id"] = out["team_id"].astype("Int64")
    out = out.sort_values(["day", "team_id"], na_position="last")
    names = {t.pk: t.name for t in scope.teams}
    out["team"] = out["team_id"].map(names).astype(object).fillna(UNASSIGNED)
    out["day"] = pd.to_datetime(out["day"], unit="D")
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
    src = rollups.source(scope.organisation.pk, period, per_team=True)
    money = (
        src.rows.filter(rollups.team_filter(scope, team_ids))
        .values("currency")
        .annotate(
            kwh=Sum("energy_kwh"),
            co2e=Sum(F("operational_location_kgco2e") + F("embodied_kgco2e")),
            price=Sum("cost"),
            unpriced=Sum("facility_energy_kwh", filter=Q(cost__isnull=True)),
            unmapped=Sum("unmapped_energy_kwh"),
        )
        .order_by()
        .values_list("currency", "kwh", "co2e", "price", "unpriced", "unmapped")
    )
    energy_kwh = co2e = uncosted = unmapped = 0.0
    costs: list[Money] = []
    for currency, kwh, kg, price, unpriced, orphan in money:
        unmapped += orphan or 0.0
        energy_kwh += kwh or 0.0
        co2e += kg or 0.0
        uncosted += unpriced or 0.0
        if currency and price is not None:
            costs.append(Money(currency, float(price)))
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
    src = rollups.source(team.organisation_id, period)
    rows = (
        src.rows.filter(team_id=team.pk)
        .values("model_key", "run_key")
        .annotate(kwh=Sum("energy_kwh"), first=Min(src.bucket), last=Max(src.bucket))
        .order_by("-kwh", "model_key", "run_key")
        .values_list("model_key", "run_key", "kwh", "first", "last")
    )
    frame = pd.DataFrame.from_records(
        list(rows), columns=["model", "run", "energy_kwh", "first", "last"]
    )
    if frame.empty:
        return pd.DataFrame(columns=TEAM_RUN_COLUMNS)
    frame["model"] = frame["model"].replace("", "(unnamed model)")
    frame["run"] = frame["run"].replace("", "(no run)")
    for column in ("first", "last"):
        hourly = src.bucket == "hour"
        times = naive_utc_series(frame[column]) if hourly else pd.to_datetime(frame[column])
        frame[f"{column}_window_utc"] = times
    return frame[TEAM_RUN_COLUMNS]


@dataclass(frozen=True)
class TeamTotal:
    team: Team
    energy_kwh: float
    co2e_kg: float = 0.0  # CO2e, total (SCI numerator): Scope 2 location-based + embodied
    costs: tuple[Money, ...] = ()  # one per currency, largest first; none without a tariff


def team_totals(scope: Scope, period: Period) -> list[TeamTotal]:
    """Every visible team with its energy, CO2e total and cost over the period (zero when
    absent): one GROUP BY team and currency over the rows team_energy_daily reads, so the
    totals equal its days summed and the overview's tiles (same columns, same rows)."""
    src = rollups.source(scope.organisation.pk, period, per_team=True)
    rows = (
        src.rows.filter(team_id__in=sorted(scope.team_ids))
        .values("team_id", "currency")
        .annotate(
            kwh=Sum("energy_kwh"),
            kg=Sum(F("operational_location_kgco2e") + F("embodied_kgco2e")),
            price=Sum("cost"),
        )
        .order_by()
        .values_list("team_id", "currency", "kwh", "kg", "price")
    )
    kwh: dict[int, float] = {}
    kg: dict[int, float] = {}
    money: dict[int, list[Money]] = {}
    for team_id, currency, energy, co2e, price in rows:
        kwh[team_id] = kwh.get(team_id, 0.0) + (energy or 0.0)
        kg[team_id] = kg.get(team_id, 0.0) + (co2e or 0.0)
        if currency and price is not None:
            money.setdefault(team_id, []).append(Money(currency, float(price)))
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
