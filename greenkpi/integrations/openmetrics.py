"""An organisation's KPIs in OpenMetrics text, for the teams' own Prometheus and Grafana
(docs/integrations.md, "Prometheus and Grafana"). Figures come from ``kpis.read``, like the pages.

Counters are whole-life totals (every rollup up to the end of the current hour) per team and
model; gauges are ratios. Base units and ``_total`` on counters, as Prometheus names them:

=========================================  =======  ==========================================
family (sample names add ``_total``)       type     labels
=========================================  =======  ==========================================
greenkpi_energy_joules                     counter  team, model   (IT energy)
greenkpi_scope2_location_co2e_grams        counter  team, model
greenkpi_scope2_market_co2e_grams          counter  team, model
greenkpi_embodied_co2e_grams               counter  team, model
greenkpi_energy_cost                       counter  team, model, currency
greenkpi_gpu_busy_seconds                  counter  team, model
greenkpi_gpu_idle_seconds                  counter  team, model
greenkpi_gpu_utilization_ratio             gauge    team, model   (trailing 24 h)
greenkpi_budget_used_ratio                 gauge    budget_id, budget, team, model, metric
greenkpi_budget_forecast_ratio             gauge    budget_id, budget, team, model, metric
=========================================  =======  ==========================================

Low cardinality by design: ``model`` is a *registered* model's key (the registry is curated by
each team) or "" for work of no registered model; hosts, devices and runs are never labels. A
counter family therefore has at most T x (M + 1) + 1 series (T teams, M registered models per
team; +1: work of no team), times the currencies for cost; budget gauges one series per budget.
A scrape is two reads of the read layer plus the budgets' batched status.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd
from django.utils import timezone

from greenkpi.alerts import selectors as alert_selectors
from greenkpi.kpis import labels
from greenkpi.kpis.read import sums as read
from greenkpi.lib.periods import hour_floor
from greenkpi.workloads.models import MLModel

CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
J_PER_KWH = 3.6e6
G_PER_KG = 1000.0
S_PER_H = 3600.0
UTILIZATION_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class Family:
    name: str  # without _total
    kind: str  # counter | gauge
    unit: str
    help: str
    column: str = ""  # the read layer's column it comes from (counters)
    scale: float = 1.0  # into the base unit
    otel: str = ""  # the matching OpenTelemetry name, "" when none exists


COUNTERS = (
    Family(
        "greenkpi_energy_joules",
        "counter",
        "joules",
        "IT energy measured (or estimated) at the devices",
        "energy_kwh",
        J_PER_KWH,
        "hw.energy",
    ),
    Family(
        "greenkpi_scope2_location_co2e_grams",
        "counter",
        "grams",
        f"CO2e, {labels.SCOPE2_LOCATION.name}: {labels.SCOPE2_LOCATION.definition}",
        labels.SCOPE2_LOCATION.column,
        G_PER_KG,
    ),
    Family(
        "greenkpi_scope2_market_co2e_grams",
        "counter",
        "grams",
        f"CO2e, {labels.SCOPE2_MARKET.name}",
        labels.SCOPE2_MARKET.column,
        G_PER_KG,
    ),
    Family(
        "greenkpi_embodied_co2e_grams",
        "counter",
        "grams",
        f"CO2e, {labels.EMBODIED.name}: {labels.EMBODIED.definition}",
        labels.EMBODIED.column,
        G_PER_KG,
    ),
    Family(
        "greenkpi_gpu_busy_seconds",
        "counter",
        "seconds",
        "GPU time with a busy reading above the idle threshold",
        "busy_gpu_h",
        S_PER_H,
    ),
    Family(
        "greenkpi_gpu_idle_seconds",
        "counter",
        "seconds",
        "GPU time idle (busy under 5 %)",
        "idle_gpu_h",
        S_PER_H,
    ),
)
COST = Family(
    "greenkpi_energy_cost", "counter", "", "Electricity cost of facility energy (site tariff)"
)
UTILIZATION = Family(
    "greenkpi_gpu_utilization_ratio",
    "gauge",
    "ratio",
    "GPU busy time / GPU time with a busy reading, trailing 24 h",
    otel="hw.gpu.utilization",
)
BUDGET_USED = Family(
    "greenkpi_budget_used_ratio", "gauge", "ratio", "Budget consumed / amount this period"
)
BUDGET_FORECAST = Family(
    "greenkpi_budget_forecast_ratio",
    "gauge",
    "ratio",
    "Forecast at the period's end / amount",
)
FAMILIES = (*COUNTERS, COST, UTILIZATION, BUDGET_USED, BUDGET_FORECAST)


def sample_names(family: Family) -> tuple[str, ...]:
    """The names of a family's samples (what PromQL selects)."""
    return (f"{family.name}_total",) if family.kind == "counter" else (family.name,)


