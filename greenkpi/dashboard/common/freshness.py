"""How current the pages are (the overview and team pages show it): the newest rollup hour and
the newest periodic recompute."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from greenkpi.inventory.access import Scope
from greenkpi.kpis.daily import days_pending
from greenkpi.kpis.models import HourlyRollup, RecomputeRun
from greenkpi.kpis.selectors import last_run


@dataclass(frozen=True)
class Freshness:
    """How current the pages are: "rollups up to HH:00, last recompute ok 40 s ago"."""

    rollups_until: datetime | None  # end of the newest hour with rollup rows, never past now
    last_run: RecomputeRun | None  # the newest periodic recompute
    hour_in_progress: bool = False  # the newest hour is the current one: counted so far
    days_rebuilding: int = 0  # local days still without daily rows after a time-zone change


# How long after a time-zone change the pages look for days still being rebuilt (the rebuild task
# starts 40 s after the change and takes seconds to minutes; kpis/daily.py).
REBUILD_WATCH = timedelta(hours=6)


def freshness(scope: Scope) -> Freshness:
    """Two index probes: the organisation's newest rollup hour and the newest periodic run; in the
    hours after a time-zone change, a count of the local days whose daily rows are not rebuilt."""
    newest = (
        HourlyRollup.objects.filter(organisation_id=scope.organisation.pk)
        .order_by("-hour")
        .values_list("hour", flat=True)
        .first()
    )
    now = datetime.now(UTC)
    # The current hour's rows hold its minutes so far: "up to 17:00" at 16:25 promised the future.
    until = min(newest + timedelta(hours=1), now) if newest else None
    changed = scope.organisation.time_zone_changed_at
    rebuilding = (
        days_pending(organisation_id=scope.organisation.pk)
        if changed is not None and now - changed < REBUILD_WATCH
        else 0
    )
    return Freshness(
        rollups_until=until,
        last_run=last_run(kind="periodic"),
        hour_in_progress=bool(newest and until == now),
        days_rebuilding=rebuilding,
    )
