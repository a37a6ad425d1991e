"""The model pages' rollup reads, as thin calls into ``kpis.read`` (which picks the table and
patches stale days; docs/kpis.md, "The read layer")."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, time, timedelta

import pandas as pd

from greenkpi.kpis.read import sums as read

# The names the model pages use for the rollups' columns.
CO2E_COLUMNS = {"operational_location_kgco2e": "operational_kgco2e"}


def whole_days(start: datetime, end: datetime) -> bool:
    return all(t.astimezone(UTC).time() == time.min for t in (start, end))


def model_sums(
    *,
    organisation_id: int,
    start: datetime,
    end: datetime,
    by: Sequence[str],
    where: dict[str, list[object]],
    columns: Sequence[str] = ("energy_kwh", "operational_location_kgco2e", "embodied_kgco2e"),
    grain: read.Grain = None,
) -> pd.DataFrame:
    """Sums of the organisation's rollups in [start, end) per ``by`` (``operational_kgco2e``:
    location-based operational kgCO2e), through the read layer."""
    frame = read.sums(
        organisation_id=organisation_id,
        start=start,
        end=end,
        columns=columns,
        by=by,
        where=where,
        grain=grain,
    )
    return frame.rename(columns=CO2E_COLUMNS)


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
    """Whole-life totals per run key for the pages' run lists (every rollup up to the end of the
    current hour; the read layer takes fresh days from DailyRollup, so a year of one team is ~365
    x a few daily rows instead of ~24 x GPUs x 365 hourly ones)."""
    keys = sorted(set(run_keys))
    if not keys:
        return pd.DataFrame(columns=RUN_SUM_COLUMNS)
    # Up to the end of today (UTC): every hour recorded so far, today's read from HourlyRollup
    # until its first refresh.
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    end = datetime.combine(today + timedelta(days=1), time.min, tzinfo=UTC)
    frame = model_sums(
        organisation_id=organisation_id,
        start=read.BEGINNING,
        end=end,
        by=["run_key"],
        where={"team_id": [team_id], "model_key": [model_key], "run_key": list(keys)},
        columns=(
            "energy_kwh",
            "facility_energy_kwh",
            "operational_location_kgco2e",
            "embodied_kgco2e",
            "allocated_gpu_h",
        ),
    )
    if frame.empty:
        return pd.DataFrame(columns=RUN_SUM_COLUMNS)
    return frame.rename(columns={"allocated_gpu_h": "gpu_hours"})[RUN_SUM_COLUMNS]
