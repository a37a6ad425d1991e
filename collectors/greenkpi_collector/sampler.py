"""The sampling thread: read every source each tick, close windows at boundaries, spool them.

Ticks are scheduled on the monotonic clock (no drift, immune to NTP steps); windows close when the
wall clock crosses a multiple of ``window_s``, so all hosts' windows line up. The closed windows
and the cursors they end at are written in one transaction before anything is sent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from greenkpi_collector.attribution import Registry
from greenkpi_collector.identity import Attributor
from greenkpi_collector.sources.base import Reading, Source
from greenkpi_collector.sources.host import HostLoad
from greenkpi_collector.spool import Spool
from greenkpi_collector.usage import UsageLedger
from greenkpi_collector.windows import Cursor, DeviceWindow, resume
from greenkpi_schema.v1 import sample_to_json

log = logging.getLogger("greenkpi_collector")


def boot_id() -> str:
    """Changes at every boot: a counter value from another boot is no baseline."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


class Sampler:
    def __init__(
        self,
        *,
        sources: list[Source],
        spool: Spool,
        registry: Registry | None,
        host_load: HostLoad | None,
        interval_s: float,
        window_s: float,
        max_resume_gap_s: float,
        notes: list[str] | None = None,
        clock: Callable[[], float] = time.time,
        attributor: Attributor | None = None,
    ) -> None:
        self.sources = sources
        self.spool = spool
        self.registry = registry
        # Registrations, GREENKPI_* environment and (when given) the Slurm job of each process.
        self.attributor = attributor or Attributor(registry)
        self.host_load = host_load
        self.interval_s = interval_s
        self.window_s = window_s
        self.max_resume_gap_s = max_resume_gap_s
        self.notes = notes or []  # standing facts, e.g. "no GPU: NVML could not start (...)"
        self.clock = clock
        self.boot = boot_id()
        self.windows: dict[str, DeviceWindow] = {}
        self.cursors: dict[str, Cursor] = {}
        self.opened_at: float | None = None  # wall time the current window set began
        self._problems: dict[str, None] = {}  # since the last batch, insertion-ordered, unique
        self._lock = threading.Lock()
        self.wake = threading.Event()  # set when windows were spooled: the sender has work
        self.ticks = 0
        # Per-registration totals that wrap/track() read when their job ends (usage.py).
        self.ledger = UsageLedger(registry.directory) if registry is not None else None

    # --- one tick ------------------------------------------------------------------------------

    def _read(self) -> list[Reading]:
        readings: list[Reading] = []
        for source in self.sources:
            try:
                readings.extend(source.read())
            except Exception as exc:  # one broken source must not stop the others
                self._report([f"{source.name}: {exc.__class__.__name__}: {exc}"])
        if self.host_load is not None:
            self.host_load.decorate(readings)
        return readings

    def tick(self) -> None:
        t_wall = round(self.clock(), 3)
        self.attributor.refresh()
        readings = self._read()
        self.ticks += 1
        if self.opened_at is None:
            self._open(readings, t_wall)
            return
        attributor = self.attributor
        for r in readings:
            window = self.windows.get(r.uuid)
            if window is None:  # a device that appeared (or answered) only now
                self.windows[r.uuid] = resume(r, None, t_wall, 0)
                self.cursors[r.uuid] = self.windows[r.uuid].cursor()
            else:
                held = attributor.allocated(r.uuid, t_wall) if r.procs is not None else None
                window.add(r, t_wall, attributor.resolver(r.uuid), held, self.ledger)
        if self.ledger is not None and self.registry is not None:
            self.ledger.tick(
                t_wall, ((c.pid, c.registered_at or 0.0) for c in self.registry.claims() if c.pid)
            )
        if int(t_wall // self.window_s) != int(self.opened_at // self.window_s):
            self.close_windows(t_wall)

    def _open(self, readings: list[Reading], t_wall: float) -> None:
        stored = self.spool.cursors() if self.spool.boot_id() == self.boot else {}
        for r in readings:
            cursor = Cursor.from_dict(stored[r.uuid]) if r.uuid in stored else None
            window = resume(r, cursor, t_wall, self.max_resume_gap_s)
            self.windows[r.uuid] = window
            # Where this window starts; saved now so a crash before it closes loses nothing.
            self.cursors[r.uuid] = (
                cursor if cursor and window.start_wall == cursor.t_wall else window.cursor()
            )
            if window.start_wall != t_wall:
                log.info("%s: resumed from %.1f s ago, no gap", r.uuid, t_wall - window.start_wall)
        self.opened_at = t_wall
        self.spool.save_cursors({u: c.as_dict() for u, c in self.cursors.items()}, self.boot)

    def close_windows(self, t_wall: float) -> int:
        """Close every open window at the latest reading and spool them; returns how many."""
        samples = []
        problems: list[str] = []
        for uuid, window in list(self.windows.items()):
            sample = window.close(self.attributor.describe)
            if sample is None:
                continue  # nothing measured yet (or the clock stepped back): keep it open
            samples.append(sample_to_json(sample))
            if window.resets:
                problems.append(f"{uuid}: energy counter reset {window.resets}x (interval skipped)")
            self.windows[uuid] = window.next_window()
            self.cursors[uuid] = window.cursor()
        self.opened_at = t_wall
        self._report(
            problems + [e for s in self.sources for e in s.errors()] + self.attributor.errors()
        )
        if samples:
            cursors = {u: c.as_dict() for u, c in self.cursors.items()}
            self.spool.add_windows(samples, cursors, self.boot)
            self.wake.set()
        return len(samples)

    def _report(self, problems: list[str]) -> None:
        with self._lock:
            for p in problems:
                if len(self._problems) < 50:
                    self._problems[p] = None

    def take_errors(self) -> list[str]:
        """Standing notes plus problems since the last call: what the next batch reports."""
        with self._lock:
            problems, self._problems = list(self._problems), {}
        return (self.notes + problems)[:50]

    # --- the thread ----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        next_tick = time.monotonic()
        while not stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("sampling failed; trying again next tick")
            next_tick += self.interval_s
            delay = next_tick - time.monotonic()
            if delay < 0:  # we fell behind (suspend, overload): skip, do not burst
                next_tick = time.monotonic()
                delay = 0
            stop.wait(delay)
        try:
            # Measure up to the stop, so a clean shutdown leaves no unmeasured tail.
            self.tick()
            self.close_windows(round(self.clock(), 3))
        except Exception:
            log.exception("could not spool the last window")
