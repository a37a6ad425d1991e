"""Reads of rollups for pages, the API and KPI functions: always scoped to one organisation."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import pandas as pd
from django.db.models import F, Q, Sum, Value

from greenkpi.kpis.models import HourlyRollup, RecomputeRun, RollupWindow
from greenkpi.lib.periods import naive_utc_series

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
    frame["hour"] = naive_utc_series(frame["hour"])
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


# Per-hour sums of the metrics a budget can be set on (columns of hourly_totals).
BUDGET_METRIC_COLUMNS = (
    "energy_kwh",
    "co2e_kg",
    "allocated_gpu_h",
    "cost",
    "uncosted_energy_kwh",
    "s2_location_kg",
    "s2_market_kg",
)


def hourly_totals(
    *,
    organisation_id: int,
    start: datetime,
    end: datetime,
    team_id: int | None = None,
    model_key: str | None = None,
    currency: str = "",
) -> pd.DataFrame:
    """Per-hour totals of one organisation (optionally one team or model) in [start, end).

    One GROUP BY in the database (a year of hours is at most 8,784 rows). ``co2e_kg`` is the SCI
    numerator (location-based operational + embodied), as the ``co2e`` KPI; ``cost`` sums only
    rows priced in ``currency`` and ``uncosted_energy_kwh`` is the facility energy that was not
    (no tariff or another currency). Columns: hour (aware UTC) and BUDGET_METRIC_COLUMNS.
    """
    rows = HourlyRollup.objects.filter(
        organisation_id=organisation_id, hour__gte=start, hour__lt=end
    )
    if team_id is not None:
        rows = rows.filter(team_id=team_id)
    if model_key is not None:
        rows = rows.filter(model_key=model_key)
    # Annotations get a "t_" prefix: a name equal to a column would shadow it in the filters.
    if currency:
        priced = Q(cost__isnull=False, currency=currency)
        money = {
            "t_cost": Sum("cost", filter=priced, default=0.0),
            "t_uncosted_energy_kwh": Sum("facility_energy_kwh", filter=~priced, default=0.0),
        }
    else:  # not a cost budget: nothing is priced in "no currency"
        money = {"t_cost": Value(0.0), "t_uncosted_energy_kwh": Sum("facility_energy_kwh")}
    sums = (
        rows.values("hour")
        .annotate(
            t_energy_kwh=Sum("energy_kwh"),
            t_co2e_kg=Sum(F("operational_location_kgco2e") + F("embodied_kgco2e")),
            t_allocated_gpu_h=Sum("allocated_gpu_h"),
            t_s2_location_kg=Sum("operational_location_kgco2e"),
            t_s2_market_kg=Sum("operational_market_kgco2e"),
            **money,
        )
        .order_by("hour")
    )
    columns = ["hour", *BUDGET_METRIC_COLUMNS]
    return pd.DataFrame.from_records(
        [(r["hour"], *(r[f"t_{c}"] for c in BUDGET_METRIC_COLUMNS)) for r in sums],
        columns=columns,
    ).astype(dict.fromkeys(BUDGET_METRIC_COLUMNS, "float64"))


def first_rollup_hour(
    *, organisation_id: int, team_id: int | None = None, model_key: str | None = None
) -> datetime | None:
    """The first hour this organisation (team, model) has rollups for: the age of its history."""
    rows = HourlyRollup.objects.filter(organisation_id=organisation_id)
    if team_id is not None:
        rows = rows.filter(team_id=team_id)
    if model_key is not None:
        rows = rows.filter(model_key=model_key)
    return rows.order_by("hour").values_list("hour", flat=True).first()
