"""The carbon page's tiles and captions: each figure now and in the previous period, the intensity
sources a figure rests on, and table rows ready for templates. Computed from ``carbon.selectors``'s
frame and ``kpi_table`` (the KPI formulas), never from rollups directly."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from greenkpi.carbon import methodology as m
from greenkpi.carbon.methodology import METHODOLOGY_VERSION, IntensitySource
from greenkpi.dashboard.carbon.selectors import (
    figure_methods,
    kpi_table,
    methodology_versions,
    source_shares,
)
from greenkpi.inventory.access import Scope
from greenkpi.kpis import formulas, labels
from greenkpi.lib import units
from greenkpi.lib.periods import Period

# --- tiles -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tile:
    """One figure with its value in the previous period of equal length."""

    key: str
    label: str
    value: float | None
    previous: float | None
    unit: str
    change_abs: float | None = None  # formulas.change; None without both values
    change_rel: float | None = None  # None from 0 (the formula's NaN)
    method: str = ""  # how the figure was produced (measured vs estimated, factors used)

    @classmethod
    def compared(
        cls, key: str, label: str, value: float | None, previous: float | None, unit: str
    ) -> Tile:
        if value is None or previous is None:
            return cls(key, label, value, previous, unit)
        absolute, rel = formulas.change(value, previous)
        return cls(key, label, value, previous, unit, absolute, None if np.isnan(rel) else rel)

    @property
    def change_pct(self) -> float | None:
        """Relative change in percent; for a share, its change in percentage points instead."""
        if self.unit == "%":
            return self.change_abs
        return None if self.change_rel is None else self.change_rel * 100

    @property
    def change_unit(self) -> str:
        return "pp" if self.unit == "%" else "%"

    @property
    def display(self) -> tuple[str, str]:
        """(number, unit) as shown, by the one unit rule (lib/units.py): kgCO2e as t from
        1,000 kg on (the CSV keeps kg), three significant digits, a share with one decimal."""
        if self.value is None:
            return "\u2013", self.unit
        if self.unit == "%":
            return f"{self.value:.1f}", self.unit
        if self.unit == "kgCO2e":
            mass = units.co2e_mass(self.value)
            return mass.number, f"{mass.unit}CO2e"
        return units.significant(self.value), self.unit


def number(value: float, *, percent: bool = False) -> str:
    """A figure by the one unit rule (a share with one decimal)."""
    return f"{value:.1f}" if percent else units.significant(value)


@dataclass(frozen=True)
class CarbonSummary:
    tiles: list[Tile]
    previous: Period
    cost: list[Tile]  # one per currency (unit = currency); none without a tariff
    uncosted_energy_kwh: float
    sources: dict[str, float]  # intensity source -> share of facility kWh
    methodology_versions: list[str]
    current_methodology: str = METHODOLOGY_VERSION
    scoped: bool = False  # totals are the sum of the user's teams, not the organisation's
    empty: bool = True
    notes: list[str] = field(default_factory=list)


TILE_FIGURES = (
    # key, label, column of kpi_table, unit; carbon names from kpis/labels.py (one vocabulary)
    ("energy", "IT energy", "energy_kwh", "kWh"),
    ("facility", "Facility energy (x PUE)", "facility_energy_kwh", "kWh"),
    *(
        (q.key, q.tile, q.column, "kgCO2e")
        for q in (
            labels.SCOPE2_LOCATION,
            labels.SCOPE2_MARKET,
            labels.SCOPE3_UPSTREAM,
            labels.EMBODIED,
            labels.TOTAL,
        )
    ),
    ("embodied_share", f"{labels.EMBODIED.title} share of the total", "embodied_share", "%"),
    ("renewable", "Renewable share (kWh-weighted)", "renewable_share", "%"),
)


def _value(table: pd.DataFrame, column: str) -> float | None:
    if table.empty:
        return None
    value = float(table[column].iloc[0])
    return None if np.isnan(value) else value


def summary(
    scope: Scope,
    frame: pd.DataFrame,
    previous_frame: pd.DataFrame,
    previous: Period,
    *,
    picked: bool,
) -> CarbonSummary:
    """The tiles: each figure now and in ``previous`` (frames from carbon_frame)."""
    now = kpi_table(frame, []) if not frame.empty else pd.DataFrame()
    before = kpi_table(previous_frame, []) if not previous_frame.empty else pd.DataFrame()
    tiles = []
    for key, label, column, unit in TILE_FIGURES:
        value, prev = _value(now, column), _value(before, column)
        if unit == "%":
            value = None if value is None else value * 100
            prev = None if prev is None else prev * 100
        tiles.append(Tile.compared(key, label, value, prev, unit))
    cost_now = formulas.cost(frame, []) if not frame.empty else pd.DataFrame(columns=["currency"])
    cost_before = (
        formulas.cost(previous_frame, [])
        if not previous_frame.empty
        else pd.DataFrame(columns=["currency", "cost"])
    )
    before_by = dict(zip(cost_before["currency"], cost_before["cost"], strict=True))
    cost = [
        Tile.compared(f"cost-{cur}", "Electricity cost", float(c), before_by.get(cur), str(cur))
        for cur, c in zip(cost_now.get("currency", []), cost_now.get("cost", []), strict=True)
        if cur
    ]
    uncosted = float(cost_now["uncosted_energy_kwh"].sum()) if len(cost_now) else 0.0
    methods = figure_methods(
        scope.organisation.pk, frame, previous.end, previous.end + (previous.end - previous.start)
    )
    if methods is not None:
        said = {
            "energy": f"IT energy {methods.energy}",
            "facility": f"IT energy {methods.energy}; x the sites' PUE",
            "location": f"factor: {methods.location}",
            "upstream": f"lifecycle - direct factor + {m.TD_LOSS_DEFAULT:.2%} T&D losses",
            "market": methods.market,
        }
        tiles = [replace(t, method=said.get(t.key, "")) for t in tiles]
    shares = intensity_shares(frame)
    versions = methodology_versions(frame)
    notes = []
    if len(versions) > 1 or (versions and versions != [METHODOLOGY_VERSION]):
        notes.append(
            f"figures were computed under methodology {', '.join(versions)}; the current is "
            f"{METHODOLOGY_VERSION} (a backfill recomputes them)"
        )
    return CarbonSummary(
        tiles=tiles,
        previous=previous,
        cost=cost,
        uncosted_energy_kwh=uncosted,
        sources=shares,
        methodology_versions=versions,
        scoped=not scope.org_wide or picked,
        empty=frame.empty,
        notes=notes,
    )


def intensity_shares(frame: pd.DataFrame) -> dict[str, float]:
    """{intensity source: share of facility kWh} over the frame, sources with a share only."""
    if frame.empty:
        return {}
    row = source_shares(frame, []).iloc[0]
    out = {}
    for s in (IntensitySource.HOURLY, IntensitySource.ANNUAL, IntensitySource.DEFAULT):
        value = float(row[f"{s}_intensity_share"])
        if not np.isnan(value) and value > 0:
            out[s] = value
    return out


def caption(frame: pd.DataFrame) -> str:
    """What a figure rests on: intensity sources by share of kWh, and the methodology."""
    versions = methodology_versions(frame)
    return (
        f"Grid intensity: {source_label(intensity_shares(frame))} of facility kWh · "
        f"methodology {', '.join(versions) or METHODOLOGY_VERSION}"
    )


SHARE_COLUMNS = (
    "embodied_share",
    "renewable_share",
    "avg_gpu_utilization",
    "estimated_share",
    "hourly_intensity_share",
    "annual_intensity_share",
    "default_intensity_share",
)


def display_rows(table: pd.DataFrame) -> list[dict[str, object]]:
    """Table rows for templates: NaN as None ("no data"), shares also as ``<name>_pct``."""
    rows = []
    for record in table.to_dict("records"):
        row = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in record.items()}
        for column in SHARE_COLUMNS:
            if column in row:
                value = row[column]
                row[f"{column}_pct"] = None if value is None else float(str(value)) * 100
        rows.append(row)
    return rows


def source_label(shares: dict[str, float]) -> str:
    """'hourly series 40 %, annual average 60 %' for a figure's caption. An hourly series is
    imported data (e.g. Electricity Maps), not our measurement: its own source is on the report."""
    names = {
        IntensitySource.HOURLY: "hourly series",
        IntensitySource.ANNUAL: "annual average (flat)",
        IntensitySource.DEFAULT: "world average (zone unknown)",
    }
    if not shares:
        return "no data"
    return ", ".join(f"{names[s]} {v * 100:.0f} %" for s, v in shares.items())
