"""Writes of the KPI engine: mark windows dirty, recompute (replace) windows, record runs.

The only writer of HourlyRollup. A recompute replaces every row of its (organisation, hour) windows
inside one transaction, so re-runs, overlaps, late data and backfills all converge on the same rows.
Windows are recomputed in batches (up to a day of one organisation's hours per statement, claimed
and released together) so that the fixed costs of a recompute are paid once per batch.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import (
    BigIntegerField,
    Case,
    F,
    Field,
    PositiveIntegerField,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.functions import TruncHour
from django.utils import timezone

from greenkpi.ingest.models import Sample
from greenkpi.kpis import rollup
from greenkpi.kpis.dirty import windows_mark_dirty
from greenkpi.kpis.models import HourlyRollup, RecomputeRun, RollupWindow, RunStatus
from greenkpi.kpis.retention import hours_frozen
from greenkpi.lib.periods import hour_floor
from greenkpi.lib.retry import TRANSIENT_ERRORS

log = logging.getLogger(__name__)

# A claim must outlive the slowest recompute of one window (seconds for 1,000 GPUs); after it
# lapses another worker may take the window over, so a killed worker never blocks it for long.
DEFAULT_LEASE_S = 900
RUN_RETENTION = timedelta(days=30)
# Hours of one organisation recomputed by one statement: claims, factor look-ups, planning and
# bookkeeping are paid once per batch instead of once per hour, and a statement still reads at
# most a day of samples (1,000 GPUs: 1.44 M rows, about a second).
BATCH_HOURS = 24


class ClaimLost(Exception):
    """Our lease lapsed and another worker claimed the window: our rows must not be committed."""


@dataclass(frozen=True, slots=True)
class WindowResult:
    status: str  # "done", "busy" (claimed by someone else) or "failed"
    rows: int = 0
    error: str = ""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def window_recompute(
    *,
    organisation_id: int,
    hour: datetime,
    lease_s: float = DEFAULT_LEASE_S,
    worker: str = "",
    now: Callable[[], datetime] = timezone.now,
) -> WindowResult:
    """Claim one window, rebuild its rows and replace the stored ones in one transaction.

    Returns "busy" without touching anything when another worker holds the claim (see
    ``windows_batch_recompute``, of which this is the one-hour case).
    """
    hour = hour_floor(hour)
    return windows_batch_recompute(
        organisation_id=organisation_id, hours=[hour], lease_s=lease_s, now=now
    )[hour]


def windows_batch_recompute(
    *,
    organisation_id: int,
    hours: Iterable[datetime],
    lease_s: float = DEFAULT_LEASE_S,
    now: Callable[[], datetime] = timezone.now,
) -> dict[datetime, WindowResult]:
    """Claim these windows (hours) of one organisation at once, rebuild the claimed ones in one
    statement and replace their stored rows in one transaction; returns {hour: result}.

    Windows another worker holds are left out ("busy") and never touched. Transient database
    errors propagate (the caller retries) after giving the claims back. Any other error sends
    the batch back to one window at a time, so a bad window records its own error and is pushed
    back with a growing delay while the others land.
    """
    hours = sorted({hour_floor(h) for h in hours})
    results = {hour: WindowResult("busy") for hour in hours}
    if not hours:
        return results
    RollupWindow.objects.bulk_create(
        [RollupWindow(organisation_id=organisation_id, hour=hour) for hour in hours],
        ignore_conflicts=True,
    )
    token = uuid.uuid4().hex
    started = now()
    windows = RollupWindow.objects.filter(organisation_id=organisation_id, hour__in=hours)
    claimed = windows.filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=started)).update(
        claimed_until=started + timedelta(seconds=lease_s), claimed_by=token
    )
    if not claimed:
        return results
    mine = windows.filter(claimed_by=token)
    # Versions read after claiming and before reading samples: data that commits later bumps a
    # version past the one read, so its window stays dirty and is recomputed again.
    versions: dict[datetime, int] = dict(mine.values_list("hour", "version"))
    t0 = time.monotonic()
    try:
        # Read, priced and written in one transaction (on PostgreSQL: the batch's sums, then one
        # INSERT ... SELECT), released only if every claim still holds.
        with transaction.atomic():
            # Hours whose raw windows retention dropped keep their rollups (kpis/retention.py).
            frozen = hours_frozen(organisation_id=organisation_id, hours=versions, now=started)
            live = [h for h in versions if h not in frozen]
            HourlyRollup.objects.filter(organisation_id=organisation_id, hour__in=live).delete()
            rows = rollup.windows_insert(organisation_id=organisation_id, hours=live, now=started)
            if frozen:
                rows.update(mine.filter(hour__in=frozen).values_list("hour", "rows"))
            released = mine.update(
                computed_version=_per_hour(versions, BigIntegerField()),
                rows=_per_hour({h: rows.get(h, 0) for h in versions}, PositiveIntegerField()),
                claimed_until=None,
                claimed_by="",
                computed_at=now(),
                # the batch's time shared evenly: what one window of it cost
                duration_ms=int((time.monotonic() - t0) * 1000 / len(versions)),
                failures=0,
                last_error="",
            )
            if released != len(versions):
                raise ClaimLost(
                    f"{len(versions) - released} window(s) of org {organisation_id} were taken over"
                )
    except TRANSIENT_ERRORS:
        _release(mine)
        raise
    except Exception as exc:
        if len(versions) > 1:
            log.warning(
                "batch of %s windows of org %s failed (%r): one at a time",
                len(versions),
                organisation_id,
                exc,
            )
            _release(mine)
            for hour in versions:
                results[hour] = window_recompute(
                    organisation_id=organisation_id, hour=hour, lease_s=lease_s, now=now
                )
            return results
        # one window: record its error on it and push it back instead of failing every run
        [hour] = versions
        log.exception("recompute of org %s hour %s failed", organisation_id, hour)
        failures = mine.values_list("failures", flat=True).first() or 0
        mine.update(
            claimed_until=now() + timedelta(seconds=min(60 * 2 ** min(failures, 6), 3600)),
            claimed_by="",
            failures=F("failures") + 1,
            last_error=f"{type(exc).__name__}: {exc}"[:2000],
        )
        results[hour] = WindowResult("failed", error=f"{type(exc).__name__}: {exc}")
        return results
    for hour in versions:
        results[hour] = WindowResult("done", rows=rows.get(hour, 0))
    return results


def _per_hour(values: dict[datetime, int], field: Field) -> Case:
    """One UPDATE setting a different value per window: CASE hour WHEN ... THEN ... END."""
    return Case(*(When(hour=h, then=Value(v)) for h, v in values.items()), output_field=field)


def _release(claims: QuerySet[RollupWindow]) -> None:
    """Give claims back early (best effort: the database may be what failed; leases lapse anyway)."""
    try:
        with transaction.atomic():
            claims.update(claimed_until=None, claimed_by="")
    except TRANSIENT_ERRORS:
        log.warning("could not release claims; they lapse with their lease")


def dirty_windows(*, limit: int, now: datetime) -> list[tuple[int, datetime]]:
    """Dirty, unclaimed windows, oldest first (late data for old hours is not starved)."""
    return list(
        RollupWindow.objects.filter(version__gt=F("computed_version"))
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .order_by("hour", "organisation_id")
        .values_list("organisation_id", "hour")[:limit]
    )


def run_start(*, kind: str, worker: str = "") -> RecomputeRun:
    """Record a run; earlier runs of its kind still "running" past the task time limit were lost."""
    now = timezone.now()
    limit = timedelta(seconds=getattr(settings, "CELERY_TASK_TIME_LIMIT", 3600))
    RecomputeRun.objects.filter(
        kind=kind, status=RunStatus.RUNNING, started_at__lt=now - limit
    ).update(status=RunStatus.ABANDONED, finished_at=now)
    RecomputeRun.objects.filter(started_at__lt=now - RUN_RETENTION).delete()
    return RecomputeRun.objects.create(kind=kind, started_at=now, worker=worker or worker_name())


def run_finish(
    run: RecomputeRun, *, done: int, failed: int, rows: int, error: str = "", crashed: bool = False
) -> RecomputeRun:
    run.finished_at = timezone.now()
    run.duration_s = (run.finished_at - run.started_at).total_seconds()
    run.windows_done, run.windows_failed, run.rows_written = done, failed, rows
    if crashed:
        run.status = RunStatus.FAILED
    else:
        run.status = RunStatus.PARTIAL if failed else RunStatus.OK
    run.error = error[:5000]
    run.save()
    return run


def batches(
    windows: Iterable[tuple[int, datetime]], *, span_hours: int = BATCH_HOURS
) -> list[tuple[int, list[datetime]]]:
    """Windows as (organisation, hours) batches: each organisation's hours in order, cut so that
    a batch spans at most ``span_hours`` (its statement scans that range of samples); oldest first.
    """
    by_org: dict[int, set[datetime]] = {}
    for organisation_id, hour in windows:
        by_org.setdefault(organisation_id, set()).add(hour_floor(hour))
    out: list[tuple[int, list[datetime]]] = []
    span = timedelta(hours=span_hours)
    for organisation_id, hours in by_org.items():
        batch: list[datetime] = []
        for hour in sorted(hours):
            if batch and hour - batch[0] >= span:
                out.append((organisation_id, batch))
                batch = []
            batch.append(hour)
        out.append((organisation_id, batch))
    return sorted(out, key=lambda b: (b[1][0], b[0]))


def windows_recompute(
    *,
    windows: Iterable[tuple[int, datetime]],
    kind: str,
    lease_s: float = DEFAULT_LEASE_S,
    progress: Callable[[int], None] | None = None,
    span_hours: int = BATCH_HOURS,
) -> RecomputeRun:
    """Recompute the given windows in batches (``batches``), recording the run; transient errors
    end the run and re-raise. A window listed twice is recomputed once."""
    run = run_start(kind=kind)
    done = failed = rows = 0
    errors: list[str] = []
    try:
        for organisation_id, hours in batches(windows, span_hours=span_hours):
            results = windows_batch_recompute(
                organisation_id=organisation_id, hours=hours, lease_s=lease_s
            )
            for hour, result in results.items():
                if result.status == "done":
                    done += 1
                    rows += result.rows
                elif result.status == "failed":
                    failed += 1
                    errors.append(f"org {organisation_id} {hour:%Y-%m-%dT%H}Z: {result.error}")
            if progress is not None:
                progress(len(hours))
    except Exception as exc:
        run_finish(run, done=done, failed=failed, rows=rows, error=repr(exc), crashed=True)
        raise
    return run_finish(run, done=done, failed=failed, rows=rows, error="\n".join(errors[:20]))


def windows_recompute_dirty(
    *, limit: int = 500, lease_s: float = DEFAULT_LEASE_S, kind: str = "periodic"
) -> RecomputeRun:
    """The periodic job: apply pending identity-mapping changes (they mark the windows of the
    jobs they touch dirty), then recompute up to ``limit`` dirty windows."""
    from greenkpi.kpis.attribution import mapping_changes_apply  # imports this module

    mapping_changes_apply()
    windows = dirty_windows(limit=limit, now=timezone.now())
    return windows_recompute(windows=windows, kind=kind, lease_s=lease_s)


def backfill_windows(
    *, start: datetime, end: datetime, organisation_ids: Iterable[int] | None = None
) -> list[tuple[int, datetime]]:
    """Mark dirty every window in [start, end) that has samples or rollup rows; return them."""
    start, end = hour_floor(start), end
    samples = Sample.objects.filter(window_start__gte=start, window_start__lt=end)
    rollups = HourlyRollup.objects.filter(hour__gte=start, hour__lt=end)
    if organisation_ids is not None:
        ids = list(organisation_ids)
        samples = samples.filter(device__host__organisation_id__in=ids)
        rollups = rollups.filter(organisation_id__in=ids)
    found = set(
        samples.annotate(h=TruncHour("window_start"))
        .values_list("device__host__organisation_id", "h")
        .distinct()
    )
    found |= set(rollups.values_list("organisation_id", "hour").distinct())
    by_org: dict[int, list[datetime]] = {}
    for organisation_id, hour in found:
        by_org.setdefault(organisation_id, []).append(hour)
    for organisation_id, hours in by_org.items():
        windows_mark_dirty(organisation_id=organisation_id, window_starts=hours)
    return sorted(((o, hour_floor(h)) for o, h in found), key=lambda w: (w[1], w[0]))
