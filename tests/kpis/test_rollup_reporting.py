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
