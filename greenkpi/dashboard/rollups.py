"""Which rollup table a period reads, and the scope filters on it: shared by the page selectors.

A period of whole UTC days reads DailyRollup (a year of 2,000 GPUs is a few hundred thousand rows
instead of 17.5 M hourly ones), or DailyTeamRollup when only teams matter (~20 k rows); a period
of hours reads HourlyRollup. Both tables carry the same
summed columns, so a selector groups and sums the same names whichever it got.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, timedelta

from django.db.models import F, Q, QuerySet
from django.db.models.expressions import Combinable
from django.db.models.functions import TruncDate

from greenkpi.dashboard.scoping import Scope
from greenkpi.kpis.models import DailyRollup, DailyTeamRollup, HourlyRollup
from greenkpi.lib.periods import Period


@dataclass(frozen=True)
class Source:
    """Rollup rows of a period, with how to read their UTC day and their time bucket."""

    rows: QuerySet
    day: Combinable  # expression: the UTC day of a row
    bucket: str  # the time column: "day" or "hour"
    step: timedelta  # length of one bucket

    @property
    def daily(self) -> bool:
        return self.bucket == "day"


def source(organisation_id: int, period: Period, *, per_team: bool = False) -> Source:
    """The organisation's rollup rows for the period: daily rows for whole days, else hourly.

    ``per_team``: the caller groups by team (and currency) only, never by model, run, site or
    device kind, so whole days may read DailyTeamRollup, ~20x fewer rows than DailyRollup.
    """
    days = period.days
    if days is not None:
        table = DailyTeamRollup if per_team else DailyRollup
        rows = table.objects.filter(
            organisation_id=organisation_id, day__gte=days[0], day__lt=days[1]
        )
        return Source(rows, F("day"), "day", timedelta(days=1))
    hourly = HourlyRollup.objects.filter(
        organisation_id=organisation_id, hour__gte=period.start, hour__lt=period.end
    )
    return Source(hourly, TruncDate("hour", tzinfo=UTC), "hour", timedelta(hours=1))


def team_filter(scope: Scope, team_ids: Collection[int] | None = None) -> Q:
    """Rows of the visible teams (or the chosen subset of them); rows of no team (hosts without a
    default team) only for org-wide views of all teams."""
    wanted = scope.team_ids if team_ids is None else scope.team_ids & frozenset(team_ids)
    keep = Q(team_id__in=sorted(wanted))
    if scope.org_wide and team_ids is None:
        keep |= Q(team_id__isnull=True)
    return keep
