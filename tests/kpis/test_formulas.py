"""The KPI formulas against the figures worked out by hand in docs/kpis.md ("Worked example B").

Pure: no database. The three rollup rows below are the table in the docs.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from greenkpi.kpis import formulas, registry

EMBODIED_PER_GPU_H = 150 / (4 * 8766)  # 0.00427789 kgCO2e


def example() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "team": ["vision", "vision", "nlp"],
            "energy_kwh": [2.0, 1.0, 4.0],
            "estimated_energy_kwh": [0.0, 0.5, 0.0],
            "pue": [1.3, 1.3, 1.0],
            "facility_energy_kwh": [2.6, 1.3, 4.0],
            "allocated_gpu_h": [1.0, 1.0, 2.0],
            "busy_gpu_h": [0.9, 0.2, 0.5],
            "util_known_gpu_h": [1.0, 1.0, 1.0],
            "sm_active_gpu_h": [0.6, 0.0, 0.0],
            "sm_known_gpu_h": [1.0, 0.0, 0.0],
            "idle_gpu_h": [0.0, 0.5, 0.0],
            "idle_energy_kwh": [0.0, 0.25, 0.0],
            "intensity_g_per_kwh": [41.44, 41.44, 384.4],
            "operational_location_kgco2e": [2.6 * 0.04144, 1.3 * 0.04144, 4.0 * 0.3844],
            "operational_market_kgco2e": [2.6 * 0.005, 1.3 * 0.005, 4.0 * 0.3844],
            "embodied_kgco2e": [EMBODIED_PER_GPU_H, EMBODIED_PER_GPU_H, 2 * EMBODIED_PER_GPU_H],
            "renewable_share": [0.2629, 0.2629, 0.2267],
            "cost": [0.52, 0.26, None],
            "currency": ["EUR", "EUR", ""],
        }
    )


def by_team(frame: pd.DataFrame) -> dict[str, dict]:
    return frame.set_index("team").to_dict("index")


def test_energy_sums_it_and_facility_energy_and_the_estimated_share():
    out = by_team(formulas.energy(example(), ["team"]))
    assert out["vision"]["energy_kwh"] == pytest.approx(3.0)
    assert out["vision"]["facility_energy_kwh"] == pytest.approx(3.9)
    assert out["vision"]["estimated_share"] == pytest.approx(1 / 6)
    assert out["nlp"]["estimated_share"] == 0.0
    [total] = formulas.energy(example()).to_dict("records")
    assert (total["energy_kwh"], total["facility_energy_kwh"]) == (
        pytest.approx(7.0),
        pytest.approx(7.9),
    )


def test_co2e_is_operational_plus_embodied_and_keeps_market_based_apart():
    out = by_team(formulas.co2e(example(), ["team"]))
    assert out["vision"]["operational_location_kgco2e"] == pytest.approx(0.161616)
    assert out["vision"]["embodied_kgco2e"] == pytest.approx(0.00855578, rel=1e-6)
    assert out["vision"]["total_kgco2e"] == pytest.approx(0.17017178, rel=1e-6)
    assert out["vision"]["operational_market_kgco2e"] == pytest.approx(0.0195)
    assert out["nlp"]["total_kgco2e"] == pytest.approx(1.54615578, rel=1e-6)


def test_sci_is_operational_plus_embodied_per_functional_unit():
    totals = formulas.co2e(example(), ["team"]).assign(functional_units=[2.0, 1.0])  # nlp, vision
    out = by_team(formulas.sci_per_unit(totals))
    assert out["nlp"]["sci_kgco2e_per_unit"] == pytest.approx(0.77307789, rel=1e-6)
    zero = formulas.sci_per_unit(totals.assign(functional_units=0.0))
    assert zero["sci_kgco2e_per_unit"].isna().all()  # no units: no SCI, not infinity


def test_average_gpu_utilization_is_weighted_by_gpu_hours_with_a_reading():
    out = by_team(formulas.gpu_utilization(example(), ["team"]))
    assert out["vision"]["avg_gpu_utilization"] == pytest.approx(0.55)
    assert out["nlp"]["avg_gpu_utilization"] == pytest.approx(0.5)  # 1 of its 2 GPU-h unread
    assert out["vision"]["avg_sm_activity"] == pytest.approx(0.6)
    assert math.isnan(out["nlp"]["avg_sm_activity"])  # no SM readings: unknown, not 0
    [total] = formulas.gpu_utilization(example()).to_dict("records")
    assert total["avg_gpu_utilization"] == pytest.approx(1.6 / 3.0)


def test_idle_gpu_hours_energy_and_co2e_per_owner():
    out = by_team(formulas.idle_waste(example(), ["team"]))
    assert out["vision"]["idle_gpu_h"] == pytest.approx(0.5)
    assert out["vision"]["idle_energy_kwh"] == pytest.approx(0.25)
    assert out["vision"]["idle_kgco2e"] == pytest.approx(0.013468)  # 0.25 x 1.3 x 41.44 g
    assert out["vision"]["idle_share"] == pytest.approx(0.25)
    assert out["nlp"]["idle_kgco2e"] == 0.0


def test_share_of_gpu_hours_under_30_percent_busy():
    out = by_team(formulas.low_utilization_share(example(), ["team"]))
    assert out["vision"]["low_util_share"] == pytest.approx(0.5)  # the 20 % hour
    assert out["nlp"]["low_util_share"] == 0.0
    [total] = formulas.low_utilization_share(example()).to_dict("records")
    assert total["low_util_share"] == pytest.approx(1 / 3)


def test_renewable_share_is_weighted_by_facility_energy_and_skips_unknown_rows():
    [total] = formulas.renewable_share(example()).to_dict("records")
    assert total["renewable_share"] == pytest.approx((3.9 * 0.2629 + 4.0 * 0.2267) / 7.9)
    assert total["renewable_share"] == pytest.approx(0.244571, rel=1e-5)
    unknown = example().assign(renewable_share=[0.2629, 0.2629, None])
    [total] = formulas.renewable_share(unknown).to_dict("records")
    assert total["renewable_share"] == pytest.approx(0.2629)


def test_cost_is_per_currency_and_energy_without_a_tariff_is_reported_not_zeroed():
    rows = formulas.cost(example()).set_index("currency").to_dict("index")
    assert rows["EUR"]["cost"] == pytest.approx(0.78)
    assert rows[""]["uncosted_energy_kwh"] == pytest.approx(4.0)
    assert rows["EUR"]["uncosted_energy_kwh"] == 0.0


def test_change_vs_previous_period_counts_missing_groups_as_zero():
    previous = example().assign(energy_kwh=[1.0, 1.0, 5.0])
    previous = pd.concat(
        [previous, previous.iloc[[0]].assign(team="research", energy_kwh=2.0)], ignore_index=True
    )
    out = by_team(registry.change_vs_previous("energy", example(), previous, ["team"]))
    assert out["vision"]["change_abs"] == pytest.approx(1.0)
    assert out["vision"]["change_rel"] == pytest.approx(0.5)
    assert out["nlp"]["change_rel"] == pytest.approx(-0.2)
    assert out["research"]["energy_kwh"] == 0.0
    assert out["research"]["change_rel"] == pytest.approx(-1.0)
    grown = formulas.change_vs_previous(
        pd.DataFrame({"x": [1.0]}), pd.DataFrame({"x": [0.0]}), value="x"
    )
    assert math.isnan(grown["change_rel"][0])  # from nothing: no percentage


def test_one_figures_change_is_the_frame_formula_on_scalars():
    # 3 kWh now against 2 before: +1 kWh, +50 %; 1 against 4: -3, -75 %; from 0: no percentage.
    assert formulas.change(3.0, 2.0) == (pytest.approx(1.0), pytest.approx(0.5))
    assert formulas.change(1.0, 4.0) == (pytest.approx(-3.0), pytest.approx(-0.75))
    absolute, relative = formulas.change(1.0, 0.0)
    assert absolute == 1.0 and math.isnan(relative)
    frame = formulas.change_vs_previous(
        pd.DataFrame({"x": [3.0]}), pd.DataFrame({"x": [2.0]}), value="x"
    )
    assert formulas.change(3.0, 2.0) == (frame["change_abs"][0], frame["change_rel"][0])


def test_every_registered_kpi_has_a_definition_and_computes_on_an_empty_period():
    empty = example().iloc[0:0]
    for kpi in registry.KPIS:
        assert kpi.slug and kpi.unit and kpi.description and kpi.formula
        assert kpi.column in kpi.compute(example(), ["team"]).columns
        kpi.compute(empty, ["team"])  # no rows is a valid period
    with pytest.raises(KeyError, match="no KPI"):
        registry.get("nope")


def test_cost_change_is_compared_within_a_currency():
    out = registry.change_vs_previous("cost", example(), example(), ["team"])
    eur = out[out["currency"] == "EUR"].set_index("team")
    assert eur.loc["vision", "change_abs"] == 0.0


def test_rows_summed_beforehand_carry_their_products_and_give_the_same_figures():
    """Daily rollups sum rows, so the row-wise products come summed: renewable kWh over kWh with
    a known share, and idle kWh x PUE x intensity. Vision's two rows as one, nlp's share unknown:
    the shares and idle CO2e must be those of the rows."""
    summed = pd.DataFrame(
        {
            "team": ["vision", "nlp"],
            "facility_energy_kwh": [3.9, 4.0],
            "renewable_kwh": [3.9 * 0.2629, 0.0],
            "renewable_known_kwh": [3.9, 0.0],
            "allocated_gpu_h": [2.0, 2.0],
            "idle_gpu_h": [0.5, 0.0],
            "idle_energy_kwh": [0.25, 0.0],
            "idle_location_kgco2e": [0.25 * 1.3 * 41.44 / 1000, 0.0],
        }
    )
    shares = by_team(formulas.renewable_share(summed, ["team"]))
    assert shares["vision"]["renewable_share"] == pytest.approx(0.2629)
    assert math.isnan(shares["nlp"]["renewable_share"])  # no known share: no data, not 0
    idle = by_team(formulas.idle_waste(summed, ["team"]))
    assert idle["vision"]["idle_kgco2e"] == pytest.approx(0.013468, rel=1e-4)
    rows = by_team(formulas.idle_waste(example(), ["team"]))
    assert idle["vision"]["idle_kgco2e"] == pytest.approx(rows["vision"]["idle_kgco2e"])
