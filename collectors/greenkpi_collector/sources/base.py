"""What every source hands the window builder: one Reading per device per tick.

Sources report raw cumulative counters (not deltas) so the window builder alone owns the delta,
wrap-around and reset logic, and a restart can resume from a persisted counter value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from greenkpi_schema import DeviceInfo

# Worst-first ranking: a window that mixes methods is labelled with the least exact one.
METHOD_RANK = {"counter": 0, "power_integral": 1, "estimate": 2}


@dataclass(frozen=True, slots=True)
class ProcUse:
    """A process seen on a device: its PID and, when the driver reports one, its utilization 0..1."""

    pid: int
    util: float | None = None


@dataclass(slots=True)
class Reading:
    """One device at one tick. ``counter`` is cumulative in units of ``counter_unit_j`` joules."""

    uuid: str
    kind: str
    method: str
    counter: int | None = None
    counter_unit_j: float = 1.0
    counter_range: int | None = None  # the counter wraps to 0 after this many units (RAPL)
    power_w: float | None = None
    busy: float | None = None  # fraction of the last sample period the device was busy
    mem_used_bytes: int | None = None
    mem_total_bytes: int | None = None
    temperature_c: float | None = None
    procs: tuple[ProcUse, ...] | None = None  # None: attribution does not apply to this device


class Source(Protocol):
    """A measurement source. ``read`` never raises for one bad device: it reports it in errors."""

    name: str

    def devices(self) -> list[DeviceInfo]: ...

    def read(self) -> list[Reading]: ...

    def errors(self) -> list[str]: ...

    def close(self) -> None: ...


class SourceUnavailable(Exception):
    """The source cannot measure anything on this host; the message says why, in plain words."""
