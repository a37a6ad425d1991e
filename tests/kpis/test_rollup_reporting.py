"""Issue 14 items 1 and 4 through the real rollup (tests/carbon/test_reporting_factors.py has the
factors hand-worked): a GPU-only host carries its whole host's embodied share, and every row
carries Scope 3 cat. 3 and says how its Scope 2 factor was obtained.

Host: no class set, reports GPUs -> an 8-GPU server: 1000 + 100 + (1024 - 16) x 533/384 + 4 x 100
= 2899.125 kgCO2e over 4 years (31,557,600 s a year). Two GPUs each cover 3 x 60 s = 180 s.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from greenkpi.kpis import services
from greenkpi.kpis.models import HourlyRollup

HOST_KG = 1000.0 + 100.0 + (1024 - 16) * 533.0 / 384.0 + 4 * 100.0
LIFE_S = 4 * 31_557_600
FR_DIRECT = 17212.96 / 514.11
FR_LIFECYCLE = 32576.97 / 514.11
FR_UPSTREAM = (FR_LIFECYCLE - FR_DIRECT) + 0.0687 * FR_LIFECYCLE


def test_a_gpu_only_host_carries_its_whole_host_embodied_share(acme, acme_token, ingest, hour):
    _, secret = acme_token
    ingest(secret, site="paris-dc", start=hour + timedelta(minutes=10))  # 2 GPUs x 3 x 60 s
    services.window_recompute(organisation_id=acme.pk, hour=hour)
    rows = list(HourlyRollup.objects.filter(organisation=acme, hour=hour))
    assert len(rows) == 2
    gpu_part = 150 * 180 / LIFE_S
    host_part = HOST_KG * 180 / (2 * LIFE_S)  # the mean covered time of its 2 reporting GPUs
    for row in rows:
        assert row.embodied_kgco2e == pytest.approx(gpu_part + host_part)
    # the host's rows of the hour sum to its footprint x 180 s / lifetime, CPU unmeasured
    assert sum(r.embodied_kgco2e for r in rows) == pytest.approx(
        2 * gpu_part + HOST_KG * 180 / LIFE_S
    )
    assert rows[0].intensity_method == "mix"
    assert rows[0].upstream_kgco2e == pytest.approx(0.013 * FR_UPSTREAM / 1000)

    # only a chassis (no CPU, DRAM, storage figure): the host still carries the chassis share
    host = rows[0].host
    host.server_class = "cpu-1s"
    host.embodied_chassis_kgco2e = 1000.0
    host.embodied_cpu_kgco2e = host.embodied_dram_kgco2e = host.embodied_storage_kgco2e = 0.0
    host.save()
    services.window_recompute(organisation_id=acme.pk, hour=hour)
    for row in HourlyRollup.objects.filter(organisation=acme, hour=hour):
        assert row.embodied_kgco2e == pytest.approx(gpu_part + 1000.0 * 180 / (2 * LIFE_S))


# Issue 14 item 2 through the real rollup: contracted volumes. Two hosts of paris-dc (PUE 1.3), each
# 2 GPUs x 3 x 12,000 J = 0.01 kWh IT per GPU -> 0.013 kWh facility per row, 0.052 kWh per hour for
# the site; two hours. Residual mix of FR: 50 g/kWh.


def _two_hours_two_hosts(acme, acme_token, ingest, hour):
    from greenkpi.carbon.models import ResidualMix

    _, secret = acme_token
    for h in (hour, hour + timedelta(hours=1)):
        for host in ("gpu-node-1", "gpu-node-2"):
            ingest(secret, site="paris-dc", hostname=host, start=h + timedelta(minutes=10))
    ResidualMix.objects.create(zone="FR", year=hour.year, intensity_g_per_kwh=50.0, source="t")
    ResidualMix.objects.create(zone="FR", year=hour.year - 1, intensity_g_per_kwh=50.0, source="t")


def test_an_oversubscribed_instrument_never_covers_more_than_its_volume(
    acme, acme_token, ingest, hour
):
    """A 100 % PPA at 0 g for [hour, hour + 2 h) with 0.000052 MWh = 0.052 kWh contracted: at most
    0.026 kWh an hour. The site uses 0.052 kWh an hour (0.104 kWh in all, twice the volume), so
    the PPA covers 0.026 / 0.052 = 50 % of each hour and the residual mix the rest:
    0.5 x 0 + 0.5 x 50 = 25 g/kWh -> 0.013 kWh x 25 g = 0.000325 kgCO2e per row, 0.0026 kg for
    the 8 rows; applied 0.052 kWh = the volume, never the 0.104 kWh its share alone would claim."""
    from greenkpi.carbon.methodology import MarketSource
    from greenkpi.carbon.models import MarketFactor
    from greenkpi.kpis.market import instruments_applied

    _two_hours_two_hosts(acme, acme_token, ingest, hour)
    ppa = MarketFactor.objects.create(
        site=acme.paris,
        kind="ppa",
        valid_from=hour,
        valid_to=hour + timedelta(hours=2),
        intensity_g_per_kwh=0.0,
        share=1.0,
        volume_mwh=0.000052,
    )
    services.windows_batch_recompute(
        organisation_id=acme.pk, hours=[hour, hour + timedelta(hours=1)]
    )
    rows = list(HourlyRollup.objects.filter(organisation=acme))
    assert len(rows) == 8 and {r.host.hostname for r in rows} == {"gpu-node-1", "gpu-node-2"}
    for row in rows:
        assert row.facility_energy_kwh == pytest.approx(0.013)
        assert row.market_g_per_kwh == pytest.approx(25.0)
        assert row.market_source == MarketSource.CONTRACT_RESIDUAL
        assert row.operational_market_kgco2e == pytest.approx(0.000325)
    assert sum(r.operational_market_kgco2e for r in rows) == pytest.approx(0.0026)
    [use] = instruments_applied(
        organisation_id=acme.pk, start=hour - timedelta(hours=1), end=hour + timedelta(hours=3)
    )
    assert use.instrument == ppa
    assert use.contracted_mwh == pytest.approx(0.000052)
    assert use.applied_mwh == pytest.approx(0.000052)  # = the volume, not 0.000104

    # a recompute of one hour alone gives the same rows (the cap depends on that hour only)
    services.window_recompute(organisation_id=acme.pk, hour=hour)
    again = HourlyRollup.objects.filter(organisation=acme, hour=hour)
    assert sorted(r.operational_market_kgco2e for r in again) == pytest.approx([0.000325] * 4)

    # without the volume the 100 % share alone would cover everything: 0 g
    MarketFactor.objects.filter(pk=ppa.pk).update(volume_mwh=None)
    services.window_recompute(organisation_id=acme.pk, hour=hour)
    assert {r.market_g_per_kwh for r in HourlyRollup.objects.filter(hour=hour)} == {0.0}


def test_a_60_percent_ppa_with_a_residual_mix_gives_the_hand_worked_market_figure(
    acme, acme_token, ingest, hour
):
    """A 60 % PPA at 0 g with 1,000 MWh a year (open-ended: the volume is per year, ~0.114 MWh an
    hour, far above the site's 0.052 kWh) and FR's residual mix 50 g/kWh: 0.6 x 0 + 0.4 x 50 =
    20 g/kWh -> 0.013 kWh x 20 g = 0.00026 kgCO2e per row; applied 0.6 x 0.104 kWh = 0.0624 kWh."""
    from greenkpi.carbon.methodology import MarketSource
    from greenkpi.carbon.models import MarketFactor
    from greenkpi.kpis.market import instruments_applied

    _two_hours_two_hosts(acme, acme_token, ingest, hour)
    MarketFactor.objects.create(
        site=acme.paris,
        kind="ppa",
        valid_from=hour - timedelta(days=30),
        intensity_g_per_kwh=0.0,
        share=0.6,
        volume_mwh=1000.0,
    )
    services.windows_batch_recompute(
        organisation_id=acme.pk, hours=[hour, hour + timedelta(hours=1)]
    )
    rows = list(HourlyRollup.objects.filter(organisation=acme))
    assert len(rows) == 8
    for row in rows:
        assert (row.market_g_per_kwh, row.market_source) == (
            pytest.approx(20.0),
            MarketSource.CONTRACT_RESIDUAL,
        )
        assert row.operational_market_kgco2e == pytest.approx(0.00026)
    [use] = instruments_applied(organisation_id=acme.pk, start=hour, end=hour + timedelta(hours=2))
    assert use.applied_mwh == pytest.approx(0.0000624)
    hours_in_year = 8784 if hour.year % 4 == 0 else 8760
    assert use.contracted_mwh == pytest.approx(1000.0 * 2 / hours_in_year)
