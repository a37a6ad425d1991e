"""Hourly rollup rows written directly, for tests of what reads them (the rollup itself is tested in
tests/kpis). One builder, so a new HourlyRollup column or a new freshness rule of the read layer is
followed in one place rather than in every test package's copy."""

from __future__ import annotations

from datetime import datetime, timedelta

from greenkpi.carbon.methodology import METHODOLOGY_VERSION
from greenkpi.inventory.models import Device
from greenkpi.kpis.models import HourlyRollup, RollupWindow


def mark_hour_computed(org, hour: datetime) -> None:
    """What a recompute leaves behind besides its rows: the hour's window, computed as the hour
    closed. The read layer (kpis.read) takes a day from its hours while the day has computed
    windows and no refresh after them; a day without computed windows has no hourly rows to read."""
    RollupWindow.objects.get_or_create(
        organisation=org,
        hour=hour,
        defaults={"version": 1, "computed_version": 1, "computed_at": hour + timedelta(hours=1)},
    )


def hourly_row(
    org,
    hour: datetime,
    *,
    device: Device,
    energy_kwh: float = 0.0,
    allocated_gpu_h: float = 1.0,
    pue: float = 1.0,
    location_kg: float = 0.0,
    market_kg: float | None = None,
    computed: bool = True,
    **columns,
) -> HourlyRollup:
    """One HourlyRollup row as a recompute would leave it: ``allocated_gpu_h`` of 60 samples on
    ``device``, an annual FR intensity, market = location unless ``market_kg`` says otherwise.
    Derived columns (covered seconds, facility energy) follow the given ones unless passed in
    ``columns``, which may set any other column too."""
    if computed:
        mark_hour_computed(org, hour)
    row = {
        "samples": 60,
        "covered_s": allocated_gpu_h * 3600,
        "estimated_energy_kwh": 0.0,
        "facility_energy_kwh": energy_kwh * pue,
        "util_known_gpu_h": allocated_gpu_h,
        "intensity_g_per_kwh": 0.0,
        "intensity_source": "annual",
        "intensity_zone": "FR",
        "market_g_per_kwh": 0.0,
        "market_source": "location",
        "embodied_kgco2e": 0.0,
        "methodology_version": METHODOLOGY_VERSION,
        **columns,
    }
    return HourlyRollup.objects.create(
        organisation=org,
        hour=hour,
        device=device,
        device_kind=device.kind,
        host=device.host,
        energy_kwh=energy_kwh,
        allocated_gpu_h=allocated_gpu_h,
        pue=pue,
        operational_location_kgco2e=location_kg,
        operational_market_kgco2e=location_kg if market_kg is None else market_kg,
        **row,
    )
