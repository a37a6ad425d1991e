"""Carbon data of the demo: a simulated hourly grid series per zone, a green PPA, site tariffs.

The series goes through the real import path (``carbon.services.grid_hourly_import_csv``, the
Electricity Maps CSV parser) with a source that says, on every row and every page that shows it,
that it is simulated. Shapes: each zone's level (France ~50, Germany ~350, Poland ~700 gCO2e/kWh
lifecycle), a midday solar dip, a windier/ lower weekend, slow weather swings and hourly noise.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

from greenkpi.carbon.models import ElectricityTariff, MarketFactor
from greenkpi.carbon.services import grid_hourly_import_csv
from greenkpi.inventory.models import Site
from greenkpi.lib.periods import hour_floor

SOURCE = "Simulated demo data (GreenKPI make demo), not measured"
# zone: (mean lifecycle g/kWh, solar dip at noon as a share, renewable share at the mean)
ZONES = {
    "FR": (52.0, 0.25, 0.27),
    "DE": (350.0, 0.35, 0.55),
    "PL": (700.0, 0.12, 0.24),
}
TARIFFS = {"paris": 0.19, "frankfurt": 0.27, "warsaw": 0.22}  # EUR per facility kWh
CURRENCY = "EUR"
PPA_SITE = "frankfurt"
PPA_G_PER_KWH = 15.0  # a wind PPA's lifecycle factor


def intensity(zone: str, hour: datetime, rng: random.Random) -> tuple[float, float]:
    """(lifecycle gCO2e/kWh, renewable share) of ``zone`` in the UTC hour starting at ``hour``."""
    mean, dip, renewable = ZONES[zone]
    local = (hour.hour + 1) % 24 + 0.5  # CET, mid-hour
    sun = max(0.0, math.sin((local - 6) / 12 * math.pi))  # 0 at night, 1 at 12:00 local
    weather = 0.12 * math.sin(hour.timestamp() / 86_400 / 4.3 * 2 * math.pi)  # ~4-day fronts
    weekend = -0.08 if hour.weekday() >= 5 else 0.0
    factor = (1 - dip * sun) * (1 + weather + weekend) * (1 + rng.gauss(0, 0.03))
    value = max(5.0, mean * factor)
    share = min(0.98, max(0.02, renewable + (1 - factor) * 0.8))
    return value, share


def grid_series_csv(*, start: datetime, end: datetime, seed: int = 11) -> str:
    """The series as an Electricity Maps hourly export, one row per zone and hour in [start, end)."""
    rng = random.Random(seed)
    lines = ["Datetime (UTC),Zone id,Carbon intensity gCO2eq/kWh (LCA),Renewable percentage,"
             "Data estimated"]  # fmt: skip
    hour = hour_floor(start)
    while hour < end:
        for zone in ZONES:
            value, share = intensity(zone, hour, rng)
            lines.append(f"{hour:%Y-%m-%d %H:%M:%S},{zone},{value:.1f},{share * 100:.1f},true")
        hour += timedelta(hours=1)
    return "\n".join(lines) + "\n"


def carbon_load(*, sites: dict[str, Site], start: datetime, end: datetime) -> int:
    """Import the simulated series for [start, end), the PPA and the tariffs; returns hours written."""
    result = grid_hourly_import_csv(text=grid_series_csv(start=start, end=end), source=SOURCE)
    MarketFactor.objects.create(
        site=sites[PPA_SITE],
        valid_from=start,
        intensity_g_per_kwh=PPA_G_PER_KWH,
        instrument="Wind PPA, 100 % of consumption (simulated demo contract)",
    )
    ElectricityTariff.objects.bulk_create(
        ElectricityTariff(
            site=sites[name], valid_from=start, price_per_kwh=price, currency=CURRENCY
        )
        for name, price in TARIFFS.items()
    )
    return result.hours_written
