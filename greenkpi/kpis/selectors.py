"""Reads of rollups for pages, the API and KPI functions: always scoped to one organisation."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import pandas as pd
from django.db.models import F

from greenkpi.kpis.models import HourlyRollup, RecomputeRun, RollupWindow

# Every numeric and key column the KPI formulas read (units in the names).
FRAME_COLUMNS = (
    "hour",
    "device_id",
    "device_kind",
    "host_id",
    "site_id",
    "team_id",
    "model_key",
    "run_key",
    "covered_s",
    "energy_kwh",
    "estimated_energy_kwh",
    "pue",
    "facility_energy_kwh",
    "allocated_gpu_h",
    "busy_gpu_h",
    "util_known_gpu_h",
    "idle_gpu_h",
    "idle_energy_kwh",
    "sm_active_gpu_h",
    "sm_known_gpu_h",
    "intensity_g_per_kwh",
    "intensity_source",
    "market_g_per_kwh",
    "operational_location_kgco2e",
    "operational_market_kgco2e",
    "embodied_kgco2e",
    "renewable_share",
    "cost",
    "currency",
    "methodology_version",
)


def rollup_frame(
    *,
    organisation_id: int,
    start: datetime,
    end: datetime,
    team_ids: Iterable[int] | None = None,
) -> pd.DataFrame:
    """Rollup rows of one organisation in [start, end) as a DataFrame (hour as naive UTC)."""
    rows = HourlyRollup.objects.filter(
        organisation_id=organisation_id, hour__gte=start, hour__lt=end
    )
    if team_ids is not None:
        rows = rows.filter(team_id__in=list(team_ids))
    frame = pd.DataFrame.from_records(list(rows.values_list(*FRAME_COLUMNS)), columns=FRAME_COLUMNS)
    # Naive UTC: tz-aware indexes cost Plotly 100x (reference/performance-limits.md section 7).
    frame["hour"] = pd.to_datetime(frame["hour"], utc=True).dt.tz_localize(None)
    for column in ("cost", "renewable_share"):
        frame[column] = frame[column].astype("float64")
    return frame


def last_run(*, kind: str = "periodic") -> RecomputeRun | None:
    return RecomputeRun.objects.filter(kind=kind).order_by("-started_at").first()


def dirty_window_count(*, organisation_id: int | None = None) -> int:
    windows = RollupWindow.objects.filter(version__gt=F("computed_version"))
    if organisation_id is not None:
        windows = windows.filter(organisation_id=organisation_id)
    return windows.count()
