"""The retraining-need score: pure functions, no Django (docs/retraining.md has the hand-worked cases).

    s_perf  = clip((P_base - P_now) / (P_base - P_floor), 0, 1)    oriented so "better" is larger
    s_drift = importance-weighted drift (drift.drift_score)
    s_age   = clip(age / age_max, 0, 1)
    R       = max(s_perf, 0.5 s_drift + 0.3 s_age + 0.2 s_perf)

Performance can trigger alone; drift and age only together. A verdict comes from folding R over the
evidence (evaluations and drift reports) of the deployed version through a hysteresis with
persistence (``step``), then ``decide`` applies the floor, the staleness cap, the minimum interval
and the carbon cost test.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

W_DRIFT, W_AGE, W_PERF = 0.5, 0.3, 0.2
# Without an explicit floor, decay is measured against a 10 % relative fall from the baseline.
DEFAULT_FLOOR_RELATIVE_DROP = 0.10


class Verdict(StrEnum):
    HEALTHY = "healthy"
    WATCH = "watch"
    RECOMMENDED = "recommended"
    OVERDUE = "overdue"


@dataclass(frozen=True, slots=True)
class Policy:
    """A model's retraining policy (MLModel fields), in plain numbers."""

    higher_is_better: bool = True
    floor: float | None = None
    max_age_days: float = 180.0
    min_interval_days: float = 7.0
    persistence: int = 3
    watch: float = 0.3
    enter: float = 0.6
    exit: float = 0.4
    min_gain_per_kgco2e: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.exit < self.enter <= 1:
            raise ValueError("need 0 <= exit < enter <= 1 (hysteresis)")
        if self.persistence < 1 or self.max_age_days <= 0:
            raise ValueError("persistence must be >= 1 and max_age_days > 0")


def _oriented(value: float, higher_is_better: bool) -> float:
    return value if higher_is_better else -value


def effective_floor(baseline: float, floor: float | None, higher_is_better: bool) -> float:
    """The floor, or a 10 % relative fall from the baseline when none is set."""
    if floor is not None:
        return floor
    drop = DEFAULT_FLOOR_RELATIVE_DROP * abs(baseline)
    return baseline - drop if higher_is_better else baseline + drop


def below_floor(current: float, floor: float, higher_is_better: bool) -> bool:
    """At or past the floor (an overdue retrain)."""
    return _oriented(current, higher_is_better) <= _oriented(floor, higher_is_better)


def perf_score(*, current: float, baseline: float, floor: float, higher_is_better: bool) -> float:
    """Share of the baseline-to-floor span already lost, 0..1 (improvement counts as 0)."""
    span = _oriented(baseline, higher_is_better) - _oriented(floor, higher_is_better)
    if span <= 0:  # a floor at or above the baseline: only "past the floor" counts
        return 1.0 if below_floor(current, floor, higher_is_better) else 0.0
    lost = _oriented(baseline, higher_is_better) - _oriented(current, higher_is_better)
    return min(max(lost / span, 0.0), 1.0)


def age_score(*, age_days: float, max_age_days: float) -> float:
    return min(max(age_days / max_age_days, 0.0), 1.0)


def need_score(*, perf: float, drift: float, age: float) -> float:
    """R = max(s_perf, 0.5 s_drift + 0.3 s_age + 0.2 s_perf)."""
    return max(perf, W_DRIFT * drift + W_AGE * age + W_PERF * perf)


@dataclass(frozen=True, slots=True)
class NeedState:
    """Hysteresis state: ``active`` once R stayed >= enter for ``persistence`` evidence points,
    until R falls to exit or below. ``streak`` counts consecutive points at or above enter."""

    active: bool = False
    streak: int = 0


def step(state: NeedState, *, need: float, past_floor: bool, policy: Policy) -> NeedState:
    """One evidence point through the hysteresis. Past the floor the need is active at once."""
    streak = state.streak + 1 if (need >= policy.enter or past_floor) else 0
    if past_floor:
        return NeedState(active=True, streak=streak)
    if state.active:
        return NeedState(active=need > policy.exit, streak=streak)
    return NeedState(active=streak >= policy.persistence, streak=streak)


def fold(points: Iterable[tuple[float, bool]], policy: Policy) -> NeedState:
    """The state after a sequence of (need, past_floor) evidence points, oldest first."""
    state = NeedState()
    for need, past_floor in points:
        state = step(state, need=need, past_floor=past_floor, policy=policy)
    return state


@dataclass(frozen=True, slots=True)
class RetrainCost:
    """Expected energy and carbon of one retrain: the median of this model's past training runs."""

    energy_kwh: float | None
    kgco2e: float | None
    runs: int


def expected_retrain_cost(past_runs: Sequence[tuple[float, float]]) -> RetrainCost:
    """Median (kWh, kgCO2e) of past (energy_kwh, kgco2e) training runs that measured something.
    The median, not the mean: one aborted or oversized run should not set the expectation."""
    measured = [(kwh, kg) for kwh, kg in past_runs if kwh > 0]
    if not measured:
        return RetrainCost(None, None, 0)
    return RetrainCost(
        statistics.median(kwh for kwh, _ in measured),
        statistics.median(kg for _, kg in measured),
        len(measured),
    )


