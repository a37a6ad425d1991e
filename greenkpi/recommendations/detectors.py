"""The six detectors: pure functions from the read layer's frames to findings (docs/advice.md).

No Django and no ORM: ``frames`` reads (through ``kpis.read`` and the registry's selectors) and
hands each detector plain pandas frames or records; ``services`` stores what they return. Every
saving is an *estimate* per year: the window's figure x ``HOURS_PER_YEAR / hours`` (``hours``:
the hours the window holds data for). kgCO2e and cost of a kWh saved are the owner's own ratios in
the window (``Factors``): Scope 2 location-based and market-based kgCO2e per IT kWh (PUE
included), cost per IT kWh in the owner's currency.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from greenkpi.recommendations import constants as c

# The tactic each detector applies, by its name in Järvenpää, Lago, Bogner, Lewis, Muccini,
# Ozkaya, "A Synthesis of Green Architectural Tactics for ML-Enabled Systems", ICSE-SEIS 2024
# (the catalogue of 30 tactics, github.com/S2-group/AwesomeAndDarkTactics).
TACTICS = {
    "right-size": "Use Energy-Efficient Hardware",
    "idle-allocation": "Use Energy-Aware Scheduling",
    "retraining-cadence": "Use Informed Adaptation",
    "shift": "Use Energy-Aware Scheduling",
    "always-on-serving": "Use Energy-Aware Scheduling",
    "hyperparameter-search": "Set Energy Consumption as a Model Constraint",
}
DETECTORS = tuple(TACTICS)


@dataclass(frozen=True)
class Factors:
    """An owner's carbon and cost per IT kWh over the window (ratios of sums)."""

    location_kg_per_kwh: float = 0.0
    market_kg_per_kwh: float = 0.0
    cost_per_kwh: float | None = None
    currency: str = ""


@dataclass(frozen=True)
class Finding:
    """One recommendation. (detector, owner, subject) is its identity across recomputes."""

    detector: str
    owner_kind: str  # team, model, account or host
    owner: str  # "recsys/two-tower-ranker", "physics" (an account) ...
    subject: str  # what of the owner: a GPU family, a recurrence, "serving" ...
    team_id: int | None
    model_key: str
    title: str
    action: str
    annual_kwh: float  # IT energy a year, estimated
    annual_location_kg: float = 0.0
    annual_market_kg: float | None = None
    annual_cost: float | None = None
    currency: str = ""
    evidence: Mapping[str, Any] = field(default_factory=dict)

    @property
    def tactic(self) -> str:
        return TACTICS[self.detector]

    def priced(self, factors: Factors) -> Finding:
        """kgCO2e and cost of the kWh saved, at the owner's own ratios."""
        cost = None if factors.cost_per_kwh is None else self.annual_kwh * factors.cost_per_kwh
        return replace(
            self,
            annual_location_kg=self.annual_kwh * factors.location_kg_per_kwh,
            annual_market_kg=self.annual_kwh * factors.market_kg_per_kwh,
            annual_cost=cost,
            currency=factors.currency if cost is not None else "",
        )


def per_year(value: float, hours: float) -> float:
    """A window's figure scaled to a year (0 for an empty window)."""
    return value * c.HOURS_PER_YEAR / hours if hours > 0 else 0.0


def owner_name(team: str, model_key: str) -> tuple[str, str]:
    """(owner kind, owner) of a (team slug, model key) pair: the model, else the team."""
    return ("model", f"{team}/{model_key}") if model_key else ("team", team)


