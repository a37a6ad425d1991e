"""`manage.py demo_simulate [--follow]`: keep the demo's simulated hosts alive (greenkpi/demo/live.py).

One tick writes the windows since the last one; ``--follow`` ticks every ``--interval`` seconds
until SIGINT or SIGTERM (honcho sends SIGTERM on Ctrl-C), finishing the tick in progress first.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from greenkpi.demo import live


class Command(BaseCommand):
    help = "Continue the demo simulation up to now (--follow: every minute until stopped)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--follow", action="store_true", help="Keep ticking until stopped.")
        parser.add_argument("--interval", type=float, default=60.0, help="Seconds between ticks.")

    def handle(self, *args: Any, follow: bool, interval: float, **options: Any) -> None:
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        if follow:
            signal.signal(signal.SIGTERM, on_signal)
            signal.signal(signal.SIGINT, on_signal)
        while True:
            result = live.tick()
            self.stdout.write(
                f"demo tick: {result.samples} window(s) on {result.hosts} host(s), "
                f"{result.cluster_samples} on the Slurm nodes, "
                f"{result.hours_marked} hour(s) marked for recompute, "
                f"{result.runs_changed} run(s) opened/closed"
            )
            self.stdout.flush()
            close_old_connections()
            # Event.wait returns at once when a signal sets it: Ctrl-C never waits a minute.
            if not follow or stop.wait(max(interval, 1.0)):
                break
        if follow:
            self.stdout.write("demo simulator stopped")
