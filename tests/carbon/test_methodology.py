"""The SCI formulas and shipped grid data, against hand-worked values (docs/kpis.md, example A)."""

from __future__ import annotations

import pytest

from greenkpi.carbon import annual
from greenkpi.carbon import methodology as m


def test_operational_carbon_is_energy_times_pue_times_intensity():
    # 1 kWh at the GPU, PUE 1.3, France 41.44 g/kWh -> 53.872 g
    assert m.operational_kgco2e(energy_kwh=1.0, pue=1.3, intensity_g_per_kwh=41.44) == (
        pytest.approx(0.053872)
    )
    assert m.energy_kwh(3.6e6) == 1.0


def test_embodied_carbon_reproduces_the_sci_specification_example():
    # SCI spec: a 1,000 kg device with a 4-year life, reserved for 1 hour -> ~28.5 g
    grams = 1000 * m.embodied_kgco2e(device_kgco2e=1000, seconds_used=3600, lifetime_years=4)
    assert grams == pytest.approx(28.519, abs=1e-3)
    # one H100 (150 kg default) for one hour, half of it reserved
    half = m.embodied_kgco2e(device_kgco2e=150, seconds_used=3600, lifetime_years=4, share=0.5)
    assert half == pytest.approx(150 / 35_064 / 2)
    with pytest.raises(ValueError, match="lifetime"):
        m.embodied_kgco2e(device_kgco2e=1, seconds_used=1, lifetime_years=0)


def test_sci_per_functional_unit():
    assert m.sci_per_unit(operational_kgco2e=1.5376, embodied_kgco2e=0.0085558, units=2) == (
        pytest.approx(0.7730779)
    )
    with pytest.raises(ValueError, match="functional unit"):
        m.sci_per_unit(operational_kgco2e=1, embodied_kgco2e=0, units=0)


def test_embodied_defaults_are_documented_per_device_kind():
    assert m.embodied_default_kgco2e("gpu") == 150.0
    # since gk-2026.2 the whole host's figure (SERVER_CLASSES) carries CPUs, DRAM and chassis
    assert m.embodied_default_kgco2e("cpu") == 0.0
    assert m.embodied_default_kgco2e("host") == 0.0
    assert m.embodied_default_kgco2e("dram") == 0.0
    assert m.embodied_default_kgco2e("toaster") == 0.0


def test_the_shipped_annual_table_has_countries_subnational_zones_and_the_world():
    table = annual.table()
    assert len([z for z in table if len(z) == 2]) >= 200
    france = table["FR"]
    assert (france.intensity_g_per_kwh, france.year, france.basis) == (41.44, 2025, "lifecycle")
    assert france.renewable_share == pytest.approx(0.2629)
    assert table["US-CA"].basis == "direct"  # eGRID: stated, not mixed up silently
    assert table["CN-BJ"].intensity_g_per_kwh == 555.4
    assert table["WORLD"].intensity_g_per_kwh == 458.29
    assert all(f.source in annual.SOURCES for f in table.values())
    assert all(0 <= f.intensity_g_per_kwh < 2000 for f in table.values())


def test_zones_fall_back_to_their_country_then_to_the_world():
    figure, is_default = annual.annual_for("US-CAL-CISO")  # an Electricity Maps zone
    assert (figure.zone, is_default) == ("US", False)
    figure, _ = annual.annual_for("us-ca")
    assert figure.zone == "US-CA"
    assert figure.renewable_share == annual.table()["US"].renewable_share  # the country's share
    figure, is_default = annual.annual_for("XX-NOWHERE")
    assert (figure.zone, is_default) == ("WORLD", True)
    assert annual.annual_for(None)[1] is True
