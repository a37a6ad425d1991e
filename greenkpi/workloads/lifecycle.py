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
