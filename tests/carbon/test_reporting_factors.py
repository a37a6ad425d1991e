"""Issue 14, items 1, 2 and 4, hand-worked (docs/kpis.md, "Reporting").

Item 1 — France's shipped generation mix (OWID 2023, TWh): coal 2.16, gas 31.43, oil 9.71,
nuclear 335.65, hydro 53.19, wind 48.61, solar 23.26, bioenergy 9.5, other renewable 0.6;
total 514.11. Per-fuel factors (direct / lifecycle g/kWh): coal 760/820, gas 370/490,
oil 406/650, nuclear 0/12, hydro 0/24, wind 0/11, solar 0/45, bioenergy 0/230, other 0/38.
  direct    = (2.16x760 + 31.43x370 + 9.71x406) / 514.11 = (1641.6 + 11629.1 + 3942.26) / 514.11
            = 17212.96 / 514.11 = 33.4811 g/kWh
  lifecycle = (1771.2 + 15400.7 + 6311.5 + 4027.8 + 1276.56 + 534.71 + 1046.7 + 2185 + 22.8)
            / 514.11 = 32576.97 / 514.11 = 63.3658 g/kWh
  cat. 3    = (63.3658 - 33.4811) + 0.0687 x 63.3658 = 29.8847 + 4.3532 = 34.2379 g/kWh
(T&D loss rate 6.87 %: the World value for 2022 of WDI EG.ELC.LOSS.ZS, 6.87112576586161 %)
1 MWh at PUE 1: Scope 2 location-based 33.4811 kgCO2e, Scope 3 cat. 3 34.2379 kgCO2e.

Item 2 — a site with a 60 % PPA at 0 g/kWh and a residual mix of 50 g/kWh:
  0.6 x 0 + 0.4 x 50 = 20 g/kWh -> 1 MWh: 20 kgCO2e market-based. Without a residual mix the rest
  takes the grid average: 0.4 x 33.4811 = 13.3924 g/kWh, labelled "ctr+grid".

Item 4 — an 8-GPU-class host (no class set, reports GPUs): chassis 1000 + 1 extra CPU 100 +
DRAM (1024 - 16) GB x 533/384 = 1399.125 + 4 SSDs 400 = 2899.125 kgCO2e over 4 years.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from greenkpi.carbon import methodology as m
from greenkpi.carbon.annual import annual_for, location_factors
from greenkpi.carbon.models import GridIntensityHourly, MarketFactor, ResidualMix
from greenkpi.carbon.selectors import intensities_for, market_factors_for

H0 = datetime(2026, 3, 2, 10, tzinfo=UTC)
FR_DIRECT = 17212.96 / 514.11
FR_LIFECYCLE = 32576.97 / 514.11
FR_UPSTREAM = (FR_LIFECYCLE - FR_DIRECT) + 0.0687 * FR_LIFECYCLE


def test_a_known_mix_gives_the_hand_worked_direct_and_upstream_factors():
    half = m.mix_figures({"coal": 1.0, "wind": 1.0})
    assert half is not None
    assert half.direct_g_per_kwh == pytest.approx(380.0)  # (760 + 0) / 2
    assert half.lifecycle_g_per_kwh == pytest.approx(415.5)  # (820 + 11) / 2
    assert half.fossil_share == 0.5 and half.renewable_share == 0.5 and half.nuclear_share == 0
    # 35.5 upstream + 6.87 % T&D losses of 415.5 = 35.5 + 28.54485
    assert m.TD_LOSS_DEFAULT == 0.0687  # WDI EG.ELC.LOSS.ZS, World 2022 (6.8711 %), 3 digits
    assert m.upstream_g_per_kwh(
        direct=380.0, lifecycle=415.5, td_loss=m.TD_LOSS_DEFAULT
    ) == pytest.approx(64.04485)
    assert m.mix_figures({}) is None

    france = location_factors(annual_for("FR")[0])
    assert france.method == m.IntensityMethod.MIX
    assert france.year == 2023
    assert france.scope2_g_per_kwh == pytest.approx(33.4811, abs=1e-4)
    assert france.scope2_g_per_kwh == pytest.approx(FR_DIRECT)
    assert france.lifecycle_g_per_kwh == pytest.approx(63.3658, abs=1e-4)
    assert france.upstream_g_per_kwh == pytest.approx(34.2379, abs=1e-4)
    assert france.nuclear_share == pytest.approx(335.65 / 514.11)
    assert "CC BY 4.0" in france.detail and "IPCC" in france.detail
    # 1 MWh (1,000 kWh) at PUE 1
    assert m.operational_kgco2e(
        energy_kwh=1000.0, pue=1.0, intensity_g_per_kwh=france.scope2_g_per_kwh
    ) == pytest.approx(33.4811, abs=1e-4)
    assert m.operational_kgco2e(
        energy_kwh=1000.0, pue=1.0, intensity_g_per_kwh=france.upstream_g_per_kwh
    ) == pytest.approx(34.2379, abs=1e-4)


def test_published_direct_zones_and_zones_without_a_mix_say_their_method():
    california = location_factors(annual_for("US-CA")[0])  # eGRID2023, direct
    assert california.method == m.IntensityMethod.PUBLISHED
    assert california.scope2_g_per_kwh == annual_for("US-CA")[0].intensity_g_per_kwh
    assert california.lifecycle_g_per_kwh > california.scope2_g_per_kwh  # scaled by the US mix
    world = location_factors(annual_for(None)[0])
    assert world.method == m.IntensityMethod.MIX  # the sum of the countries' mixes


@pytest.mark.django_db
def test_hourly_series_keep_the_providers_basis():
    GridIntensityHourly.objects.create(
        zone="DE", hour=H0, intensity_lifecycle_g_per_kwh=400.0, intensity_direct_g_per_kwh=350.0
    )
    GridIntensityHourly.objects.create(
        zone="DE", hour=H0 + timedelta(hours=1), intensity_lifecycle_g_per_kwh=420.0
    )
    direct = intensities_for(zones=["DE"], hour=H0)["DE"]
    assert (direct.intensity_g_per_kwh, direct.method) == (350.0, "hr-dir")
    assert direct.upstream_g_per_kwh == pytest.approx(77.48)  # 50 + 0.0687 x 400
    lifecycle = intensities_for(zones=["DE"], hour=H0 + timedelta(hours=1))["DE"]
    assert (lifecycle.intensity_g_per_kwh, lifecycle.method) == (420.0, "hr-lca")
    assert lifecycle.upstream_g_per_kwh == pytest.approx(28.854)  # T&D only: 0.0687 x 420


@pytest.mark.django_db
def test_a_60_percent_ppa_and_a_residual_mix_give_the_market_figure(acme):
    site = acme.paris  # zone FR
    MarketFactor.objects.create(
        site=site,
        kind="ppa",
        valid_from=H0 - timedelta(days=30),
        intensity_g_per_kwh=0.0,
        share=0.6,
        volume_mwh=120.0,
    )
    grid = intensities_for(zones=["FR"], hour=H0)
    no_residual = market_factors_for(sites={site.pk: "FR"}, hour=H0, intensities=grid)[site.pk]
    assert no_residual.source == m.MarketSource.CONTRACT_GRID
    assert no_residual.g_per_kwh == pytest.approx(0.4 * FR_DIRECT)  # 13.3924
    assert no_residual.covered_share == pytest.approx(0.6)

    ResidualMix.objects.create(zone="FR", year=2025, intensity_g_per_kwh=50.0, source="test")
    market = market_factors_for(sites={site.pk: "FR"}, hour=H0, intensities=grid)[site.pk]
    assert market.source == m.MarketSource.CONTRACT_RESIDUAL  # 2025 is the latest year <= 2026
    assert market.g_per_kwh == pytest.approx(20.0)  # 0.6 x 0 + 0.4 x 50
    assert m.operational_kgco2e(
        energy_kwh=1000.0, pue=1.0, intensity_g_per_kwh=market.g_per_kwh
    ) == pytest.approx(20.0)

    # instruments never cover more than all of it: a second 60 % only tops up to 100 %
    MarketFactor.objects.create(
        site=site, valid_from=H0 - timedelta(days=1), intensity_g_per_kwh=100.0, share=0.6
    )
    both = market_factors_for(sites={site.pk: "FR"}, hour=H0, intensities=grid)[site.pk]
    # the later-starting one first: 0.6 x 100 + 0.4 x 0 = 60
    assert (both.source, both.g_per_kwh) == (m.MarketSource.CONTRACT, pytest.approx(60.0))


@pytest.mark.django_db
def test_without_instruments_or_residual_the_market_figure_is_the_labelled_grid_average(acme):
    grid = intensities_for(zones=["FR"], hour=H0)
    plain = market_factors_for(sites={acme.paris.pk: "FR"}, hour=H0, intensities=grid)
    assert plain[acme.paris.pk].source == m.MarketSource.LOCATION
    assert plain[acme.paris.pk].g_per_kwh == grid["FR"].intensity_g_per_kwh
    ResidualMix.objects.create(zone="FR", year=2026, intensity_g_per_kwh=55.5, source="test")
    residual = market_factors_for(sites={acme.paris.pk: "FR"}, hour=H0, intensities=grid)
    assert (residual[acme.paris.pk].source, residual[acme.paris.pk].g_per_kwh) == (
        m.MarketSource.RESIDUAL,
        55.5,
    )


HOST_KG = 1000.0 + 100.0 + (1024 - 16) * 533.0 / 384.0 + 4 * 100.0  # 2899.125
LIFE_S = 4 * 31_557_600


def test_the_server_classes_are_the_documented_sums():
    parts = m.SERVER_CLASSES["gpu-8"][1]
    assert parts == pytest.approx(
        {"chassis": 1000.0, "cpu": 100.0, "dram": 1399.125, "storage": 400.0}
    )
    assert sum(parts.values()) == pytest.approx(HOST_KG)
    from greenkpi.inventory.models import Host

    assert [c for c, _ in Host._meta.get_field("server_class").choices] == list(m.SERVER_CLASSES)
    # 1000 + 100 + (384 - 16) x 533/384 + 2 x 100
    assert sum(m.SERVER_CLASSES["cpu-2s"][1].values()) == pytest.approx(1810.7917, abs=1e-4)


@pytest.mark.django_db
def test_residual_mixes_import_all_rows_or_none_with_line_numbers():
    from greenkpi.carbon.services import ImportFailed, residual_mix_import_csv

    bad = "zone,year,intensity_g_per_kwh,source\nFR,2025,50,AIB 2025\nDE,20x5,700,AIB 2025\n"
    with pytest.raises(ImportFailed, match="line 3"):
        residual_mix_import_csv(text=bad)
    assert not ResidualMix.objects.exists()
    with pytest.raises(ImportFailed, match="missing column"):
        residual_mix_import_csv(text="zone,year\nFR,2025\n")
    good = "zone,year,intensity_g_per_kwh,source,licence\nfr,2025,50,AIB 2025,terms\n"
    [mix] = residual_mix_import_csv(text=good)
    assert (mix.zone, mix.year, mix.intensity_g_per_kwh) == ("FR", 2025, 50.0)
    residual_mix_import_csv(text=good.replace(",50,", ",51,"))  # a re-import updates
    assert ResidualMix.objects.get().intensity_g_per_kwh == 51.0


def test_a_contracted_volume_caps_each_hour_at_its_even_part():
    """120 MWh over 30 days (720 h) -> at most 166.667 kWh an hour; an open-ended 8,760 MWh a
    year -> 1,000 kWh an hour in 2026 (8,760 h). A 60 % share of 1,000 kWh would be 600 kWh: the
    first instrument covers 166.667 / 1,000 = 16.67 %; a second, older 100 % one tops up the rest
    up to its own cap (1,000 kWh / 1,000 kWh = 100 % -> 83.33 %)."""
    from greenkpi.carbon.selectors import Instrument, instrument_takes

    start = H0 - timedelta(days=10)
    assert m.instrument_kwh_per_hour(
        volume_mwh=120.0, valid_from=start, valid_to=start + timedelta(days=30), hour=H0
    ) == pytest.approx(120_000 / 720)
    assert m.instrument_kwh_per_hour(
        volume_mwh=8760.0, valid_from=start, valid_to=None, hour=H0
    ) == pytest.approx(1000.0)
    ppa = Instrument(1, 7, start, start + timedelta(days=30), 0.6, 0.0, 120.0)
    older = Instrument(2, 7, start - timedelta(days=1), None, 1.0, 30.0, 8760.0)
    takes = instrument_takes([ppa, older], hour=H0, site_kwh=1000.0)
    assert [(i.pk, t) for i, t in takes] == [
        (1, pytest.approx(1 / 6)),
        (2, pytest.approx(5 / 6)),
    ]
    # energy not known yet: shares only (the rollup caps once it knows the hour's energy)
    assert [t for _, t in instrument_takes([ppa, older], hour=H0, site_kwh=None)] == [
        pytest.approx(0.6),
        pytest.approx(0.4),
    ]
    # a small hour: the cap does not bind, the share does
    assert [t for _, t in instrument_takes([ppa], hour=H0, site_kwh=100.0)] == [pytest.approx(0.6)]
    # outside its period an instrument covers nothing
    assert instrument_takes([ppa], hour=start + timedelta(days=30), site_kwh=100.0) == []
