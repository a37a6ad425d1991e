"""Raw storage upkeep, one periodic job with a run record (RecomputeRun kind ``raw-storage``):
day partitions created ahead, raw days past retention dropped behind (kpis/retention.py says
which; docs/scaling.md).

Creating partitions is a separate step whose failure does not stop ingest: the days made earlier
(RAW_PARTITIONS_AHEAD_DAYS ahead) and the default partition still take every window. It fails
the run and logs at ERROR with ``ALERT`` in the message; the alerts app reads such runs and tells
the organisations' admins once per episode (alerts/system.py).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Min
from django.utils import timezone

from greenkpi.ingest import partitions
from greenkpi.ingest.models import Sample
from greenkpi.kpis.models import RecomputeRun
from greenkpi.kpis.retention import raw_horizon, unrolled_hours
from greenkpi.kpis.services import run_finish, run_start

log = logging.getLogger(__name__)
KIND = "raw-storage"
PARTITION_ALERT = "ALERT partition creation failed"  # in the run's error: alerts/system.py


def raw_storage_maintain(*, now: datetime | None = None) -> RecomputeRun:
    """Create the day partitions ahead and drop (or delete) raw days past retention; one run."""
    now = now or timezone.now()
    run = run_start(kind=KIND)
    notes: list[str] = []
    failed = False
    if partitions.is_partitioned():
        try:
            created = partitions.partitions_ensure(
                partitions.late_range(
                    now, settings.INGEST_MAX_AGE_DAYS, settings.RAW_PARTITIONS_AHEAD_DAYS
                )
            )
            if created:
                notes.append(f"created {len(created)} partition(s): {', '.join(created)}")
        except DatabaseError as exc:
            failed = True
            notes.append(f"{PARTITION_ALERT}: {exc}")
            log.error(
                "ALERT raw storage: creating day partitions failed (ingest goes on into the "
                "existing ones and the default partition): %s",
                exc,
            )
    done, kept, rows = _retention(now=now, notes=notes)
    return run_finish(
        run,
        done=done,
        failed=kept,
        rows=rows,
        error="\n".join(notes),
        crashed=failed,
    )


def _retention(*, now: datetime, notes: list[str]) -> tuple[int, int, int]:
    """Days dropped or deleted, days kept for unrolled hours, rows deleted (delete path)."""
    horizon = raw_horizon(now)
    done = kept = rows = 0
    if partitions.is_partitioned():
        for day, _name in sorted(partitions.day_partitions().items()):
            start, end = partitions.bounds_of(day)
            if end > horizon:
                break
            missing = unrolled_hours(start=start, end=end)
            if missing:
                kept += 1
                notes.append(
                    f"kept {day}: {len(missing)} hour(s) not rolled up at the current version"
                )
                continue
            partitions.partition_drop(day)
            done += 1
    # One table (SQLite), or strays in the default partition: delete day by day, same rule
    # (the day partitions still here were kept above).
    kept_days = set(partitions.day_partitions()) if partitions.is_partitioned() else set()
    oldest = Sample.objects.filter(window_start__lt=horizon).aggregate(m=Min("window_start"))["m"]
    while oldest is not None and oldest < horizon:
        start = datetime(oldest.year, oldest.month, oldest.day, tzinfo=UTC)
        end = start + timedelta(days=1)
        if start.date() not in kept_days:
            missing = unrolled_hours(start=start, end=end)
            if missing:
                kept += 1
                notes.append(
                    f"kept {start.date()}: {len(missing)} hour(s) not rolled up at the current "
                    "version"
                )
            else:
                with transaction.atomic():
                    rows += partitions.samples_delete(start=start, end=end)
                done += 1
        oldest = Sample.objects.filter(window_start__gte=end, window_start__lt=horizon).aggregate(
            m=Min("window_start")
        )["m"]
    return done, kept, rows
