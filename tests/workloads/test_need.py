"""The retraining-need score against hand-worked cases (docs/retraining.md, section 4)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from greenkpi.workloads import need
from greenkpi.workloads.need import NeedState, Policy, RetrainCost, Verdict

ROOT = Path(__file__).resolve().parents[2]
POLICY = Policy(floor=0.80, max_age_days=180, min_interval_days=7, persistence=3)
NO_COST = RetrainCost(None, None, 0)


def test_performance_decay_is_the_share_of_the_baseline_to_floor_span_lost():
    # (0.90 - 0.88) / (0.90 - 0.80) = 0.2
    assert need.perf_score(
        current=0.88, baseline=0.90, floor=0.80, higher_is_better=True
    ) == pytest.approx(0.2)
    assert need.perf_score(current=0.95, baseline=0.90, floor=0.80, higher_is_better=True) == 0.0
    assert need.perf_score(current=0.70, baseline=0.90, floor=0.80, higher_is_better=True) == 1.0
    # RMSE: lower is better; baseline 10, floor 12, now 11 -> half the span lost
    assert need.perf_score(
        current=11, baseline=10, floor=12, higher_is_better=False
    ) == pytest.approx(0.5)


def test_without_a_floor_decay_is_measured_against_a_ten_percent_fall():
    assert need.effective_floor(0.90, None, True) == pytest.approx(0.81)
    assert need.effective_floor(10.0, None, False) == pytest.approx(11.0)
    assert need.effective_floor(0.90, 0.85, True) == 0.85


def test_need_combines_drift_age_and_performance():
    # s_perf 0.2, s_drift 0.4, s_age 90/180 = 0.5:
    # R = max(0.2, 0.5 x 0.4 + 0.3 x 0.5 + 0.2 x 0.2) = max(0.2, 0.39) = 0.39
    age = need.age_score(age_days=90, max_age_days=180)
    assert age == 0.5
    assert need.need_score(perf=0.2, drift=0.4, age=age) == pytest.approx(0.39)
    # performance alone can trigger: R = max(0.7, 0.14) = 0.7
    assert need.need_score(perf=0.7, drift=0.0, age=0.0) == pytest.approx(0.7)
    # drift and age alone never reach 1: at most 0.5 + 0.3 = 0.8
    assert need.need_score(perf=0.0, drift=1.0, age=1.0) == pytest.approx(0.8)


def test_hysteresis_enters_after_k_points_above_enter_and_leaves_only_at_exit():
    needs = [0.65, 0.70, 0.50, 0.62, 0.64, 0.61, 0.50, 0.41, 0.40]
    expected = [
        (False, 1),
        (False, 2),
        (False, 0),  # a dip resets the persistence count
        (False, 1),
        (False, 2),
        (True, 3),  # third consecutive point at or above 0.6
        (True, 0),  # 0.50 is above exit 0.40: still needed
        (True, 0),
        (False, 0),  # at exit: cleared
    ]
    state = NeedState()
    seen = []
    for value in needs:
        state = need.step(state, need=value, past_floor=False, policy=POLICY)
        seen.append((state.active, state.streak))
    assert seen == expected
    assert need.fold(((n, False) for n in needs[:6]), POLICY) == NeedState(True, 3)


def test_the_floor_overrides_persistence_interval_and_cost():
    state = need.step(NeedState(), need=1.0, past_floor=True, policy=POLICY)
    assert state.active
    pricey = Policy(floor=0.80, min_gain_per_kgco2e=1e9)
    decision = need.decide(
        state=state,
        need=1.0,
        past_floor=True,
        age_days=1,
        days_since_retrain=0.5,  # inside the minimum interval
        gain=0.1,
        cost=RetrainCost(100.0, 30.0, 3),  # and far too expensive by the cost test
        policy=pricey,
    )
    assert decision.verdict is Verdict.OVERDUE


def _decide(state, value, **kwargs):
    args = {
        "past_floor": False,
        "age_days": 30.0,
        "days_since_retrain": None,
        "gain": None,
        "cost": NO_COST,
        "policy": POLICY,
    }
    args.update(kwargs)
    return need.decide(state=state, need=value, **args)


def test_verdicts_healthy_watch_and_recommended():
    assert _decide(NeedState(), 0.1).verdict is Verdict.HEALTHY
    assert _decide(NeedState(), 0.35).verdict is Verdict.WATCH  # above watch 0.3
    assert _decide(NeedState(False, 1), 0.65).verdict is Verdict.WATCH  # persisting, not yet k
    assert _decide(NeedState(True, 3), 0.65).verdict is Verdict.RECOMMENDED


def test_the_minimum_interval_holds_a_need_at_watch():
    decision = _decide(NeedState(True, 3), 0.7, days_since_retrain=3.0)
    assert decision.verdict is Verdict.WATCH
    assert "minimum interval" in decision.reasons[-1]
    assert _decide(NeedState(True, 3), 0.7, days_since_retrain=8.0).verdict is Verdict.RECOMMENDED


def test_the_expected_cost_is_the_median_of_past_training_runs():
    cost = need.expected_retrain_cost([(100.0, 20.0), (120.0, 30.0), (500.0, 200.0), (0.0, 0.0)])
    assert cost == RetrainCost(120.0, 30.0, 3)  # the unmeasured run is ignored
    assert need.expected_retrain_cost([]) == NO_COST


def test_the_cost_test_weighs_expected_gain_against_expected_carbon():
    # R = 0.7 on a 0.10 span: gain 0.07 points; median cost 30 kgCO2e -> 0.0023333 per kg
    gain = need.expected_gain(need=0.7, baseline=0.90, floor=0.80, higher_is_better=True)
    assert gain == pytest.approx(0.07)
    cost = RetrainCost(120.0, 30.0, 3)
    cheap_enough = Policy(floor=0.80, min_gain_per_kgco2e=0.002)
    too_dear = Policy(floor=0.80, min_gain_per_kgco2e=0.003)
    state = NeedState(True, 3)
    ok = _decide(state, 0.7, gain=gain, cost=cost, policy=cheap_enough)
    held = _decide(state, 0.7, gain=gain, cost=cost, policy=too_dear)
    assert ok.verdict is Verdict.RECOMMENDED
    assert held.verdict is Verdict.WATCH
    assert "0.002333/kg" in held.reasons[-1]
    # Unknown cost (no past run measured) never blocks a retrain.
    assert _decide(state, 0.7, gain=gain, cost=NO_COST, policy=too_dear).verdict is (
        Verdict.RECOMMENDED
    )


def test_the_staleness_cap_skips_persistence_and_cost_but_not_the_interval():
    cost = RetrainCost(120.0, 30.0, 3)
    dear = Policy(floor=0.80, max_age_days=180, min_gain_per_kgco2e=1.0)
    assert _decide(NeedState(), 0.3, age_days=200, cost=cost, gain=0.0, policy=dear).verdict is (
        Verdict.RECOMMENDED
    )
    assert _decide(NeedState(), 0.3, age_days=200, days_since_retrain=2, policy=dear).verdict is (
        Verdict.WATCH
    )


def test_retrain_efficiency_and_the_waste_flag():
    # 0.83 -> 0.91 for 120 kWh and 30 kgCO2e: +0.08, 0.000667 per kWh, 0.002667 per kg
    eff = need.retrain_efficiency(
        before=0.83, after=0.91, higher_is_better=True, energy_kwh=120, kgco2e=30, min_gain=0.01
    )
    assert eff.gain == pytest.approx(0.08)
    assert eff.gain_per_kwh == pytest.approx(0.08 / 120)
    assert eff.gain_per_kgco2e == pytest.approx(0.0026667, rel=1e-4)
    assert not eff.flagged
    waste = need.retrain_efficiency(
        before=0.83, after=0.835, higher_is_better=True, energy_kwh=120, kgco2e=30, min_gain=0.01
    )
    assert waste.flagged
    assert "not more than" in waste.reason
    dear = need.retrain_efficiency(
        before=0.83,
        after=0.91,
        higher_is_better=True,
        energy_kwh=120,
        kgco2e=30,
        min_gain_per_kgco2e=0.01,
    )
    assert dear.flagged
    # lower is better: RMSE 12 -> 10 is a gain of 2; no energy measured -> no ratio
    rmse = need.retrain_efficiency(
        before=12, after=10, higher_is_better=False, energy_kwh=0, kgco2e=0
    )
    assert (rmse.gain, rmse.gain_per_kwh, rmse.flagged) == (2, None, False)


def test_a_policy_without_hysteresis_is_refused():
    with pytest.raises(ValueError, match="hysteresis"):
        Policy(enter=0.5, exit=0.5)


def test_the_pure_score_and_drift_modules_type_check():
    result = subprocess.run(
        [
            *(sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent"),
            *("--no-incremental", "greenkpi/workloads/need.py", "greenkpi/workloads/drift.py"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