def expected_gain(*, need: float, baseline: float, floor: float, higher_is_better: bool) -> float:
    """Metric points a retrain is expected to win: R x (baseline-to-floor span). When performance
    drives R this is exactly what was lost (a retrain is assumed to restore the baseline); when
    drift or age drive it, it is the loss they foreshadow."""
    span = abs(_oriented(baseline, higher_is_better) - _oriented(floor, higher_is_better))
    return need * span


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    reasons: list[str] = field(default_factory=list)


def decide(
    *,
    state: NeedState,
    need: float,
    past_floor: bool,
    age_days: float | None,
    days_since_retrain: float | None,
    gain: float | None,
    cost: RetrainCost,
    policy: Policy,
) -> Decision:
    """The verdict now, from the folded state and the current components.

    Order: the floor wins over everything (never wait past it); then the retrain need (hysteresis
    or the staleness cap) is held back to *watch* by the minimum interval and by the cost test
    (expected gain per expected kgCO2e below the policy's minimum); the staleness cap skips the
    persistence and the cost test but not the interval.
    """
    if past_floor:
        return Decision(Verdict.OVERDUE, ["metric at or past the floor: retrain now"])
    reasons: list[str] = []
    age_capped = age_days is not None and age_days >= policy.max_age_days
    if age_capped:
        reasons.append(f"age {age_days:.0f} d reached the maximum {policy.max_age_days:.0f} d")
    if state.active:
        reasons.append(f"need {need:.2f} held above {policy.exit:.2f} after entering")
    if not (state.active or age_capped):
        if need >= policy.watch or state.streak > 0:
            reasons.append(
                f"need {need:.2f} >= watch {policy.watch:.2f}"
                if need >= policy.watch
                else f"{state.streak} of {policy.persistence} evaluations above {policy.enter:.2f}"
            )
            return Decision(Verdict.WATCH, reasons)
        return Decision(Verdict.HEALTHY, reasons)
    if days_since_retrain is not None and days_since_retrain < policy.min_interval_days:
        reasons.append(
            f"last retrain {days_since_retrain:.1f} d ago, minimum interval "
            f"{policy.min_interval_days:.0f} d"
        )
        return Decision(Verdict.WATCH, reasons)
    if (
        not age_capped
        and policy.min_gain_per_kgco2e is not None
        and cost.kgco2e is not None
        and cost.kgco2e > 0
        and gain is not None
    ):
        per_kg = gain / cost.kgco2e
        if per_kg < policy.min_gain_per_kgco2e:
            reasons.append(
                f"expected gain {gain:.4g} for {cost.kgco2e:.3g} kgCO2e = {per_kg:.4g}/kg, "
                f"below {policy.min_gain_per_kgco2e:.4g}/kg: not worth its carbon yet"
            )
            return Decision(Verdict.WATCH, reasons)
        reasons.append(f"expected gain {per_kg:.4g} per kgCO2e passes the cost test")
    return Decision(Verdict.RECOMMENDED, reasons)


@dataclass(frozen=True, slots=True)
class Efficiency:
    """What one retrain bought for its energy and carbon."""

    gain: float
    gain_per_kwh: float | None
    gain_per_kgco2e: float | None
    flagged: bool
    reason: str


def retrain_efficiency(
    *,
    before: float,
    after: float,
    higher_is_better: bool,
    energy_kwh: float,
    kgco2e: float,
    min_gain: float = 0.0,
    min_gain_per_kgco2e: float | None = None,
) -> Efficiency:
    """Gain (positive = better) per kWh and per kgCO2e; flagged when the gain is no more than
    ``min_gain`` or its gain per kgCO2e is under ``min_gain_per_kgco2e``."""
    gain = _oriented(after, higher_is_better) - _oriented(before, higher_is_better)
    per_kwh = gain / energy_kwh if energy_kwh > 0 else None
    per_kg = gain / kgco2e if kgco2e > 0 else None
    reason = ""
    if gain <= min_gain:
        reason = f"gained {gain:+.4g}, not more than {min_gain:.4g}"
    elif min_gain_per_kgco2e is not None and per_kg is not None and per_kg < min_gain_per_kgco2e:
        reason = f"{per_kg:.4g} per kgCO2e is under {min_gain_per_kgco2e:.4g}"
    return Efficiency(gain, per_kwh, per_kg, bool(reason), reason)


@dataclass(frozen=True, slots=True)
class Part:
    """One bar of the need-score breakdown: a score, its weight and what it adds."""

    component: str
    score: float
    weight: float
    contribution: float


def breakdown(*, perf: float, drift: float, age: float) -> list[Part]:
    """How R = max(s_perf, 0.5 s_drift + 0.3 s_age + 0.2 s_perf) is made, bar by bar: the three
    weighted parts, their sum, performance alone, and R (the larger of the two)."""
    weighted = W_DRIFT * drift + W_AGE * age + W_PERF * perf
    return [
        Part("drift", drift, W_DRIFT, W_DRIFT * drift),
        Part("age", age, W_AGE, W_AGE * age),
        Part("performance", perf, W_PERF, W_PERF * perf),
        Part("weighted sum", weighted, 1.0, weighted),
        Part("performance alone", perf, 1.0, perf),
        Part("need R", need_score(perf=perf, drift=drift, age=age), 1.0, max(perf, weighted)),
    ]