def factors_of(usage: pd.DataFrame) -> dict[tuple[int | None, str], Factors]:
    """Per (team_id, model_key): location and market kgCO2e, and cost, per IT kWh; the currency
    with most energy names the cost (a second currency's cost is left out, never added)."""
    out: dict[tuple[int | None, str], Factors] = {}
    if usage.empty:
        return out
    frame = usage.assign(team_id=usage["team_id"].astype(object).where(usage["team_id"].notna()))
    for (team_id, model_key), rows in frame.groupby(["team_id", "model_key"], dropna=False):
        kwh = float(rows["energy_kwh"].sum())
        if kwh <= 0:
            continue
        priced = rows[rows["cost"].notna()]
        by_currency = priced.groupby("currency")["energy_kwh"].sum()
        currency = str(by_currency.idxmax()) if not by_currency.empty else ""
        mine = priced[priced["currency"] == currency]
        mine_kwh = float(mine["energy_kwh"].sum())
        key = (None if pd.isna(team_id) else int(team_id), str(model_key))
        out[key] = Factors(
            location_kg_per_kwh=float(rows["operational_location_kgco2e"].sum()) / kwh,
            market_kg_per_kwh=float(rows["operational_market_kgco2e"].sum()) / kwh,
            cost_per_kwh=float(mine["cost"].sum()) / mine_kwh if mine_kwh > 0 else None,
            currency=currency,
        )
    return out


# --- 1. Right-size ------------------------------------------------------------------------------


def right_size(usage: pd.DataFrame, *, teams: Mapping[int, str], hours: float) -> list[Finding]:
    """Owners whose large GPUs (H100, A100) run under 30 % busy for most of their GPU-hours.

    ``usage``: one row per (hour, team_id, model_key, device_id) with ``gpu_family``, the summed
    ``energy_kwh``, ``allocated_gpu_h``, ``busy_gpu_h``, ``util_known_gpu_h``. Estimate: the same
    busy work on L4s, ``work = busy GPU-h x TFLOPS_large / TFLOPS_L4`` L4-hours, on
    ``n = ceil(work / (hours per GPU x 0.8))`` L4s drawing ``P(u) = idle + (max - idle) u``:
    ``E_small = n x hours per GPU x idle + work x (max - idle)``; saving = measured IT kWh - E_small.
    """
    # Only GPU time an owner ran something on (a model key): a host's idle time between runs,
    # charged to its default team without a model, is nobody's to right-size.
    gpus = usage[
        usage["gpu_family"].isin(c.LARGE_GPUS)
        & (usage["util_known_gpu_h"] > 0)
        & (usage["model_key"] != "")
    ]
    small = c.GPUS[c.SMALL_GPU]
    out = []
    for (team_id, model_key, family), rows in gpus.groupby(
        ["team_id", "model_key", "gpu_family"], dropna=False, sort=True
    ):
        allocated = float(rows["allocated_gpu_h"].sum())
        known = float(rows["util_known_gpu_h"].sum())
        busy = float(rows["busy_gpu_h"].sum())
        low = float(
            rows.loc[rows["busy_gpu_h"] < c.LOW_UTILIZATION * rows["util_known_gpu_h"]][
                "util_known_gpu_h"
            ].sum()
        )
        utilization, low_share = busy / known, low / known
        if (
            allocated < c.RIGHT_SIZE_MIN_GPU_H
            or utilization >= c.LOW_UTILIZATION
            or low_share < c.MOST_OF_THE_TIME
        ):
            continue
        devices = int(rows["device_id"].nunique())
        hours_per_gpu = allocated / devices
        large = c.GPUS[str(family)]
        work = busy * large.fp16_tflops / small.fp16_tflops  # L4 GPU-hours at 100 % busy
        n_small = max(1, math.ceil(work / (hours_per_gpu * c.RIGHT_SIZE_TARGET_UTILIZATION)))
        e_small = (
            n_small * hours_per_gpu * small.idle_w + work * (small.max_w - small.idle_w)
        ) / 1e3
        measured = float(rows["energy_kwh"].sum())
        saving = measured - e_small
        if saving <= 0:
            continue
        team = teams.get(int(team_id), "") if not pd.isna(team_id) else ""
        kind, owner = owner_name(team, str(model_key))
        out.append(
            Finding(
                detector="right-size",
                owner_kind=kind,
                owner=owner,
                subject=f"gpu {family}",
                team_id=None if pd.isna(team_id) else int(team_id),
                model_key=str(model_key),
                title=(
                    f"{owner}: {devices} {family} GPU{'s' if devices > 1 else ''} "
                    f"{utilization:.0%} busy, under 30 % for {low_share:.0%} of the time"
                ),
                action=(
                    f"Move to {n_small} {c.SMALL_GPU} GPU{'s' if n_small > 1 else ''} (or a MIG "
                    f"slice of the {family}, or fewer {family}s): the measured work fits at "
                    f"{c.RIGHT_SIZE_TARGET_UTILIZATION:.0%} busy"
                ),
                annual_kwh=per_year(saving, hours),
                evidence={
                    "gpu_family": str(family),
                    "devices": devices,
                    "allocated_gpu_h": allocated,
                    "busy_gpu_h": busy,
                    "utilization": utilization,
                    "low_utilization_share": low_share,
                    "measured_kwh": measured,
                    "target": c.SMALL_GPU,
                    "target_gpus": n_small,
                    "target_kwh": e_small,
                    "window_hours": hours,
                },
            )
        )
    return out


