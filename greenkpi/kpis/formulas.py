"""KPI maths as pure functions over rollup rows: DataFrame in, DataFrame out (docs/kpis.md).

No Django, no I/O. Inputs carry HourlyRollup's column names (units in the names); ``by`` names the
grouping columns (e.g. ["team_id"], ["team_id", "hour"]; empty = one total row). Ratios are
computed from sums, never averaged: the mean of hourly utilizations is not the utilization.
A ratio whose denominator is zero is NaN ("no data"), not 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

G_PER_KG = 1000.0
LOW_UTILIZATION_BELOW = 0.30  # the "share of GPU-hours under 30 % busy"
# A window with no idle_s reading counts as idle when it was busy less than this (5 %, the
# reference's "GR_ENGINE_ACTIVE < 0.05" threshold); the rollups apply it in SQL.
IDLE_BUSY_BELOW = 0.05
# The share method of a GPU allocated to a scheduler job that no busy process used (waste).
ALLOCATED_IDLE = "allocated-idle"


def _sum(df: pd.DataFrame, by: Sequence[str], columns: Sequence[str]) -> pd.DataFrame:
    """Sums of ``columns`` per ``by`` group (one row when ``by`` is empty), as a flat frame."""
    if by:
        return df.groupby(list(by), dropna=False, sort=True)[list(columns)].sum().reset_index()
    return pd.DataFrame({c: [float(df[c].sum())] for c in columns})


def _ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    num = numerator.astype("float64")
    den = denominator.astype("float64")
    return (num / den.where(den != 0)).astype("float64")


def energy(df: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """IT and facility energy (kWh) and the estimated share of IT energy (0..1)."""
    out = _sum(df, by, ["energy_kwh", "facility_energy_kwh", "estimated_energy_kwh"])
    out["estimated_share"] = _ratio(out["estimated_energy_kwh"], out["energy_kwh"])
    return out


def co2e(df: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Operational (location- and market-based) and embodied kgCO2e.

    ``total_kgco2e`` = location-based operational + embodied: the SCI numerator (O + M).
    Market-based is reported beside it and never enters SCI.
    """
    out = _sum(
        df,
        by,
        ["operational_location_kgco2e", "operational_market_kgco2e", "embodied_kgco2e"],
    )
    out["total_kgco2e"] = out["operational_location_kgco2e"] + out["embodied_kgco2e"]
    return out


def sci_per_unit(totals: pd.DataFrame, units_column: str = "functional_units") -> pd.DataFrame:
    """SCI = (O + M) / R in kgCO2e per functional unit, for frames from ``co2e`` that have a
    column of functional-unit counts R (runs, 1,000 inferences ...)."""
    out = totals.copy()
    out["sci_kgco2e_per_unit"] = _ratio(
        out["operational_location_kgco2e"] + out["embodied_kgco2e"], out[units_column]
    )
    return out


