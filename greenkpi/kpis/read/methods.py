"""Which methods produced a range's carbon figures: facility kWh per Scope 2 location-based
intensity method and per market-based source, per site (what the ESRS export and the report
disclose beside the sums). From HourlyRollup: the daily tables do not keep these codes."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Sum

from greenkpi.kpis.models import HourlyRollup
from greenkpi.lib.replica import read_alias


def facility_kwh_by_method(
    *, organisation_id: int, start: datetime, end: datetime
) -> list[tuple[int | None, str, str, float]]:
    """[(site id, intensity method, market source, facility kWh)] of [start, end)."""
    rows = (
        HourlyRollup.objects.using(read_alias())
        .filter(organisation_id=organisation_id, hour__gte=start, hour__lt=end)
        .values_list("site_id", "intensity_method", "market_source")
        .annotate(kwh=Sum("facility_energy_kwh"))
        .order_by("site_id", "intensity_method", "market_source")
    )
    return [(site, method, market, float(kwh or 0.0)) for site, method, market, kwh in rows]
