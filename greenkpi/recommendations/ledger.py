"""The savings ledger's maths: pure, no Django (docs/advice.md §4).

When an accepted finding's change is detected, the realised saving is measured against a
counterfactual: the owner's energy per unit of work *before* the decision, times the work done
*after* the change, minus the energy actually used after it:

    r_before      = Σ E_before / Σ W_before                      kWh per unit of work
    counterfactual = r_before x Σ W_after
    saved          = counterfactual - Σ E_after                   kWh (IT), measured
    uncertainty    = sd(daily r_before) / sqrt(days before) x Σ W_after    (one standard error;
                     with under two baseline days the spread is unknown: the whole saving, ± 100 %)

kgCO2e saved = saved x the after-period's own kgCO2e per kWh (Scope 2 location-based; the
market-based figure beside it). Work is what the owner kept doing: busy GPU-hours for an idle pool,
busy FP16 TFLOP-hours for a right-sized job (busy GPU-hours x the device's dense FP16 TFLOPS, so a
busy hour on an L4 counts less work than one on an H100), a day of keeping the model current for a
retraining cadence (its retrains' energy per day).
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Day:
    """One UTC day of an owner: IT kWh, work done, carbon, and what held the work."""

    day: date
    kwh: float
    work: float
    location_kg: float
    market_kg: float
    devices: int = 0
    family: str = ""  # the GPU family with most of the day's GPU-hours


@dataclass(frozen=True)
class Realised:
    kwh_per_unit_before: float
    units_after: float
    counterfactual_kwh: float
    actual_kwh: float
    saved_kwh: float
    saved_location_kg: float
    saved_market_kg: float
    uncertainty_kwh: float


def realised(before: Sequence[Day], after: Sequence[Day]) -> Realised | None:
    """The saving of ``after`` against the rate of ``before`` (None without work on both sides)."""
    work_before = sum(d.work for d in before)
    work_after = sum(d.work for d in after)
    if work_before <= 0 or work_after <= 0:
        return None
    rate = sum(d.kwh for d in before) / work_before
    actual = sum(d.kwh for d in after)
    counterfactual = rate * work_after
    saved = counterfactual - actual
    daily = [d.kwh / d.work for d in before if d.work > 0]
    spread = statistics.stdev(daily) if len(daily) > 1 else 0.0
    location = sum(d.location_kg for d in after) / actual if actual > 0 else 0.0
    market = sum(d.market_kg for d in after) / actual if actual > 0 else 0.0
    return Realised(
        kwh_per_unit_before=rate,
        units_after=work_after,
        counterfactual_kwh=counterfactual,
        actual_kwh=actual,
        saved_kwh=saved,
        saved_location_kg=saved * location,
        saved_market_kg=saved * market,
        uncertainty_kwh=(
            spread / math.sqrt(len(daily)) * work_after if len(daily) > 1 else abs(saved)
        ),
    )


def change_day(detector: str, before: Sequence[Day], after: Sequence[Day]) -> Day | None:
    """The first day after the decision whose owner shows the accepted change, else None.

    - idle-allocation: fewer GPUs held than the fewest on any day before (the pool shrank);
    - right-size: the work ran on another GPU family than before (the GPU kind changed);
    - retraining-cadence: a day by which the gap since the last retrain exceeds 1.5 x the median
      gap between the retrains before (the next retrain was skipped: the cadence changed).
    """
    if not before:
        return None
    if detector == "retraining-cadence":
        return _skipped_retrain(before, after)
    if detector == "idle-allocation":
        fewest = min(d.devices for d in before)
        return next((d for d in after if 0 < d.devices < fewest), None)
    if detector == "right-size":
        family = statistics.mode(d.family for d in before)
        return next((d for d in after if d.family and d.family != family), None)
    return None


CADENCE_GAP_FACTOR = 1.5


def _skipped_retrain(before: Sequence[Day], after: Sequence[Day]) -> Day | None:
    """``Day.kwh`` > 0 marks a day with a retrain; see ``change_day``."""
    days = [d.day for d in before if d.kwh > 0]
    if len(days) < 2:
        return None
    gap = statistics.median((b - a).days for a, b in itertools.pairwise(days))
    last = days[-1]
    for d in after:
        if (d.day - last).days > CADENCE_GAP_FACTOR * gap:
            return d
        if d.kwh > 0:
            last = d.day
    return None
