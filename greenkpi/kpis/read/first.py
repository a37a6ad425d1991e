"""The first hour with rollup rows of some scope keys, each on one given day: where a budget's
forecast needs the exact start of a scope whose history began inside its window (the daily read
only says which day). Index probes over those days only, not a read of the range: the
organisation's first row on its (organisation, hour) index, one GROUP BY over the teams' and one
over the models' own days."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from django.db.models import Min, Q, QuerySet

from greenkpi.kpis.models import HourlyRollup
from greenkpi.lib.replica import read_alias

ScopeKey = tuple[int | None, str | None]  # (team_id, model_key); None: any
# A local day lasts up to 25 hours (the day the clocks go back, lib.periods). The key's day has
# rows, so its first hour is the first found even where a shorter day's span reaches the next.
LONGEST_DAY = timedelta(hours=25)


def first_hours(
    *, organisation_id: int, days: Mapping[ScopeKey, datetime]
) -> dict[ScopeKey, datetime]:
    """{key: its first hour with rows in [day, day + 25 h)} for each (key, local day start) of
    ``days``; keys without rows that day are absent."""
    firsts: dict[ScopeKey, datetime] = {}
    day_of = {key: Q(hour__gte=day, hour__lt=day + LONGEST_DAY) for key, day in days.items()}
    rows = HourlyRollup.objects.using(read_alias()).filter(organisation_id=organisation_id)
    if (None, None) in days:  # the organisation: the (organisation, hour) index, one row
        first = rows.filter(day_of[(None, None)]).order_by("hour").values_list("hour", flat=True)
        hour = first.first()
        if hour is not None:
            firsts[(None, None)] = hour
    # Teams and models: one GROUP BY each over their first days only.
    for kind, fields in (("team", ("team_id",)), ("model", ("team_id", "model_key"))):
        keys = [k for k in days if k != (None, None) and (k[1] is None) == (kind == "team")]
        if not keys:
            continue
        condition = Q()
        for key in keys:
            q = day_of[key]
            if key[0] is not None:
                q &= Q(team_id=key[0])
            if key[1] is not None:
                q &= Q(model_key=key[1])
            condition |= q
        found: QuerySet = (
            rows.filter(condition).values(*fields).annotate(first=Min("hour")).order_by()
        )
        for r in found:
            for key in keys:
                team_id, model_key = key
                if team_id is not None and r["team_id"] != team_id:
                    continue
                if model_key is not None and r["model_key"] != model_key:
                    continue
                firsts[key] = min(firsts.get(key, r["first"]), r["first"])
    return firsts
