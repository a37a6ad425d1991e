"""The six detectors and the ledger's maths against the hand-worked examples of docs/advice.md.

Pure functions over plain frames: no database. Each example has a case that must NOT fire, so a
detector that fires on everything (or never) fails.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from greenkpi.recommendations import constants as c
from greenkpi.recommendations import detectors as d
from greenkpi.recommendations import ledger

TEAMS = {1: "vision", 2: "platform", 3: "recsys"}
YEAR_PER_100_H = 8766 / 100  # 87.66
YEAR_PER_WINDOW = 8766 / 672  # 28 days


def usage(rows: list[dict]) -> pd.DataFrame:
    base = {
        "bucket_utc": datetime(2026, 3, 1),
        "team_id": 1,
        "model_key": "m",
        "device_id": 1,
        "currency": "EUR",
        "gpu_family": "A100",
        "energy_kwh": 0.0,
        "allocated_gpu_h": 0.0,
        "busy_gpu_h": 0.0,
        "util_known_gpu_h": 0.0,
        "idle_gpu_h": 0.0,
        "idle_energy_kwh": 0.0,
        "operational_location_kgco2e": 0.0,
        "operational_market_kgco2e": 0.0,
        "cost": float("nan"),
    }
    return pd.DataFrame([{**base, **row} for row in rows])


def test_right_size_an_a100_ten_percent_busy_moves_to_one_l4():
    # One A100, 100 GPU-hours (four rows of 25), 10 % busy in each, 9 kWh measured (90 W).
    frame = usage(
        [
            {"allocated_gpu_h": 25, "util_known_gpu_h": 25, "busy_gpu_h": 2.5, "energy_kwh": 2.25}
            for _ in range(4)
        ]
    )
    (found,) = d.right_size(frame, teams=TEAMS, hours=100)
    # work = 10 busy GPU-h x 312 / 121 = 25.785124 L4-hours; ceil(25.785 / (100 x 0.8)) = 1 L4;
    # E_L4 = (1 x 100 x 16 + 25.785124 x (72 - 16)) / 1000 = 3.043967 kWh; saving 5.956033 kWh
    # per 100 h, x 87.66 = 522.1058 kWh a year.
    assert found.evidence["target_gpus"] == 1
    assert found.evidence["target_kwh"] == pytest.approx(3.043967, abs=1e-6)
    assert found.annual_kwh == pytest.approx(5.956033 * YEAR_PER_100_H, rel=1e-6)
    assert found.annual_kwh == pytest.approx(522.1058, abs=1e-3)
    assert (found.owner, found.subject, found.tactic) == (
        "vision/m",
        "gpu A100",
        "Use Energy-Efficient Hardware",
    )
    priced = found.priced(d.Factors(0.05, 0.01, 0.2, "EUR"))
    assert priced.annual_location_kg == pytest.approx(522.1058 * 0.05, abs=1e-4)
    assert priced.annual_market_kg == pytest.approx(5.221058, abs=1e-5)
    assert priced.annual_cost == pytest.approx(104.42116, abs=1e-4)


def test_right_size_does_not_fire_on_busy_small_or_mostly_busy_hours():
    busy = usage(
        [{"allocated_gpu_h": 100, "util_known_gpu_h": 100, "busy_gpu_h": 50, "energy_kwh": 25}]
    )
    small = usage(
        [{"allocated_gpu_h": 100, "util_known_gpu_h": 100, "busy_gpu_h": 5, "gpu_family": "L4"}]
    )
    # Mean 23 % busy, but only 40 % of the GPU-hours under 30 %: not "most of the time".
    split = usage(
        [
            {"allocated_gpu_h": 40, "util_known_gpu_h": 40, "busy_gpu_h": 2, "energy_kwh": 4},
            {"allocated_gpu_h": 60, "util_known_gpu_h": 60, "busy_gpu_h": 21, "energy_kwh": 9},
        ]
    )
    # A host's idle time between runs (its default team, no model): nobody's to right-size.
    unowned = usage(
        [{"allocated_gpu_h": 100, "util_known_gpu_h": 100, "busy_gpu_h": 1, "energy_kwh": 7,
          "model_key": ""}]
    )  # fmt: skip
    for frame in (busy, small, split, unowned):
        assert d.right_size(frame, teams=TEAMS, hours=100) == []


def test_idle_allocations_of_a_notebook_pool_and_a_slurm_account():
    owners = pd.DataFrame(
        [
            # 4 GPUs held for 100 h, 96 % idle: 30 kWh of idle energy.
            {"team_id": 2, "model_key": "notebook-pool", "allocated_gpu_h": 400,
             "idle_gpu_h": 384, "idle_energy_kwh": 30.0, "devices": 4},
            # a service 30 % idle: not mostly idle
            {"team_id": 1, "model_key": "serve", "allocated_gpu_h": 400,
             "idle_gpu_h": 120, "idle_energy_kwh": 9.0, "devices": 4},
        ]
    )  # fmt: skip
    accounts = pd.DataFrame(
        [
            {"account": "physics", "team_id": 1, "jobs": 3, "gpu_h": 200.0,
             "wasted_gpu_h": 60.0, "wasted_energy_kwh": 6.0},
            {"account": "chem", "team_id": 1, "jobs": 1, "gpu_h": 40.0,
             "wasted_gpu_h": 20.0, "wasted_energy_kwh": 2.0},  # under 24 GPU-h
        ]
    )  # fmt: skip
    pool, account = d.idle_allocations(owners, accounts, teams=TEAMS, hours=100)
    # A service that answered requests: its idle seconds are gaps between requests.
    assert [f.owner for f in d.idle_allocations(
        owners, accounts.iloc[:0], teams=TEAMS, hours=100, serving=[(2, "notebook-pool")]
    )] == []  # fmt: skip
    assert (pool.owner, pool.subject) == ("platform/notebook-pool", "allocation")
    assert pool.evidence["idle_share"] == pytest.approx(0.96)
    assert pool.annual_kwh == pytest.approx(30 * YEAR_PER_100_H)  # 2,629.8 kWh
    assert (account.owner_kind, account.owner) == ("account", "physics")
    assert account.annual_kwh == pytest.approx(6 * YEAR_PER_100_H)  # 525.96 kWh
    assert pool.tactic == "Use Energy-Aware Scheduling"


def test_retraining_cadence_of_a_nightly_retrain_that_gains_nothing():
    # Ten retrains in 28 days, 2.5 kWh each: 7 flagged (no gain), 1 under the policy's 0.01
    # points per kgCO2e (0.001 for 0.5 kg = 0.002), 2 useful -> 8 of 10 under the floor;
    # k = floor(10 / 2) = 5; saving 25 x (1 - 1/5) = 20 kWh in the window.
    def retrain(gain, flagged, floor=0.01, model="ranker", team=3, kwh=2.5):
        return {"team_id": team, "model_key": model, "gain": gain, "energy_kwh": kwh,
                "kgco2e": 0.5, "flagged": flagged, "floor_per_kg": floor}  # fmt: skip

    rows = [retrain(-0.001, True) for _ in range(7)]
    rows += [retrain(0.001, False), retrain(0.02, False), retrain(0.03, False)]
    # Three retrains only (not recurring); four that gain little but the model has no floor.
    rows += [retrain(0.0, True, model="rare", team=1) for _ in range(3)]
    rows += [retrain(1e-6, False, floor=float("nan"), model="big", team=1) for _ in range(4)]
    (found,) = d.retraining_cadence(pd.DataFrame(rows), teams=TEAMS, hours=672)
    assert found.owner == "recsys/ranker"
    assert (found.evidence["below_floor"], found.evidence["useful"]) == (8, 2)
    assert found.evidence["factor"] == 5
    assert found.evidence["interval_days"] == pytest.approx(2.8)
    assert "every 14.0 days instead of every 2.8 (x5)" in found.action
    assert found.annual_kwh == pytest.approx(20 * YEAR_PER_WINDOW)  # 260.89 kWh
    assert found.tactic == "Use Informed Adaptation"


def test_shift_folds_the_carbon_aware_advice_in_per_year():
    advice = d.ShiftAdvice(3, "ranker", "nightly-retrain", 28, "paris-dc", 20, "berlin-dc", 12,
                           1.785, 0.9154)  # fmt: skip
    nothing = d.ShiftAdvice(3, "other", "nightly", 28, "paris-dc", 0, "paris-dc", 0, 0.0, 0.0)
    (found,) = d.shift([advice, nothing], teams=TEAMS, hours=672)
    # docs/carbon-advice.md's example: 1.785 kg per run, 28 runs in 28 days -> x 8766 / 672.
    assert found.annual_location_kg == pytest.approx(1.785 * 28 * YEAR_PER_WINDOW)  # 651.97 kg
    assert found.annual_kwh == 0.0 and found.annual_market_kg is None
    assert found.action == "Start nightly-retrain at 12:00 UTC at berlin-dc"


def test_always_on_serving_with_near_zero_requests():
    serving = pd.DataFrame(
        [
            {"team_id": 1, "model_key": "tiny", "run_hours": 24, "requests": r, "energy_kwh": 5.0}
            for r in (100, 200, 5000, 50)  # 4.2, 8.3, 208 and 2.1 requests an hour
        ]
        + [
            {"team_id": 1, "model_key": "busy", "run_hours": 24, "requests": 1e6, "energy_kwh": 9}
            for _ in range(4)
        ]
    )
    (found,) = d.always_on_serving(serving, teams=TEAMS, hours=96)
    assert found.owner == "vision/tiny"
    assert found.evidence["near_zero_runs"] == 3
    assert found.annual_kwh == pytest.approx(15 * 8766 / 96)  # 1,369.69 kWh


def test_hyperparameter_search_finds_a_grid_not_a_mixed_bag():
    start = datetime(2026, 3, 1, tzinfo=UTC)

    def runs(model: str, n: int, energy) -> list[dict]:
        return [
            {"team_id": 1, "model_key": model, "started_at": start + timedelta(hours=i),
             "run_hours": 1.0, "energy_kwh": energy(i), "requests": 0.0}
            for i in range(n)
        ]  # fmt: skip

    frame = pd.DataFrame(
        runs("grid", 12, lambda i: 3.0)
        + runs("mixed", 12, lambda i: 1.0 + 4.0 * (i % 2))  # cv 0.67: not equal budgets
        + runs("few", 9, lambda i: 3.0)
    )
    (found,) = d.hyperparameter_search(frame, teams=TEAMS, hours=672)
    assert (found.owner, found.evidence["runs"]) == ("vision/grid", 12)
    assert found.annual_kwh == pytest.approx(36 * 0.5 * YEAR_PER_WINDOW)  # 234.80 kWh
    assert found.tactic == "Set Energy Consumption as a Model Constraint"


def test_factors_are_ratios_of_the_owners_sums_in_its_main_currency():
    frame = usage(
        [
            {"energy_kwh": 2.0, "operational_location_kgco2e": 0.1,
             "operational_market_kgco2e": 0.02, "cost": 0.5, "currency": "EUR"},
            {"energy_kwh": 1.0, "operational_location_kgco2e": 0.2,
             "operational_market_kgco2e": 0.01, "cost": 9.0, "currency": "PLN"},
        ]
    )  # fmt: skip
    (factors,) = d.factors_of(frame).values()
    assert factors.location_kg_per_kwh == pytest.approx(0.1)  # 0.3 / 3
    assert factors.market_kg_per_kwh == pytest.approx(0.01)
    assert (factors.cost_per_kwh, factors.currency) == (pytest.approx(0.25), "EUR")


def test_ranked_by_annual_kwh_then_kgco2e():
    a = d.Finding("shift", "model", "a", "s", 1, "a", "", "", 0.0, annual_location_kg=50)
    b = d.Finding("right-size", "model", "b", "s", 1, "b", "", "", 10.0)
    e = d.Finding("shift", "model", "e", "s", 1, "e", "", "", 0.0, annual_location_kg=70)
    assert [f.owner for f in d.ranked([a, b, e])] == ["b", "e", "a"]


def test_ledger_counterfactual_and_its_uncertainty():
    day = date(2026, 3, 1)
    before = [
        ledger.Day(day + timedelta(i), kwh, 2.0, 0.0, 0.0, devices=4, family="H100")
        for i, kwh in enumerate((10.0, 12.0, 8.0))
    ]
    after = [
        ledger.Day(day + timedelta(5 + i), 6.0, 2.0, 0.6, 0.3, devices=2, family="H100")
        for i in range(2)
    ]
    assert ledger.change_day("idle-allocation", before, after) == after[0]
    assert ledger.change_day("right-size", before, after) is None  # still H100s
    got = ledger.realised(before, after)
    # rate 30 / 6 = 5 kWh per unit; counterfactual 5 x 4 = 20; measured 12; saved 8 kWh.
    # Daily rates 5, 6, 4: sd 1, standard error 1 / sqrt(3) = 0.57735, x 4 units = 2.3094 kWh.
    assert (got.kwh_per_unit_before, got.counterfactual_kwh, got.actual_kwh) == (5.0, 20.0, 12.0)
    assert got.saved_kwh == 8.0
    assert got.uncertainty_kwh == pytest.approx(2.309401, abs=1e-6)
    assert got.saved_location_kg == pytest.approx(0.8)  # 8 kWh x (1.2 kg / 12 kWh)
    assert got.saved_market_kg == pytest.approx(0.4)
    assert ledger.realised(before, []) is None
    # One baseline day: no spread to estimate, the whole saving is the uncertainty.
    assert ledger.realised(before[:1], after).uncertainty_kwh == pytest.approx(20 - 12)


def test_constants_name_a_power_model_for_each_family():
    assert c.gpu_family("NVIDIA H100 80GB HBM3") == "H100"
    assert c.gpu_family("NVIDIA A100-SXM4-40GB") == "A100"
    assert c.gpu_family("Tesla T4") is None
    assert set(d.TACTICS) == set(d.DETECTORS)


def test_ledger_sees_a_retraining_cadence_change_and_books_energy_per_day():
    day = date(2026, 3, 1)
    # Retrains every day for 6 days (2 kWh each, on days 0-5), decided on day 6; then one
    # retrain a week: day 7, then day 14. The median gap before is 1 day: the change shows on
    # the first day more than 1.5 days after the last retrain (day 5): day 7.
    before = [ledger.Day(day + timedelta(i), 2.0, 1.0, 0.2, 0.1) for i in range(6)]
    after = [
        ledger.Day(
            day + timedelta(i), 2.0 if i in (7, 14) else 0.0, 1.0, 0.2 if i in (7, 14) else 0, 0
        )
        for i in range(6, 15)  # the decision day counts as after for a cadence
    ]
    changed = ledger.change_day("retraining-cadence", before, after)
    assert changed is not None and changed.day == day + timedelta(7)
    got = ledger.realised(before, [d for d in after if d.day >= changed.day])
    # 2 kWh a day before; 8 days since the change (7-14) -> counterfactual 16, measured 4: 12 saved.
    assert (got.counterfactual_kwh, got.actual_kwh, got.saved_kwh) == (16.0, 4.0, 12.0)
    assert got.uncertainty_kwh == 0.0  # every day before cost the same
    daily = [ledger.Day(day + timedelta(i), 2.0, 1.0, 0.2, 0.1) for i in range(6, 9)]
    assert ledger.change_day("retraining-cadence", before, daily) is None  # still daily