def gpu_utilization(df: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Time-weighted average GPU busy fraction, and SM activity where the source reports it."""
    out = _sum(
        df,
        by,
        ["allocated_gpu_h", "busy_gpu_h", "util_known_gpu_h", "sm_active_gpu_h", "sm_known_gpu_h"],
    )
    out["avg_gpu_utilization"] = _ratio(out["busy_gpu_h"], out["util_known_gpu_h"])
    out["avg_sm_activity"] = _ratio(out["sm_active_gpu_h"], out["sm_known_gpu_h"])
    return out


def idle_waste(df: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Idle GPU-hours, the IT energy of that idle time and its location-based kgCO2e, per owner.

    ``idle_kgco2e`` = idle_energy_kwh x PUE x intensity, row by row (each row has its own factors).
    Rows that are sums of hourly rows (daily rollups) carry that product's sum as
    ``idle_location_kgco2e`` and it is taken as is.
    """
    if "idle_location_kgco2e" in df:
        work = df.assign(idle_kgco2e=df["idle_location_kgco2e"])
    else:
        work = df.assign(
            idle_kgco2e=df["idle_energy_kwh"] * df["pue"] * df["intensity_g_per_kwh"] / G_PER_KG
        )
    out = _sum(work, by, ["allocated_gpu_h", "idle_gpu_h", "idle_energy_kwh", "idle_kgco2e"])
    out["idle_share"] = _ratio(out["idle_gpu_h"], out["allocated_gpu_h"])
    return out


def low_utilization_share(
    df: pd.DataFrame, by: Sequence[str] = (), below: float = LOW_UTILIZATION_BELOW
) -> pd.DataFrame:
    """Share of GPU-hours spent in hourly rows whose busy fraction is under ``below``.

    Judged per rollup row (one device x owner x hour); only GPU-hours with a busy reading count.
    """
    row_util = _ratio(df["busy_gpu_h"], df["util_known_gpu_h"])
    work = df.assign(low_util_gpu_h=np.where(row_util < below, df["util_known_gpu_h"], 0.0))
    out = _sum(work, by, ["low_util_gpu_h", "util_known_gpu_h"])
    out["low_util_share"] = _ratio(out["low_util_gpu_h"], out["util_known_gpu_h"])
    return out


def renewable_share(df: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Energy-weighted grid renewable share of facility energy (rows without a share excluded).

    Rows that are sums of hourly rows (daily rollups) carry the numerator and denominator summed
    already, ``renewable_kwh`` and ``renewable_known_kwh``, and they are taken as is.
    """
    if "renewable_known_kwh" in df:
        work = df.assign(share_known_kwh=df["renewable_known_kwh"])
    else:
        known = df["renewable_share"].notna()
        work = df.assign(
            renewable_kwh=(df["facility_energy_kwh"] * df["renewable_share"]).where(known, 0.0),
            share_known_kwh=df["facility_energy_kwh"].where(known, 0.0),
        )
    out = _sum(work, by, ["renewable_kwh", "share_known_kwh"])
    out["renewable_share"] = _ratio(out["renewable_kwh"], out["share_known_kwh"])
    return out


def cost(df: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Electricity cost per currency; energy of sites without a tariff is reported as uncosted."""
    costed = df["cost"].notna()
    work = df.assign(
        cost=df["cost"].fillna(0.0),
        uncosted_energy_kwh=df["facility_energy_kwh"].where(~costed, 0.0),
        currency=df["currency"].where(costed, ""),
    )
    out = _sum(work, [*by, "currency"], ["cost", "uncosted_energy_kwh"])
    return out


def change(value: float, previous: float) -> tuple[float, float]:
    """One figure's change vs the previous period: (absolute, relative); relative from 0 is NaN.
    The scalar form of ``change_vs_previous`` (a tile needs no frame)."""
    absolute = float(value) - float(previous)
    return absolute, (absolute / float(previous) if previous else float("nan"))


def change_vs_previous(
    current: pd.DataFrame, previous: pd.DataFrame, value: str, on: Sequence[str] = ()
) -> pd.DataFrame:
    """``value`` this period vs the previous one: absolute change and relative change (0.25 = +25 %).

    Groups missing from one period count as 0 there; a relative change from 0 is NaN.
    """
    keys = list(on)
    if keys:
        merged = current[[*keys, value]].merge(
            previous[[*keys, value]], on=keys, how="outer", suffixes=("", "_previous")
        )
    else:
        merged = pd.DataFrame(
            {
                value: [float(current[value].sum())],
                f"{value}_previous": [float(previous[value].sum())],
            }
        )
    merged[[value, f"{value}_previous"]] = merged[[value, f"{value}_previous"]].fillna(0.0)
    merged["change_abs"] = merged[value] - merged[f"{value}_previous"]
    merged["change_rel"] = _ratio(merged["change_abs"], merged[f"{value}_previous"])
    return merged.sort_values(keys).reset_index(drop=True) if keys else merged