# --- 2. Idle allocations ------------------------------------------------------------------------


def idle_allocations(
    owners: pd.DataFrame,
    accounts: pd.DataFrame,
    *,
    teams: Mapping[int, str],
    hours: float,
    serving: Iterable[tuple[int, str]] = (),
) -> list[Finding]:
    """Pools and accounts whose allocated GPU-hours are mostly idle -> auto-stop.

    ``owners``: per (team_id, model_key) with a model key (a notebook pool, a service): summed
    ``allocated_gpu_h``, ``idle_gpu_h``, ``idle_energy_kwh``, ``devices``. ``accounts``: Slurm /
    Kubernetes jobs' waste per account (``kpis.scheduler.waste_by``): ``account``, ``team_id``,
    ``gpu_h``, ``wasted_gpu_h``, ``wasted_energy_kwh``. Saving = the idle energy (an upper bound:
    the idle share of the window's energy, docs/kpis.md). ``serving``: (team_id, model_key) of
    services that answered requests in the window: their idle seconds are gaps between requests,
    which auto-stop cannot save (right-size and always-on serving judge them).
    """
    services = set(serving)
    out = []
    for row in owners.itertuples(index=False):
        allocated, idle = float(row.allocated_gpu_h), float(row.idle_gpu_h)
        if not row.model_key or allocated <= 0 or idle < c.IDLE_MIN_GPU_H:
            continue
        if not pd.isna(row.team_id) and (int(row.team_id), str(row.model_key)) in services:
            continue
        share = idle / allocated
        if share < c.IDLE_SHARE_MIN:
            continue
        team_id = None if pd.isna(row.team_id) else int(row.team_id)
        kind, owner = owner_name(teams.get(team_id, "") if team_id else "", str(row.model_key))
        out.append(
            Finding(
                detector="idle-allocation",
                owner_kind=kind,
                owner=owner,
                subject="allocation",
                team_id=team_id,
                model_key=str(row.model_key),
                title=f"{owner}: {share:.0%} of {allocated:,.0f} allocated GPU-hours idle",
                action=(
                    f"Stop allocations after {c.AUTO_STOP_IDLE_MINUTES} idle minutes "
                    f"(notebook culler); size the pool to its use: {int(row.devices)} GPUs held, "
                    f"{allocated * (1 - share) / hours:.1f} GPUs' worth in use on average"
                ),
                annual_kwh=per_year(float(row.idle_energy_kwh), hours),
                evidence={
                    "allocated_gpu_h": allocated,
                    "idle_gpu_h": idle,
                    "idle_share": share,
                    "idle_kwh": float(row.idle_energy_kwh),
                    "devices": int(row.devices),
                    "window_hours": hours,
                },
            )
        )
    for row in accounts.itertuples(index=False):
        gpu_h, wasted = float(row.gpu_h), float(row.wasted_gpu_h)
        if gpu_h <= 0 or wasted < c.IDLE_MIN_GPU_H or wasted / gpu_h < c.SLURM_WASTE_SHARE_MIN:
            continue
        team_id = None if pd.isna(row.team_id) else int(row.team_id)
        out.append(
            Finding(
                detector="idle-allocation",
                owner_kind="account",
                owner=str(row.account),
                subject="scheduler jobs",
                team_id=team_id,
                model_key="",
                title=(
                    f"Account {row.account}: {wasted:,.0f} of {gpu_h:,.0f} allocated GPU-hours "
                    "held by jobs with no busy process"
                ),
                action=(
                    f"Release idle GPUs: end or requeue jobs idle for {c.AUTO_STOP_IDLE_MINUTES} "
                    "minutes (job epilog / idle timeout), request fewer GPUs per job"
                ),
                annual_kwh=per_year(float(row.wasted_energy_kwh), hours),
                evidence={
                    "allocated_gpu_h": gpu_h,
                    "idle_gpu_h": wasted,
                    "idle_share": wasted / gpu_h,
                    "idle_kwh": float(row.wasted_energy_kwh),
                    "jobs": int(row.jobs),
                    "window_hours": hours,
                },
            )
        )
    return out


