"""Import hourly grid intensity from an Electricity Maps CSV export, then mark the affected
rollup windows dirty so their carbon is recomputed with the measured hours."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from greenkpi.carbon.services import ImportFailed, grid_hourly_import_csv
from greenkpi.kpis.dirty import windows_mark_dirty_for_zones


class Command(BaseCommand):
    help = "Import an Electricity Maps hourly CSV export (one or more zones)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("csv_path", type=Path)
        parser.add_argument("--zone", help="Zone id when the file has no 'Zone Id' column.")
        parser.add_argument("--source", default="Electricity Maps CSV export")
        parser.add_argument(
            "--no-recompute",
            action="store_true",
            help="Do not mark the rollup windows of the imported hours dirty.",
        )

    def handle(self, *args: object, **options: object) -> None:
        path = options["csv_path"]
        assert isinstance(path, Path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        try:
            result = grid_hourly_import_csv(
                text=text, zone=options["zone"] or None, source=str(options["source"])
            )
        except ImportFailed as exc:
            raise CommandError("\n".join(exc.errors)) from exc
        self.stdout.write(
            f"{result.hours_written} hours for {', '.join(sorted(result.zones))} "
            f"({result.first_hour:%Y-%m-%d %H:00} to {result.last_hour:%Y-%m-%d %H:00} UTC)"
        )
        if not options["no_recompute"] and result.first_hour and result.last_hour:
            marked = windows_mark_dirty_for_zones(
                zones=result.zones, start=result.first_hour, end=result.last_hour
            )
            self.stdout.write(f"{marked} rollup window(s) marked for recompute")
