"""Turn per-tick readings into per-device measurement windows.

A window runs from one boundary reading to the next, so its energy is the exact counter delta
between two readings and consecutive windows share a boundary: summed over any span, window
energy equals the counter delta over that span (no sampled power is integrated when a counter
exists). Per interval between two readings we also record busy time, peak power and the
attribution split; a window is their sum.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from greenkpi_collector.attribution import Claim, JobKey, ShareKey, split_interval
from greenkpi_collector.sources.base import METHOD_RANK, Reading
from greenkpi_collector.usage import UsageLedger
from greenkpi_schema import K8sPod, Sample, Share, SlurmJob
from greenkpi_schema.v1 import MAX_SHARES

IDLE_BUSY_FRACTION = 0.05  # an interval with busy < 5 % counts as idle seconds
_METHODS = {rank: name for name, rank in METHOD_RANK.items()}
# A job's schema identity and its run key ("slurm:<cluster>:<job id>", a pod's), looked up at close.
Describe = Callable[[JobKey], tuple[SlurmJob | K8sPod, str]]


@dataclass
class Cursor:
    """Where the last spooled window of a device ended: lets a restart resume without a gap."""

    t_wall: float
    counter: int | None
    unit_j: float
    range_units: int | None

    def as_dict(self) -> dict[str, float | int | None]:
        return {"t": self.t_wall, "c": self.counter, "u": self.unit_j, "r": self.range_units}

    @classmethod
    def from_dict(cls, d: dict) -> Cursor:
        return cls(float(d["t"]), d.get("c"), float(d.get("u", 1.0)), d.get("r"))


def counter_delta(prev: int, now: int, range_units: int | None) -> int | None:
    """Units consumed between two readings; None when the counter was reset (driver reload)."""
    if now >= prev:
        return now - prev
    if range_units:
        return now + range_units - prev  # wrapped past max_energy_range_uj
    return None


def to_datetime(t_wall: float) -> datetime:
    return datetime.fromtimestamp(t_wall, UTC)


@dataclass
class DeviceWindow:
    uuid: str
    kind: str
    start_wall: float
    last_wall: float
    last: Reading | None  # the latest reading (carries power for trapezoids)
    last_counter: int | None  # latest valid counter value (a missed read defers, never loses)
    energy_j: float = 0.0
    covered_s: float = 0.0
    busy_s: float = 0.0
    busy_known_s: float = 0.0
    idle_s: float = 0.0
    peak_w: float | None = None
    worst: int = 0
    mem_used: int | None = None
    mem_total: int | None = None
    temp_sum: float = 0.0
    temp_n: int = 0
    resets: int = 0
    attributable: bool = False
    shares: dict[ShareKey, float] = field(default_factory=dict)
    # Allocated-idle intervals of process-less GPUs: (start, end, key, joules). A job's end is
    # learned from the next listing, so at close the part after a known end is taken back.
    held: list[tuple[float, float, ShareKey, float]] = field(default_factory=list)

    def add(
        self,
        r: Reading,
        t_wall: float,
        resolve: Callable[[int], Claim | None],
        allocated: Claim | tuple[Claim, ...] | None = None,
        ledger: UsageLedger | None = None,
    ) -> None:
        dt = t_wall - self.last_wall
        if dt <= 0:
            return  # the wall clock stepped back: wait for time to pass the boundary again
        energy, rank = self._interval_energy(r, dt)
        if ledger is not None:
            ledger.host(self.kind, energy)
        self.worst = max(self.worst, rank)
        self.energy_j += energy
        self.covered_s += dt
        if energy > 0:
            self.peak_w = max(self.peak_w or 0.0, energy / dt)
        if r.busy is not None:
            self.busy_s += r.busy * dt
            self.busy_known_s += dt
            if r.busy < IDLE_BUSY_FRACTION:
                self.idle_s += dt
        if r.mem_used_bytes is not None:
            self.mem_used = max(self.mem_used or 0, r.mem_used_bytes)
            self.mem_total = r.mem_total_bytes
        if r.temperature_c is not None:
            self.temp_sum += r.temperature_c
            self.temp_n += 1
        if r.procs is not None:
            self.attributable = True
            idle = r.busy is not None and r.busy < IDLE_BUSY_FRACTION
            for key, part in split_interval(energy, r.procs, resolve, allocated, idle):
                self.shares[key] = self.shares.get(key, 0.0) + part
                if ledger is not None:
                    ledger.attributed(key.pid, self.kind, part)
                if key.pid is None and key.method == "allocated-idle" and part > 0:
                    self.held.append((self.last_wall, t_wall, key, part))
        self.last, self.last_wall = r, t_wall

    def _interval_energy(self, r: Reading, dt: float) -> tuple[float, int]:
        if r.counter is not None:
            if self.last_counter is None:
                self.last_counter = r.counter  # first counter seen: a baseline, no energy yet
                return 0.0, METHOD_RANK["counter"]
            delta = counter_delta(self.last_counter, r.counter, r.counter_range)
            self.last_counter = r.counter
            if delta is None:
                self.resets += 1  # skip the interval: never negative, never a spike
                return 0.0, METHOD_RANK["counter"]
            # A relayed counter (exporter sources) may say an interval came from power readings.
            return delta * r.counter_unit_j, max(METHOD_RANK["counter"], METHOD_RANK[r.method])
        if r.method == "counter" or self.last_counter is not None:
            # A counter device missed one read: the next delta covers this interval exactly.
            return 0.0, METHOD_RANK["counter"]
        powers = [p for p in (self.last.power_w if self.last else None, r.power_w) if p is not None]
        if not powers:
            return 0.0, METHOD_RANK[r.method]
        rank = max(METHOD_RANK[r.method], METHOD_RANK["power_integral"])
        return sum(powers) / len(powers) * dt, rank  # trapezoid (or one-sided at the edges)

    def close(self, describe: Describe | None = None) -> Sample | None:
        if self.covered_s <= 0:
            return None
        if describe is not None and self.held:
            self._release_after_job_end(describe)
        shares = _shares(self.shares, self.energy_j, describe) if self.attributable else []
        return Sample(
            device_uuid=self.uuid,
            device_kind=self.kind,
            start=to_datetime(self.start_wall),
            end=to_datetime(self.last_wall),
            energy_j=self.energy_j,
            method=_METHODS[self.worst],
            power_avg_w=self.energy_j / self.covered_s,
            power_peak_w=self.peak_w,
            util_busy=self.busy_s / self.busy_known_s if self.busy_known_s else None,
            mem_used_bytes=self.mem_used,
            mem_total_bytes=self.mem_total,
            temperature_c=self.temp_sum / self.temp_n if self.temp_n else None,
            idle_s=min(self.idle_s, self.last_wall - self.start_wall)
            if self.busy_known_s
            else None,
            shares=shares,
        )

    def _release_after_job_end(self, describe: Describe) -> None:
        """Idle energy after a job's known end was nobody's: split by time, to unattributed."""
        ends: dict[JobKey, float | None] = {}
        nobody = ShareKey.unattributed()
        for t0, t1, key, part in self.held:
            assert key.job is not None
            if key.job not in ends:
                end = describe(key.job)[0].end
                ends[key.job] = end.timestamp() if end is not None else None
            end_s = ends[key.job]
            if end_s is None or end_s >= t1:
                continue
            after = part if end_s <= t0 else part * (t1 - end_s) / (t1 - t0)
            self.shares[key] -= after
            self.shares[nobody] = self.shares.get(nobody, 0.0) + after
        for key in [k for k, v in self.shares.items() if k.job and v <= 1e-9]:
            del self.shares[key]  # wholly after the end: no empty share for the job

    def cursor(self) -> Cursor:
        last = self.last
        return Cursor(
            t_wall=self.last_wall,
            counter=self.last_counter,
            unit_j=last.counter_unit_j if last else 1.0,
            range_units=last.counter_range if last else None,
        )

    def next_window(self) -> DeviceWindow:
        """A fresh window that starts where this one ended, from the same baseline."""
        return DeviceWindow(
            self.uuid, self.kind, self.last_wall, self.last_wall, self.last, self.last_counter
        )


def _shares(
    parts: dict[ShareKey, float], energy_j: float, describe: Describe | None = None
) -> list[Share]:
    """Shares sorted largest first; past MAX_SHARES the smallest fold into unattributed."""
    items = sorted(parts.items(), key=lambda kv: -kv[1])
    if len(items) > MAX_SHARES:
        rest = sum(v for _, v in items[MAX_SHARES - 1 :])
        items = [*items[: MAX_SHARES - 1], (ShareKey.unattributed(), rest)]
        merged: dict[ShareKey, float] = {}
        for k, v in items:
            merged[k] = merged.get(k, 0.0) + v
        items = list(merged.items())
    if not items:
        items = [(ShareKey.unattributed(), energy_j)]
    # Float sums drift by ulps; the schema wants shares to sum to the window: fix on the largest.
    drift = energy_j - sum(v for _, v in items)
    items[0] = (items[0][0], max(0.0, items[0][1] + drift))
    out = []
    for k, v in items:
        job, run = describe(k.job) if describe and k.job else (None, None)
        out.append(
            Share(
                energy_j=v,
                method=k.method,
                team=k.team,
                model=k.model,
                run=k.run or run,  # explicit or GREENKPI_RUN first, else the job's run
                pid=k.pid,
                tags=dict(k.tags),
                scheduler=job,
            )
        )
    return out


def resume(
    reading: Reading, cursor: Cursor | None, t_wall: float, max_gap_s: float
) -> DeviceWindow:
    """Open a device's first window. With a usable cursor (same counter, not reset, recent), it
    starts where the last spooled window ended and the restart's gap is measured, not lost."""
    window = DeviceWindow(reading.uuid, reading.kind, t_wall, t_wall, reading, reading.counter)
    if (
        cursor is None
        or cursor.counter is None
        or reading.counter is None
        or cursor.unit_j != reading.counter_unit_j
        or not 0 < t_wall - cursor.t_wall <= max_gap_s
    ):
        return window
    delta = counter_delta(cursor.counter, reading.counter, reading.counter_range)
    if delta is None:
        return window  # the counter restarted (reboot, driver reload): the gap is unknowable
    gap = t_wall - cursor.t_wall
    window.start_wall = cursor.t_wall
    window.energy_j = delta * reading.counter_unit_j
    window.covered_s = gap
    window.peak_w = window.energy_j / gap if window.energy_j > 0 else None
    if reading.procs is not None:
        window.attributable = True  # who ran during the gap is unknown: unattributed
        window.shares[ShareKey.unattributed()] = window.energy_j
    return window