# --- 3. Retraining cadence ----------------------------------------------------------------------


def retraining_cadence(
    retrains: pd.DataFrame, *, teams: Mapping[int, str], hours: float
) -> list[Finding]:
    """Models retrained at least four times in the window whose retrains are under the model's
    floor most of the time -> retrain k times less often, or only on detected drift.

    ``retrains``: one row per retrain outcome (``team_id``, ``model_key``, ``gain``,
    ``energy_kwh``, ``kgco2e``, ``flagged``, ``floor_per_kg``). Under the floor: flagged (gained
    no more than the policy's ``min_gain``, docs/retraining.md §4), or, where the policy sets
    ``min_gain_per_kgco2e`` (``floor_per_kg``), a gain per kgCO2e under it. Metric points are
    not comparable across models, so no floor is set for a model that has none. Keeping as many
    useful retrains: ``k = floor(n / useful)`` within [2, 30] (30 when none was useful); saving =
    the retrains' energy x (1 - 1/k).
    """
    out = []
    for (team_id, model_key), rows in retrains.groupby(["team_id", "model_key"], sort=True):
        n = len(rows)
        if n < c.RETRAIN_MIN_COUNT:
            continue
        kg = rows["kgco2e"].astype(float)
        per_kg = rows["gain"].astype(float) / kg.where(kg > 0)
        floor = rows["floor_per_kg"].astype(float)
        below = rows["flagged"].astype(bool) | (floor.notna() & (per_kg.fillna(0.0) < floor))
        share = float(below.mean())
        if share < c.MOST_OF_THE_TIME:
            continue
        useful = n - int(below.sum())
        k = (
            c.RETRAIN_INTERVAL_FACTOR_MAX
            if useful == 0
            else min(c.RETRAIN_INTERVAL_FACTOR_MAX, max(2, n // useful))
        )
        interval_days = hours / 24.0 / n
        total = float(rows["energy_kwh"].astype(float).sum())
        team = teams.get(int(team_id), "")
        kind, owner = owner_name(team, str(model_key))
        out.append(
            Finding(
                detector="retraining-cadence",
                owner_kind=kind,
                owner=owner,
                subject="retraining",
                team_id=int(team_id),
                model_key=str(model_key),
                title=f"{owner}: {int(below.sum())} of {n} retrains gained nothing worth their energy",
                action=(
                    f"Retrain every {interval_days * k:.1f} days instead of every "
                    f"{interval_days:.1f} (x{k}), or only when drift is detected"
                ),
                annual_kwh=per_year(total * (1 - 1 / k), hours),
                evidence={
                    "retrains": n,
                    "below_floor": int(below.sum()),
                    "useful": useful,
                    "retrain_kwh": total,
                    "interval_days": interval_days,
                    "factor": k,
                    "window_hours": hours,
                },
            )
        )
    return out


# --- 4. Shift in time or place ------------------------------------------------------------------


@dataclass(frozen=True)
class ShiftAdvice:
    """One recurring job's carbon-aware advice (workloads.selectors.carbon_advice), flattened."""

    team_id: int
    model_key: str
    recurrence: str
    occurrences: int  # in the window
    site: str
    start_hour: int
    best_site: str
    best_hour: int
    saving_kg: float  # per occurrence, Scope 2 location-based
    saving_pct: float


def shift(
    advices: Iterable[ShiftAdvice], *, teams: Mapping[int, str], hours: float
) -> list[Finding]:
    """The carbon-aware advice of recurring runs (docs/carbon-advice.md) as findings: per year,
    the advice's saving per occurrence x occurrences in the window x year / window. Energy is
    the same wherever and whenever the run runs (kWh saved: 0); the market-based figure is not
    estimated (a contractual factor does not follow the hourly grid)."""
    out = []
    for a in advices:
        if a.saving_kg <= 0 or a.occurrences <= 0:
            continue
        kind, owner = owner_name(teams.get(a.team_id, ""), a.model_key)
        where = "" if a.best_site == a.site else f" at {a.best_site}"
        out.append(
            Finding(
                detector="shift",
                owner_kind=kind,
                owner=owner,
                subject=a.recurrence,
                team_id=a.team_id,
                model_key=a.model_key,
                title=(
                    f"{owner}: {a.recurrence} at {a.site} {a.start_hour:02d}:00 UTC would emit "
                    f"{a.saving_pct:.0%} less{where} at {a.best_hour:02d}:00"
                ),
                action=f"Start {a.recurrence} at {a.best_hour:02d}:00 UTC{where}",
                annual_kwh=0.0,
                annual_location_kg=per_year(a.saving_kg * a.occurrences, hours),
                annual_market_kg=None,
                evidence={
                    "site": a.site,
                    "start_hour_utc": a.start_hour,
                    "best_site": a.best_site,
                    "best_hour_utc": a.best_hour,
                    "saving_kg_per_run": a.saving_kg,
                    "saving_pct": a.saving_pct,
                    "runs": a.occurrences,
                    "window_hours": hours,
                },
            )
        )
    return out


# --- 5. Always-on serving -----------------------------------------------------------------------


def always_on_serving(
    serving: pd.DataFrame, *, teams: Mapping[int, str], hours: float
) -> list[Finding]:
    """Inference services whose finished serving runs average under one request a minute for
    most runs -> scale to zero. ``serving``: one row per finished inference run (``team_id``,
    ``model_key``, ``run_hours``, ``requests``, ``energy_kwh``). Saving = the energy of the
    near-zero runs (an upper bound: a scaled-to-zero service still cold-starts)."""
    out = []
    for (team_id, model_key), rows in serving.groupby(["team_id", "model_key"], sort=True):
        if len(rows) < c.SERVING_MIN_RUNS:
            continue
        rate = rows["requests"].astype(float) / rows["run_hours"].astype(float).where(
            rows["run_hours"] > 0
        )
        near_zero = rate.fillna(0.0) < c.NEAR_ZERO_REQUESTS_PER_H
        share = float(near_zero.mean())
        if share < c.MOST_OF_THE_TIME:
            continue
        idle_kwh = float(rows.loc[near_zero, "energy_kwh"].sum())
        kind, owner = owner_name(teams.get(int(team_id), ""), str(model_key))
        out.append(
            Finding(
                detector="always-on-serving",
                owner_kind=kind,
                owner=owner,
                subject="serving",
                team_id=int(team_id),
                model_key=str(model_key),
                title=(
                    f"{owner}: {int(near_zero.sum())} of {len(rows)} serving runs under "
                    f"{c.NEAR_ZERO_REQUESTS_PER_H:g} requests an hour"
                ),
                action="Scale the service to zero when idle (serverless or scale-to-zero autoscaler)",
                annual_kwh=per_year(idle_kwh, hours),
                evidence={
                    "runs": len(rows),
                    "near_zero_runs": int(near_zero.sum()),
                    "near_zero_kwh": idle_kwh,
                    "requests_per_hour_median": float(rate.fillna(0.0).median()),
                    "window_hours": hours,
                },
            )
        )
    return out


# --- 6. Hyper-parameter search ------------------------------------------------------------------


def hyperparameter_search(
    training: pd.DataFrame, *, teams: Mapping[int, str], hours: float
) -> list[Finding]:
    """Bursts of at least ten short training runs of one model with equal energy (a grid or
    random search without early stopping) -> Bayesian search with early stopping.

    ``training``: one row per finished training run (``team_id``, ``model_key``, ``started_at``,
    ``run_hours``, ``energy_kwh``). A burst: runs started within 24 h of its first run. Grid-like:
    median duration <= 2 h and energy coefficient of variation <= 0.25. Saving = half of the
    bursts' energy (``SEARCH_SAVING_FRACTION``)."""
    out = []
    for (team_id, model_key), rows in training.groupby(["team_id", "model_key"], sort=True):
        rows = rows.sort_values("started_at")
        bursts: list[pd.DataFrame] = []
        first = None
        members: list[int] = []
        for index, started in zip(rows.index, rows["started_at"], strict=True):
            if first is None or (started - first).total_seconds() > c.SEARCH_BURST_H * 3600:
                if members:
                    bursts.append(rows.loc[members])
                first, members = started, []
            members.append(index)
        if members:
            bursts.append(rows.loc[members])
        searches = [b for b in bursts if _grid_like(b)]
        if not searches:
            continue
        energy = sum(float(b["energy_kwh"].sum()) for b in searches)
        runs = sum(len(b) for b in searches)
        kind, owner = owner_name(teams.get(int(team_id), ""), str(model_key))
        out.append(
            Finding(
                detector="hyperparameter-search",
                owner_kind=kind,
                owner=owner,
                subject="search",
                team_id=int(team_id),
                model_key=str(model_key),
                title=(
                    f"{owner}: {len(searches)} search{'es' if len(searches) > 1 else ''} of "
                    f"{runs} equal short runs (grid-like, no early stopping)"
                ),
                action="Use Bayesian search with early stopping (e.g. Optuna with a pruner, ASHA)",
                annual_kwh=per_year(energy * c.SEARCH_SAVING_FRACTION, hours),
                evidence={
                    "searches": len(searches),
                    "runs": runs,
                    "search_kwh": energy,
                    "saving_fraction": c.SEARCH_SAVING_FRACTION,
                    "window_hours": hours,
                },
            )
        )
    return out


def _grid_like(burst: pd.DataFrame) -> bool:
    if len(burst) < c.SEARCH_MIN_RUNS:
        return False
    energy = burst["energy_kwh"].astype(float)
    mean = float(energy.mean())
    cv = float(energy.std(ddof=0)) / mean if mean > 0 else math.inf
    return (
        float(burst["run_hours"].median()) <= c.SEARCH_MAX_MEDIAN_H and cv <= c.SEARCH_MAX_ENERGY_CV
    )


def ranked(findings: Iterable[Finding]) -> list[Finding]:
    """Largest estimated annual saving first: kWh, then Scope 2 location-based kgCO2e."""
    return sorted(findings, key=lambda f: (-f.annual_kwh, -f.annual_location_kg, f.owner))
