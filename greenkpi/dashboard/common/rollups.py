"""The pages' rollup reads: thin calls into ``kpis.read`` (which picks DailyTeamRollup,
DailyRollup or HourlyRollup and reads partial and stale days from the hours), plus the pages'
team filter."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import pandas as pd

from greenkpi.inventory.access import Scope
from greenkpi.kpis.read import sums as read
from greenkpi.lib.periods import Period


def team_where(scope: Scope, team_ids: Collection[int] | None = None) -> list[int | None]:
    """Rows of the visible teams (or the chosen subset of them); rows of no team (hosts without a
    default team) only for org-wide views of all teams."""
    wanted: list[int | None] = sorted(
        scope.team_ids if team_ids is None else scope.team_ids & frozenset(team_ids)
    )
    if scope.org_wide and team_ids is None:
        wanted.append(None)
    return wanted


def sums(
    organisation_id: int,
    period: Period,
    columns: Sequence[str],
    *,
    by: Sequence[str] = (),
    teams: Collection[int | None],
    grain: read.Grain = None,
) -> pd.DataFrame:
    """``columns`` summed per ``by`` (and time bucket) over the period's rollups of ``teams``."""
    return read.sums(
        organisation_id=organisation_id,
        start=period.start,
        end=period.end,
        columns=columns,
        by=by,
        where={"team_id": list(teams)},
        grain=grain,
    )
