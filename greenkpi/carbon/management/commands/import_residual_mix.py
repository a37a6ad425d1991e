"""Import residual mixes (zone, year, gCO2e/kWh) for market-based figures, then mark the rollup
windows of those zones and years dirty so their market-based carbon is recomputed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from greenkpi.carbon.services import ImportFailed, residual_mix_import_csv
from greenkpi.kpis.dirty import windows_mark_dirty_for_zones


class Command(BaseCommand):
    help = "Import residual mixes: CSV columns zone, year, intensity_g_per_kwh, source[, licence]."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("csv_path", type=Path)
        parser.add_argument("--no-recompute", action="store_true")

    def handle(self, *args: object, **options: object) -> None:
        path = options["csv_path"]
        assert isinstance(path, Path)
        try:
            rows = residual_mix_import_csv(text=path.read_text(encoding="utf-8-sig"))
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        except ImportFailed as exc:
            raise CommandError("\n".join(exc.errors)) from exc
        self.stdout.write(f"{len(rows)} residual mix(es) imported")
        if options["no_recompute"]:
            return
        marked = 0
        for mix in rows:
            marked += windows_mark_dirty_for_zones(
                zones={mix.zone},
                start=datetime(mix.year, 1, 1, tzinfo=UTC),
                end=datetime(mix.year, 12, 31, 23, tzinfo=UTC),
            )
        self.stdout.write(f"{marked} rollup window(s) marked for recompute")