SERVED_NAMES = frozenset(n for f in FAMILIES for n in sample_names(f))


@dataclass
class Exposition:
    samples: dict[str, list[tuple[dict[str, str], float]]] = field(default_factory=dict)

    def add(self, family: Family, labels_: dict[str, str], value: float) -> None:
        if not math.isfinite(value):
            return
        self.samples.setdefault(family.name, []).append((labels_, value))

    def text(self) -> str:
        lines: list[str] = []
        for family in FAMILIES:
            lines.append(f"# TYPE {family.name} {family.kind}")
            if family.unit:
                lines.append(f"# UNIT {family.name} {family.unit}")
            lines.append(f"# HELP {family.name} {_escape(family.help)}")
            (name,) = sample_names(family)
            for labels_, value in sorted(self.samples.get(family.name, []), key=_order):
                pairs = ",".join(f'{k}="{_escape(v)}"' for k, v in labels_.items())
                lines.append(f"{name}{{{pairs}}} {value!r}")
        lines.append("# EOF")
        return "\n".join(lines) + "\n"


def _order(item: tuple[dict[str, str], float]) -> tuple[str, ...]:
    return tuple(item[0].values())


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _model_labels(frame: pd.DataFrame, registered: set[tuple[int, str]]) -> pd.DataFrame:
    """``model`` is the key of a registered model of the row's team, else "" (cardinality)."""

    def label(team_id: object, key: object) -> str:
        if team_id is None or pd.isna(team_id) or not key:  # type: ignore[arg-type]
            return ""
        return str(key) if (int(team_id), str(key)) in registered else ""  # type: ignore[call-overload]

    out = frame.copy()
    out["model"] = [label(t, k) for t, k in zip(out["team_id"], out["model_key"], strict=True)]
    return out


def exposition(
    *,
    organisation_id: int,
    team_ids: Iterable[int] | None,
    team_slugs: dict[int, str],
    budgets: Sequence[object] = (),
    now: datetime | None = None,
) -> Exposition:
    """The organisation's families, for ``team_ids`` (None: all rows, those without a team too)."""
    now = now or timezone.now()
    end = hour_floor(now) + timedelta(hours=1)
    where = {} if team_ids is None else {"team_id": sorted(team_ids)}
    registered = set(
        MLModel.objects.filter(team__organisation_id=organisation_id).values_list("team_id", "key")
    )
    out = Exposition()
    columns = [f.column for f in COUNTERS]
    totals = read.sums(
        organisation_id=organisation_id,
        start=read.BEGINNING,
        end=end,
        columns=columns,
        by=["team_id", "model_key"],
        where=where,
    )
    totals = _model_labels(totals, registered).groupby(["team_id", "model"], dropna=False)
    for (team_id, model), group in totals:
        team = "" if pd.isna(team_id) else team_slugs.get(int(team_id), "")
        for family in COUNTERS:
            value = float(group[family.column].sum()) * family.scale
            out.add(family, {"team": team, "model": model}, value)
    costs = read.sums(
        organisation_id=organisation_id,
        start=read.BEGINNING,
        end=end,
        columns=["cost"],
        by=["team_id", "model_key", "currency"],
        where=where,
    )
    costs = costs[costs["cost"].notna() & (costs["currency"] != "")]
    for (team_id, model, currency), group in _model_labels(costs, registered).groupby(
        ["team_id", "model", "currency"], dropna=False
    ):
        team = "" if pd.isna(team_id) else team_slugs.get(int(team_id), "")
        out.add(
            COST,
            {"team": team, "model": model, "currency": str(currency)},
            float(group["cost"].sum()),
        )
    recent = read.sums(
        organisation_id=organisation_id,
        start=end - UTILIZATION_WINDOW,
        end=end,
        columns=["busy_gpu_h", "util_known_gpu_h"],
        by=["team_id", "model_key"],
        where=where,
    )
    for (team_id, model), group in _model_labels(recent, registered).groupby(
        ["team_id", "model"], dropna=False
    ):
        known = float(group["util_known_gpu_h"].sum())
        if known > 0:
            team = "" if pd.isna(team_id) else team_slugs.get(int(team_id), "")
            busy = float(group["busy_gpu_h"].sum())
            out.add(UTILIZATION, {"team": team, "model": model}, busy / known)
    for status in alert_selectors.statuses_of(list(budgets), now=now):  # type: ignore[arg-type]
        budget = status.budget
        team = team_slugs.get(budget.team_id, "") if budget.team_id else ""
        names = {
            "budget_id": str(budget.pk),
            "budget": budget.name,
            "team": team,
            "model": budget.model_key,
            "metric": budget.metric,
        }
        out.add(BUDGET_USED, names, status.consumed_share)
        out.add(BUDGET_FORECAST, names, status.forecast_share)
    return out
