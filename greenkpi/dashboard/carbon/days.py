"""The organisation's rollups summed per UTC day x team x site x currency: the carbon pages' one read,
through kpis.read. Whole fresh UTC days come from DailyTeamRollup (a year of 50 teams on 3 sites is
~55 k rows, against ~17.5 M hourly rows for 2,000 GPUs), which carries everything the pages show:
the sums, facility kWh per intensity source, the idle time's location-based kgCO2e and the
methodology versions; partial and stale days come from HourlyRollup summed to the same columns, so
the frame is always what the hourly rows sum to. One frame per organisation; scoping to teams
happens after (carbon/selectors.carbon_frame).
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from greenkpi.kpis import daily
from greenkpi.kpis.read import sums as read

# HourlyRollup's columns, summed as they are (the daily refresh's list, less the sample count).
PLAIN = tuple(c for c in daily.SUMMED_COLUMNS if c != "samples")
SUMMED = (
    *PLAIN,
    # Sums of row-wise products, taken as is by kpis.formulas (renewable_share, idle_waste).
    "renewable_kwh",
    "renewable_known_kwh",
    "idle_location_kgco2e",
    # Facility kWh by the source of its location intensity (carbon/selectors.source_shares).
    *daily.SOURCE_COLUMNS.values(),
)
# ``cost`` is empty exactly when ``currency`` is (an hour has a tariff or neither), so the
# currency key also keeps priced and unpriced energy apart.
KEYS = ("day", "team_id", "site_id", "currency")
FRAME_COLUMNS = (
    *KEYS,
    "methodology_version",  # the lowest version in the group
    "methodology_version_max",  # differs from it when the group mixes versions
    *SUMMED,
    "cost",
)


def org_frame(
    organisation_id: int, start: datetime, end: datetime, *, by_day: bool = True
) -> pd.DataFrame:
    """Every team's rows (and those without a team) of one organisation in [start, end), summed
    per UTC day x team x site x currency through kpis.read (fresh whole days from
    DailyTeamRollup, partial and stale days from HourlyRollup). Without ``by_day`` the groups
    span the whole range and ``day`` is empty (NaT): what tables and tiles need, ~30x fewer rows
    for 30 days than the per-day frame only the time-series chart needs."""
    frame = read.sums(
        organisation_id=organisation_id,
        start=start,
        end=end,
        columns=[*SUMMED, "cost", "methodology_version_min", "methodology_version_max"],
        by=["team_id", "site_id", "currency"],
        grain="day" if by_day else None,
    )
    frame = frame.rename(
        columns={"bucket_utc": "day", "methodology_version_min": "methodology_version"}
    )
    if not by_day:
        frame["day"] = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns]")
    return frame[list(FRAME_COLUMNS)]
