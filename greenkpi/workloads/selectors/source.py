"""Which rollup table a range of the model pages reads: DailyRollup for whole UTC days (a year of
2,000 GPUs is ~24x fewer rows than hourly), HourlyRollup otherwise (the last 24 hours, a run's own
hours). Both carry the same owner keys and summed columns, so callers group them alike."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, time

import pandas as pd
from django.db.models import QuerySet, Sum
from django.db.models.functions import TruncDay

from greenkpi.kpis.models import DailyRollup, HourlyRollup


def whole_days(start: datetime, end: datetime) -> bool:
    return all(t.astimezone(UTC).time() == time.min for t in (start, end))


def rollups_between(*, organisation_id: int, start: datetime, end: datetime) -> QuerySet:
    """The organisation's rollup rows in [start, end), each with a ``day`` (UTC) to group by."""
    if whole_days(start, end):
        return DailyRollup.objects.filter(
            organisation_id=organisation_id,
            day__gte=start.astimezone(UTC).date(),
            day__lt=end.astimezone(UTC).date(),
        )
    return HourlyRollup.objects.filter(
        organisation_id=organisation_id, hour__gte=start, hour__lt=end
    ).annotate(day=TruncDay("hour", tzinfo=UTC))


RUN_SUM_COLUMNS = [
    "run_key",
    "energy_kwh",
    "facility_energy_kwh",
    "operational_kgco2e",
    "embodied_kgco2e",
    "gpu_hours",
]


def run_sums(
    *,
    organisation_id: int,
    team_id: int,
    model_key: str,
    run_keys: Iterable[str],
    now: datetime | None = None,
) -> pd.DataFrame:
    """Totals per run key for the pages' run lists: DailyRollup for the UTC days before today,
    HourlyRollup for today (not refreshed into days yet). A year of one team is then ~365 x a
    few daily rows instead of ~24 x GPUs x 365 hourly ones. Two queries."""
    keys = sorted(set(run_keys))
    if not keys:
        return pd.DataFrame(columns=RUN_SUM_COLUMNS)
    today = datetime.combine(
        (now or datetime.now(UTC)).astimezone(UTC).date(), time.min, tzinfo=UTC
    )
    owner = {"organisation_id": organisation_id, "team_id": team_id, "model_key": model_key}
    sums = {
        "energy_kwh": Sum("energy_kwh"),
        "facility_energy_kwh": Sum("facility_energy_kwh"),
        "operational_kgco2e": Sum("operational_location_kgco2e"),
        "embodied_kgco2e": Sum("embodied_kgco2e"),
        "gpu_hours": Sum("allocated_gpu_h"),
    }
    parts = [
        DailyRollup.objects.filter(**owner, run_key__in=keys, day__lt=today.date()),
        HourlyRollup.objects.filter(**owner, run_key__in=keys, hour__gte=today),
    ]
    frame = pd.DataFrame.from_records(
        [row for rows in parts for row in rows.values("run_key").annotate(**sums).order_by()],
        columns=RUN_SUM_COLUMNS,
    )
    if frame.empty:
        return pd.DataFrame(columns=RUN_SUM_COLUMNS)
    numbers = RUN_SUM_COLUMNS[1:]
    frame[numbers] = frame[numbers].astype("float64").fillna(0.0)
    return frame.groupby("run_key", as_index=False)[numbers].sum()
