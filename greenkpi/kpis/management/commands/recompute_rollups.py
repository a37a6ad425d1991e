"""Backfill: recompute the hourly rollups of any range, with a progress bar.

Safe beside the periodic job: every window is claimed before it is recomputed, and a recompute
replaces the window's rows, so running it twice, or over a range already done, changes nothing.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError, CommandParser

from greenkpi.inventory.models import Organisation
from greenkpi.kpis import services


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise CommandError(f"{text!r} is not an ISO date or date-time") from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class ProgressBar:
    """A plain-text bar on stderr: no dependency, and quiet when not a terminal."""

    def __init__(self, total: int, stream=sys.stderr, width: int = 40) -> None:
        self.total, self.done, self.stream, self.width = total, 0, stream, width
        self.started = time.monotonic()
        self.tty = hasattr(stream, "isatty") and stream.isatty()

    def __call__(self, step: int) -> None:
        self.done += step
        if self.tty or self.done == self.total:
            filled = int(self.width * self.done / max(self.total, 1))
            elapsed = time.monotonic() - self.started
            self.stream.write(
                f"\r[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} "
                f"windows, {elapsed:.1f} s"
            )
            if self.done == self.total:
                self.stream.write("\n")
            self.stream.flush()


class Command(BaseCommand):
    help = "Recompute hourly rollups for [--start, --end) (UTC), optionally for one organisation."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--start", required=True, help="ISO date or date-time (UTC)")
        parser.add_argument("--end", required=True, help="ISO date or date-time, exclusive")
        parser.add_argument("--org", help="Organisation slug (default: all)")
        parser.add_argument("--lease", type=float, default=services.DEFAULT_LEASE_S)

    def handle(self, *args: object, **options: object) -> None:
        start, end = _moment(str(options["start"])), _moment(str(options["end"]))
        if end <= start:
            raise CommandError("--end must be after --start")
        org_ids = None
        if options["org"]:
            org = Organisation.objects.filter(slug=options["org"]).first()
            if org is None:
                raise CommandError(f"no organisation {options['org']!r}")
            org_ids = [org.pk]
        from django.utils import timezone

        from greenkpi.kpis.retention import raw_horizon

        horizon = raw_horizon(timezone.now())
        if start < horizon:
            # Their raw windows are dropped (or will be): the rollups are the record now.
            self.stderr.write(
                f"raw windows before {horizon:%Y-%m-%d} are past retention (RAW_RETENTION_DAYS): "
                "hours whose samples are gone keep their stored rollups and cannot be recomputed"
            )
        windows = services.backfill_windows(start=start, end=end, organisation_ids=org_ids)
        if not windows:
            self.stdout.write("nothing to recompute in that range")
            return
        bar = ProgressBar(len(windows), stream=self.stderr._out)
        run = services.windows_recompute(
            windows=windows, kind="backfill", lease_s=float(str(options["lease"])), progress=bar
        )
        self.stdout.write(
            f"{run.status}: {run.windows_done} window(s) recomputed, {run.windows_failed} failed, "
            f"{run.rows_written} row(s), {run.duration_s:.1f} s"
        )
        if run.windows_failed:
            self.stderr.write(run.error)
