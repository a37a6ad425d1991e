"""Delete stored windows so a collector can send their correction (docs/api.md, "Corrections").

Stored windows are immutable through the API: a window that overlaps one already stored is
refused with a 400 and dead-lettered by the collector. When the new window is the right one, an
operator deletes the stored windows of that device and range here (their hours are marked dirty,
so the rollups follow), then the collector resends its dead letters (``greenkpi-collector spool
--requeue-dead``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from greenkpi.ingest.models import Sample
from greenkpi.inventory.models import Device
from greenkpi.kpis.dirty import windows_mark_dirty


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise CommandError(f"{text!r} is not an ISO date-time") from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class Command(BaseCommand):
    help = "Delete a device's stored windows that meet [--start, --end) (UTC), marking hours dirty."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", required=True, help="organisation slug")
        parser.add_argument(
            "--device", required=True, help="device uuid, as the collector sends it"
        )
        parser.add_argument("--start", required=True)
        parser.add_argument("--end", required=True)

    def handle(self, *args: object, **options: str) -> None:
        start, end = _moment(options["start"]), _moment(options["end"])
        if end <= start:
            raise CommandError("--end must be after --start")
        devices = list(
            Device.objects.filter(
                host__organisation__slug=options["org"], uuid=options["device"]
            ).values_list("pk", "host__organisation_id")
        )
        if not devices:
            raise CommandError(
                f"no device {options['device']!r} in organisation {options['org']!r}"
            )
        deleted = 0
        with transaction.atomic():
            for device_id, organisation_id in devices:
                windows = Sample.objects.filter(
                    device_id=device_id, window_start__lt=end, window_end__gt=start
                )
                starts = list(windows.values_list("window_start", flat=True))
                deleted += windows.delete()[0]
                windows_mark_dirty(organisation_id=organisation_id, window_starts=starts)
        self.stdout.write(f"deleted {deleted} window(s); their hours will be recomputed")
