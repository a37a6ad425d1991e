"""Which rollup table a range of the model pages reads: DailyRollup for whole UTC days (a year of
2,000 GPUs is ~24x fewer rows than hourly), HourlyRollup otherwise (the last 24 hours, a run's own
hours). Both carry the same owner keys and summed columns, so callers group them alike."""

from __future__ import annotations

from datetime import UTC, datetime, time

from django.db.models import QuerySet
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
