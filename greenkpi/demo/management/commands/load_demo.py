"""`manage.py load_demo`: the simulated organisation of `make demo` (greenkpi/demo/)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from greenkpi.demo.build import demo_build, demo_reset
from greenkpi.demo.simulation import DEMO_PASSWORD, DEMO_SLUG, DEMO_USERS
from greenkpi.inventory.models import Organisation


class Command(BaseCommand):
    help = "Load the simulated demo organisation (skipped if it exists; --reset reloads it)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=90, help="Days of history (default 90).")
        parser.add_argument("--reset", action="store_true", help="Delete the demo and reload it.")

    def handle(self, *args: Any, days: int, reset: bool, **options: Any) -> None:
        if days < 1:
            self.stderr.write("--days must be at least 1")
            raise SystemExit(2)
        if Organisation.objects.filter(slug=DEMO_SLUG).exists():
            if not reset:
                self.stdout.write("Demo organisation already loaded (use --reset to reload).")
                return
            demo_reset()
        started = time.monotonic()
        built = demo_build(days=days, now=timezone.now(), say=self.stdout.write)
        # The local collector of `make demo` reports this machine with the demo's token.
        token_path = Path(settings.VAR_DIR) / "demo-collector.token"
        token_path.unlink(missing_ok=True)
        fd = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(built.token)
        steps = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in built.timings_s.items())
        self.stdout.write(
            f"Rollups: {built.windows} window(s), {built.failed_windows} failed. "
            f"Loaded in {time.monotonic() - started:.0f} s ({steps}).\n"
            f"Users {' / '.join(DEMO_USERS)}, password {DEMO_PASSWORD}."
        )
