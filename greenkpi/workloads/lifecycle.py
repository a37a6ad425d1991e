"""Lifecycle carbon of a model: pure pandas over one row per run (``selectors.run_frame``).

Phases: the model's first training run is *training*; every later training or fine-tuning run is
*retraining*; inference and evaluation runs are themselves. kgCO2e = operational (location-based)
+ embodied, the SCI numerator; SCI per functional unit comes from ``kpis.formulas.sci_per_unit``.
"""

from __future__ import annotations

import pandas as pd

from greenkpi.kpis.formulas import sci_per_unit

TRAINING_KINDS = ("training", "fine-tuning")


def phases(runs: pd.DataFrame) -> pd.Series:
    ordered = runs.sort_values(["started_at", "run_key"])
    training = ordered[ordered["kind"].isin(TRAINING_KINDS)]
    first = training.index[0] if len(training) else None
    phase = (
        runs["kind"]
        .map({"training": "retraining", "fine-tuning": "retraining"})
        .fillna(runs["kind"])
    )
    if first is not None:
        phase.loc[first] = "training"
    return phase


def by_version_and_phase(runs: pd.DataFrame) -> pd.DataFrame:
    """kWh and kgCO2e per (version, phase), and a total row per version (phase "total")."""
    columns = ["version", "phase", "runs", "energy_kwh", "kgco2e"]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    work = runs.assign(
        phase=phases(runs),
        kgco2e=runs["operational_location_kgco2e"] + runs["embodied_kgco2e"],
        runs=1,
    )
    parts = work.groupby(["version", "phase"], sort=True)[["runs", "energy_kwh", "kgco2e"]].sum()
    totals = work.groupby(["version"], sort=True)[["runs", "energy_kwh", "kgco2e"]].sum()
    totals["phase"] = "total"
    out = pd.concat([parts.reset_index(), totals.reset_index()], ignore_index=True)
    return out[columns].sort_values(["version", "phase"]).reset_index(drop=True)


def sci_over_time(runs: pd.DataFrame) -> pd.DataFrame:
    """SCI per functional unit of each finished inference run with a unit count, by end time.
    A long-lived service reports one run per period (day, week) to get a series."""
    served = runs[
        (runs["kind"] == "inference") & runs["ended_at"].notna() & (runs["functional_units"] > 0)
    ]
    columns = ["ended_at", "version", "run_key", "functional_unit", "sci_kgco2e_per_unit"]
    if served.empty:
        return pd.DataFrame(columns=columns)
    out = sci_per_unit(served.astype({"functional_units": "float64"}))
    return out.sort_values("ended_at")[columns].reset_index(drop=True)


# --- Phases and SCI per 1,000 inferences as the dashboard shows them (docs/dashboard.md) ---

PHASE_BY_KIND = {
    "data-prep": "training",  # the provider side of SCI for AI, drawn with training
    "training": "training",
    "fine-tuning": "training",
    "inference": "inference",
    "evaluation": "evaluation",
}
# Energy carrying the model's key but a run key no registered run has (or none at all).
UNREGISTERED = "unregistered"
PHASES = ("training", "inference", "evaluation", UNREGISTERED)
# Functional units that count as inferences (a run that names none serves inferences by kind).
INFERENCE_UNITS = (
    "",
    "inference",
    "inferences",
    "request",
    "requests",
    "prediction",
    "predictions",
)
PER_UNITS = 1000.0


def phase_of(kind: str | None) -> str:
    """The dashboard phase of a run kind; None (no registered run) is *unregistered*."""
    return PHASE_BY_KIND.get(kind or "", UNREGISTERED)


def sci_per_thousand(kgco2e: pd.Series, units: pd.Series) -> pd.Series:
    """SCI per 1,000 functional units = (O + M) x 1000 / R; NaN where R is 0 (no data)."""
    den = units.astype("float64")
    return kgco2e.astype("float64") * PER_UNITS / den.where(den > 0)


def bucket_start(days: pd.Series, step: str) -> pd.Series:
    """The start of each day's bucket: the day itself, or the Monday of its ISO week."""
    if step == "day":
        return days
    if step == "week":
        return days - pd.to_timedelta(days.dt.day_of_week, unit="D")
    raise ValueError(f"step must be day or week, not {step!r}")


# --- SCI for AI per model version (GSF SCI for AI; docs/kpis.md "SCI for AI") ---
# Provider boundary: data engineering, training and evaluation/benchmarking (spec §6.2, §7.2-7.3);
# consumer boundary: runtime operations, i.e. inference (§6.1, §7.5).
PROVIDER_KINDS = ("data-prep", "training", "fine-tuning", "evaluation")
PROVIDER_SCALE = {"training-run": 1.0, "1m-training-tokens": 1e6, "1b-parameters": 1e9}
CONSUMER_SCALE = {"1k-inferences": 1e3, "1m-tokens": 1e6}
TOKEN_UNITS = ("token", "tokens")
SCI_AI_COLUMNS = [
    "version",
    "status",
    "provider_kgco2e",
    "provider_units",
    "provider_sci_kgco2e",
    "consumer_kgco2e",
    "consumer_units",
    "consumer_sci_kgco2e",
    "lifecycle_kgco2e",
    "metric_value",
    "on_front",
    "dominated_by",
]


