"""The one unit rule (greenkpi/lib/units.py): significant digits, kg/t for totals, g for figures
per functional unit, and SCI at the scale of the unit a run recorded (issue 12, parts 3 and 4)."""

from __future__ import annotations

import math

import pytest

from greenkpi.lib import units


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (0, "0"),
        (4009.8, "4,010"),
        (312.26, "312"),
        (45.63, "45.6"),
        (3.8149, "3.81"),
        (0.012345, "0.0123"),
        (0.0012345, "0.00123"),
        (0.000033, "3.30e-5"),  # never 0.0000330
        (9.996, "10.0"),
        (1_234_567.8, "1,234,568"),
        (-2.5, "-2.50"),
        (None, "\u2013"),
        (math.nan, "\u2013"),
    ],
)
def test_figures_keep_three_significant_digits_and_every_integer_digit(value, written):
    assert units.significant(value) == written


def test_no_figure_is_written_with_six_decimals_of_noise():
    for value in (0.123456789, 1.23456789, 12.3456789, 123.456789, 1234.56789):
        decimals = units.significant(value).partition(".")[2]
        assert len(decimals) <= 3, value


@pytest.mark.parametrize(
    ("kg", "written"),
    [
        (4009.8, "4.01 t"),  # the overview's 4,009.8 kg and the carbon page's t agree
        (3814.0, "3.81 t"),
        (999.4, "999 kg"),
        (1000.0, "1.00 t"),
        (0.5, "0.500 kg"),  # a total stays in kg below 1 t (grams are for per-unit figures)
        (0.0123, "0.0123 kg"),
        (0.00065, "0.650 g"),  # ... except under 10 g: never six decimals of kg
        (0, "0 kg"),
    ],
)
def test_a_carbon_total_is_kg_below_one_tonne_and_t_from_there(kg, written):
    assert str(units.co2e_mass(kg)) == written


@pytest.mark.parametrize(
    ("kg", "written"),
    [(0.000153, "0.153 g"), (0.5, "500 g"), (1.0, "1.00 kg"), (312.26, "312 kg"), (2500, "2.50 t")],
)
def test_a_figure_per_unit_is_in_grams_under_one_kg_and_never_micro_kg(kg, written):
    shown = str(units.co2e_per_unit(kg))
    assert shown == written
    assert "\u00b5" not in shown and "e-" not in shown


@pytest.mark.parametrize(
    ("unit", "kg_per_unit", "written"),
    [
        # D2: a training run of 312.26 kg is 312 kg per run, never "312260.18 per 1,000 units".
        ("run", 312.26018, "312 kgCO2e per run"),
        ("runs", 312.26018, "312 kgCO2e per run"),
        ("inference", 0.00000153, "1.53 gCO2e per 1,000 inferences"),
        ("requests", 0.0042, "4.20 kgCO2e per 1,000 requests"),
        ("token", 0.000000021, "21.0 gCO2e per 1M tokens"),
        ("image", 0.00002, "20.0 gCO2e per 1,000 images"),
        ("epoch", 1.5, "1.50 kgCO2e per epoch"),  # a unit nobody listed: per one, unscaled
        ("", 0.25, "250 gCO2e per unit"),
    ],
)
def test_sci_is_shown_per_the_functional_unit_the_run_recorded(unit, kg_per_unit, written):
    assert str(units.sci(kg_per_unit, unit)) == written


def test_sci_without_a_unit_count_is_no_data_not_zero():
    assert units.sci(None, "run").number == "\u2013"


def test_the_carbon_names_are_written_once():
    from greenkpi.kpis import labels

    names = [q.name for q in labels.QUANTITIES]
    assert names == [
        "Scope 2 location-based",
        "Scope 2 market-based",
        "Scope 3 cat. 3 (upstream and T&D losses)",
        "embodied (Scope 3 cat. 2)",
        "total (SCI numerator)",
    ]
    assert labels.EMBODIED.title == "Embodied (Scope 3 cat. 2)"
    assert labels.TOTAL.tile == "CO2e, total (SCI numerator)"
    assert labels.SCOPE2_LOCATION.csv_header == "Scope 2 location-based (kgCO2e)"
