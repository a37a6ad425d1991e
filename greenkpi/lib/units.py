"""How every figure is written: one rule for significant digits and one for carbon masses.

Pure functions, no Django: pages (through the template filters in ``kpis/templatetags``), emails,
CSV-free summaries and tests all format numbers here, so the same quantity reads the same on every
page. CSV files keep raw SI numbers (kg, kWh); this module is for people.

- Figures keep ``SIGNIFICANT_DIGITS`` significant digits (4,010 · 312 · 45.6 · 3.81 · 0.0123), but
  integer digits are never dropped (123,456 stays 123,456); no figure shows six decimals of noise
  (under 0.001: 3.30e-5).
- A carbon *total* (kgCO2e) is written in kg below 1 t and in t from 1,000 kg on (under 10 g, in
  g: never six decimals of kg).
- A carbon *intensity per functional unit* (kgCO2e per run, per 1,000 inferences ...) is written in
  g below 1 kg, in kg below 1 t, in t above; never "µ kg".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SIGNIFICANT_DIGITS = 3
# Below 10^-3 a figure is written in scientific notation (3.30e-5), never with six decimals.
SMALLEST_MAGNITUDE = -3
NO_DATA = "\u2013"  # an en dash: "no data", never 0


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def significant(value: float | None, digits: int = SIGNIFICANT_DIGITS) -> str:
    """``value`` rounded to ``digits`` significant digits, thousands separated; integer digits
    are kept (1,234,567 with 3 digits is 1,234,567, not 1,230,000)."""
    if _missing(value):
        return NO_DATA
    assert value is not None
    if value == 0:
        return "0"
    rounded = float(f"{value:.{digits}g}")  # 9.996 -> 10.0: decimals follow the rounded value
    magnitude = math.floor(math.log10(abs(rounded)))
    if magnitude < SMALLEST_MAGNITUDE:  # 0.0000330 would need seven decimals: 3.30e-5
        return f"{rounded:.{digits - 1}e}".replace("e-0", "e-")
    decimals = max(digits - 1 - magnitude, 0)
    if decimals == 0:
        return f"{value:,.0f}"
    return f"{rounded:,.{decimals}f}"


@dataclass(frozen=True)
class Figure:
    """A number as written and its unit, e.g. ``Figure("3.81", "t")``."""

    number: str
    unit: str

    def __str__(self) -> str:
        return f"{self.number} {self.unit}" if self.unit else self.number


KG_PER_T = 1000.0
G_PER_KG = 1000.0


# Below this a total is written in g: 0.00065 kg would need six decimals ("0.650 g" does not).
TOTAL_IN_G_BELOW_KG = 0.01


def co2e_mass(kg: float | None, digits: int = SIGNIFICANT_DIGITS) -> Figure:
    """A carbon total: kg below 1 t, t from 1,000 kg on (unit "kg" or "t"; CO2e is the label's);
    a total under 10 g (a pilot's hour) in g rather than with six decimals of kg."""
    if _missing(kg):
        return Figure(NO_DATA, "kg")
    assert kg is not None
    if abs(kg) >= KG_PER_T:
        return Figure(significant(kg / KG_PER_T, digits), "t")
    if kg != 0 and abs(kg) < TOTAL_IN_G_BELOW_KG:
        return Figure(significant(kg * G_PER_KG, digits), "g")
    return Figure(significant(kg, digits), "kg")


def co2e_per_unit(kg: float | None, digits: int = SIGNIFICANT_DIGITS) -> Figure:
    """A carbon figure per functional unit: g below 1 kg, kg below 1 t, t above."""
    if _missing(kg):
        return Figure(NO_DATA, "kg")
    assert kg is not None
    if kg != 0 and abs(kg) < 1.0:
        return Figure(significant(kg * G_PER_KG, digits), "g")
    return co2e_mass(kg, digits)


def energy(kwh: float | None, digits: int = SIGNIFICANT_DIGITS) -> Figure:
    """Energy in kWh (the unit every page and budget uses), with the significant-digit rule."""
    return Figure(significant(kwh, digits), "kWh")


def percent(share: float | None) -> str:
    """A share (0..1) as a percentage with one decimal, e.g. "42.0 %"."""
    if _missing(share):
        return NO_DATA
    assert share is not None
    return f"{share * 100:.1f} %"


# --- SCI per functional unit ----------------------------------------------------------------
# SCI = (O + M) / R is recorded per functional unit R as the run names it. People read it at the
# scale usual for that unit: a training run per run, inferences per 1,000, tokens per million.
# A unit nobody listed is shown per one of it, never multiplied.


@dataclass(frozen=True)
class SciScale:
    """How an SCI per unit is shown: per ``per`` units, called ``label`` ("per 1,000 inferences")."""

    per: float
    label: str


_PER_THOUSAND = {
    "inference": "inferences",
    "inferences": "inferences",
    "request": "requests",
    "requests": "requests",
    "prediction": "predictions",
    "predictions": "predictions",
    "query": "queries",
    "queries": "queries",
    "image": "images",
    "images": "images",
    "sample": "samples",
    "samples": "samples",
}
_PER_MILLION = {"token": "tokens", "tokens": "tokens"}


def sci_scale(functional_unit: str | None) -> SciScale:
    """The display scale of an SCI whose functional unit is ``functional_unit`` (as recorded)."""
    unit = (functional_unit or "").strip().lower()
    if unit in _PER_THOUSAND:
        return SciScale(1000.0, f"per 1,000 {_PER_THOUSAND[unit]}")
    if unit in _PER_MILLION:
        return SciScale(1_000_000.0, f"per 1M {_PER_MILLION[unit]}")
    if not unit:
        return SciScale(1.0, "per unit")
    return SciScale(1.0, f"per {'run' if unit == 'runs' else unit}")


def sci(kg_per_unit: float | None, functional_unit: str | None) -> Figure:
    """An SCI figure at its unit's scale, e.g. ``Figure("312", "kg per run")`` or
    ``Figure("1.53", "g per 1,000 inferences")``."""
    scale = sci_scale(functional_unit)
    value = None if _missing(kg_per_unit) else kg_per_unit * scale.per  # type: ignore[operator]
    mass = co2e_per_unit(value)
    return Figure(mass.number, f"{mass.unit}CO2e {scale.label}")