def _counts_as(functional_unit: str, consumer_unit: str) -> bool:
    unit = (functional_unit or "").strip().lower()
    return unit in TOKEN_UNITS if consumer_unit == "1m-tokens" else unit in INFERENCE_UNITS


def sci_for_ai(
    versions: pd.DataFrame,
    runs: pd.DataFrame,
    *,
    provider_unit: str,
    consumer_unit: str,
    higher_is_better: bool,
) -> pd.DataFrame:
    """One row per version: provider and consumer SCI (kgCO2e per declared unit) and the version's
    lifecycle kgCO2e (provider + all its inference), with the Pareto front of lifecycle kgCO2e
    (lower is better) against the primary metric.

    ``versions``: version, status, parameters, training_tokens, metric_value (NaN: unknown).
    ``runs``: version, kind, functional_unit, functional_units, kgco2e (O + M), one row per run
    linked to a version (a training run through ``trained_by`` or its ``version``).

    Provider R: the number of training/fine-tuning runs (per training run), or the version's
    training tokens / 1e6, or parameters / 1e9. Consumer: C and R over the same runs, the inference
    runs that counted units of the declared kind (SCI = C / R over one boundary); the lifecycle
    figure counts every inference run of the version. NaN where R is unknown or 0."""
    if versions.empty:
        return pd.DataFrame(columns=SCI_AI_COLUMNS)
    runs = runs.assign(kgco2e=runs["kgco2e"].astype("float64"))
    provider = runs[runs["kind"].isin(PROVIDER_KINDS)]
    inference = runs[runs["kind"] == "inference"]
    of_kind = inference["functional_unit"].map(lambda u: _counts_as(u, consumer_unit)).astype(bool)
    counted = inference[of_kind & (inference["functional_units"].astype("float64") > 0)]
    out = versions[["version", "status", "parameters", "training_tokens", "metric_value"]].copy()
    by = out["version"]
    out["provider_kgco2e"] = by.map(provider.groupby("version")["kgco2e"].sum()).fillna(0.0)
    trainings = provider[provider["kind"].isin(TRAINING_KINDS)].groupby("version").size()
    scale = PROVIDER_SCALE[provider_unit]
    if provider_unit == "training-run":
        units = by.map(trainings).astype("float64")
    else:
        column = "training_tokens" if provider_unit == "1m-training-tokens" else "parameters"
        units = out[column].astype("float64") / scale
    out["provider_units"] = units.where(units > 0)
    out["provider_sci_kgco2e"] = out["provider_kgco2e"] / out["provider_units"]
    out["consumer_kgco2e"] = by.map(inference.groupby("version")["kgco2e"].sum()).fillna(0.0)
    counted_kg = by.map(counted.groupby("version")["kgco2e"].sum())
    counted_r = by.map(counted.groupby("version")["functional_units"].sum()).astype("float64")
    out["consumer_units"] = (counted_r / CONSUMER_SCALE[consumer_unit]).where(counted_r > 0)
    out["consumer_sci_kgco2e"] = counted_kg / out["consumer_units"]
    out["lifecycle_kgco2e"] = out["provider_kgco2e"] + out["consumer_kgco2e"]
    dominated = pareto_dominators(
        out["lifecycle_kgco2e"], out["metric_value"], out["version"], higher_is_better
    )
    out["dominated_by"] = dominated
    out["on_front"] = out["metric_value"].notna() & (dominated == "")
    return out[SCI_AI_COLUMNS].reset_index(drop=True)


def pareto_dominators(
    kg: pd.Series, metric: pd.Series, names: pd.Series, higher_is_better: bool
) -> pd.Series:
    """For each point, the name of a point that dominates it (no more kgCO2e and no worse metric,
    strictly better in one), or "" when none does. Points without a metric dominate nothing and
    are reported as "" (they are not on the front either: the caller checks the metric)."""
    sign = 1.0 if higher_is_better else -1.0
    points = [
        (float(k), sign * float(m), str(n))
        for k, m, n in zip(kg, metric, names, strict=True)
        if pd.notna(m)
    ]
    kg_of = {name: k for k, _, name in points}
    out = []
    for k, m in zip(kg, metric, strict=True):
        if pd.isna(m):
            out.append("")
            continue
        better = sign * float(m)
        by = [
            other
            for ok, om, other in points
            if ok <= float(k) and om >= better and (ok < float(k) or om > better)
        ]
        out.append(min(by, key=kg_of.__getitem__) if by else "")  # the cheapest of them
    return pd.Series(out, index=kg.index, dtype="object")
