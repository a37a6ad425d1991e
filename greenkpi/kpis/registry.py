"""The KPI registry: what each KPI is (slug, unit, description, formula) and the pure function that
computes it from rollup rows. Pages, the API and alerts look KPIs up here by slug; the formulas are
written out with sources and worked examples in docs/kpis.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from greenkpi.kpis import formulas

KpiFunction = Callable[[pd.DataFrame, Sequence[str]], pd.DataFrame]


@dataclass(frozen=True, slots=True)
class Kpi:
    slug: str
    name: str
    unit: str
    column: str  # the result column that holds the KPI value
    description: str
    formula: str
    function: KpiFunction
    keys: tuple[str, ...] = ()  # grouping columns the function always adds (cost: currency)

    def compute(self, rollups: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
        return self.function(rollups, by)


KPIS: tuple[Kpi, ...] = (
    Kpi(
        slug="energy",
        name="Energy",
        unit="kWh",
        column="energy_kwh",
        description="IT energy measured at the devices (before PUE).",
        formula="Σ energy_j / 3.6e6; estimated share = Σ estimated / Σ energy",
        function=formulas.energy,
    ),
    Kpi(
        slug="co2e",
        name="Carbon (SCI numerator)",
        unit="kgCO2e",
        column="total_kgco2e",
        description="Location-based operational plus embodied carbon (O + M of SCI).",
        formula="Σ kWh * PUE * I(g/kWh) / 1000 + Σ M_device * t / lifetime",
        function=formulas.co2e,
    ),
    Kpi(
        slug="gpu-utilization",
        name="Average GPU utilization",
        unit="fraction",
        column="avg_gpu_utilization",
        description="Time-weighted busy fraction of GPUs over the GPU-hours with a reading.",
        formula="Σ busy_gpu_h / Σ util_known_gpu_h",
        function=formulas.gpu_utilization,
    ),
    Kpi(
        slug="idle-gpu-hours",
        name="Idle GPU-hours (waste)",
        unit="GPU-h",
        column="idle_gpu_h",
        description="GPU time allocated but idle, its energy and CO2e, per owner.",
        formula="Σ idle_s / 3600; idle kgCO2e = Σ idle_kWh * PUE * I / 1000",
        function=formulas.idle_waste,
    ),
    Kpi(
        slug="low-utilization-share",
        name="GPU-hours under 30 % busy",
        unit="fraction",
        column="low_util_share",
        description="Share of GPU-hours in device-hours whose busy fraction was under 30 %.",
        formula="Σ util_known_gpu_h [busy/known < 0.30] / Σ util_known_gpu_h",
        function=formulas.low_utilization_share,
    ),
    Kpi(
        slug="renewable-share",
        name="Renewable share",
        unit="fraction",
        column="renewable_share",
        description="Energy-weighted renewable share of the grids that supplied the energy.",
        formula="Σ facility_kWh * RE / Σ facility_kWh (rows with RE known)",
        function=formulas.renewable_share,
    ),
    Kpi(
        slug="cost",
        name="Electricity cost",
        unit="currency",
        column="cost",
        description="Facility energy times the site's tariff, per currency.",
        formula="Σ facility_kWh * price_per_kWh",
        function=formulas.cost,
        keys=("currency",),
    ),
)

REGISTRY: dict[str, Kpi] = {kpi.slug: kpi for kpi in KPIS}


def get(slug: str) -> Kpi:
    try:
        return REGISTRY[slug]
    except KeyError:
        raise KeyError(f"no KPI {slug!r}; known: {', '.join(REGISTRY)}") from None


def change_vs_previous(
    slug: str, current: pd.DataFrame, previous: pd.DataFrame, by: Sequence[str] = ()
) -> pd.DataFrame:
    """Any registered KPI this period vs the previous period (see formulas.change_vs_previous)."""
    kpi = get(slug)
    return formulas.change_vs_previous(
        kpi.compute(current, by),
        kpi.compute(previous, by),
        value=kpi.column,
        on=[*by, *kpi.keys],
    )
