"""What the local agent measured for one registered job, readable by the job itself.

``wrap`` (the CI energy gate) and ``track()`` (the Optuna callback) need their job's energy the
moment it ends, before any batch reaches the backend. The agent already splits every sampling
interval among registered processes (attribution.py); it also adds each interval up per
registration here and writes ``<registry>/usage/<pid>`` every tick while the registration lives:

- ``attributed_j``: energy of devices with per-process attribution (GPUs) split to the job's
  processes, the same shares the backend receives for the run (measured: counters or power);
- ``host_j``: all the host's devices while the job was registered, by kind.

A job's energy (``Usage.job_j``) is its attributed GPU energy plus the host's energy of the kinds
that have no per-process split (CPU package, DRAM): exact on a machine that runs one job at a time
(a CI runner, one trial after another), an upper bound on a shared one. The files live in a
subdirectory, so writing them never makes the agent re-read the registry; they are removed with
the registration.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

USAGE_DIR = "usage"
ATTRIBUTED_KINDS = frozenset({"gpu"})  # kinds the agent splits per process


@dataclass
class Usage:
    pid: int
    registered_at: float  # the registration's own time stamp: which registration of the PID
    since: float  # wall time the agent first saw the registration
    updated: float  # wall time of the agent's last tick counted in
    attributed_j: dict[str, float] = field(default_factory=dict)
    host_j: dict[str, float] = field(default_factory=dict)

    @property
    def job_j(self) -> float:
        """Attributed energy of per-process kinds + the host's energy of the other kinds."""
        attributed = sum(self.attributed_j.values())
        rest = sum(j for kind, j in self.host_j.items() if kind not in ATTRIBUTED_KINDS)
        return attributed + rest

    def as_json(self) -> dict:
        return {
            "pid": self.pid,
            "registered_at": self.registered_at,
            "since": self.since,
            "updated": self.updated,
            "attributed_j": self.attributed_j,
            "host_j": self.host_j,
        }


def usage_path(registry: Path, pid: int) -> Path:
    return registry / USAGE_DIR / str(pid)


def read_usage(registry: Path, pid: int, registered_at: float | None = None) -> Usage | None:
    """The agent's figures for a registration (this one, when ``registered_at`` is given), or
    None (no agent, or it has not seen the registration yet)."""
    try:
        data = json.loads(usage_path(registry, pid).read_text())
        usage = Usage(
            pid=int(data["pid"]),
            registered_at=float(data["registered_at"]),
            since=float(data["since"]),
            updated=float(data["updated"]),
            attributed_j={str(k): float(v) for k, v in data["attributed_j"].items()},
            host_j={str(k): float(v) for k, v in data["host_j"].items()},
        )
        if registered_at is not None and abs(usage.registered_at - registered_at) > 1e-6:
            return None  # an earlier registration of the same PID
        return usage
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def wait_for_usage(
    registry: Path,
    pid: int,
    registered_at: float,
    until: float,
    timeout_s: float,
    poll_s: float = 0.05,
) -> Usage | None:
    """The usage once the agent has counted a tick at or after ``until`` (wall time), or the
    latest seen when ``timeout_s`` runs out (None if the agent never wrote one)."""
    deadline = time.monotonic() + timeout_s
    usage = read_usage(registry, pid, registered_at)
    while (usage is None or usage.updated < until) and time.monotonic() < deadline:
        time.sleep(poll_s)
        usage = read_usage(registry, pid, registered_at)
    return usage


class UsageLedger:
    """The agent's side: per-tick parts in, one small file per live registration out."""

    def __init__(self, registry: Path) -> None:
        self.directory = registry / USAGE_DIR
        self.usages: dict[int, Usage] = {}
        self._parts: dict[int, dict[str, float]] = {}
        self._host: dict[str, float] = {}
        self.broken = False

    def attributed(self, pid: int | None, kind: str, joules: float) -> None:
        if pid is not None and joules > 0:
            parts = self._parts.setdefault(pid, {})
            parts[kind] = parts.get(kind, 0.0) + joules

    def host(self, kind: str, joules: float) -> None:
        if joules > 0:
            self._host[kind] = self._host.get(kind, 0.0) + joules

    def tick(self, t_wall: float, live: Iterable[tuple[int, float]]) -> None:
        """Count this tick's parts into every live registration (pid, registered_at) and write
        their files."""
        registrations = dict(live)
        parts, host = self._parts, self._host
        self._parts, self._host = {}, {}
        for pid in [p for p in self.usages if p not in registrations]:
            del self.usages[pid]
            with contextlib.suppress(OSError):
                usage_path(self.directory.parent, pid).unlink()
        if not registrations or self.broken:
            return
        try:
            self.directory.mkdir(mode=0o755, exist_ok=True)
        except OSError:
            self.broken = True  # the registry is not ours to write: wrap/track() see no usage
            return
        for pid, registered_at in registrations.items():
            usage = self.usages.get(pid)
            if usage is None or usage.registered_at != registered_at:
                usage = Usage(pid=pid, registered_at=registered_at, since=t_wall, updated=t_wall)
                self.usages[pid] = usage
            # The first tick counts whole, like the shares the agent posts: the attribution
            # resolved this tick's interval to the registration, so the two totals agree.
            for kind, joules in parts.get(pid, {}).items():
                usage.attributed_j[kind] = usage.attributed_j.get(kind, 0.0) + joules
            for kind, joules in host.items():
                usage.host_j[kind] = usage.host_j.get(kind, 0.0) + joules
            usage.updated = t_wall
            self._write(usage)

    def _write(self, usage: Usage) -> None:
        path = usage_path(self.directory.parent, usage.pid)
        tmp = path.with_name(f".{usage.pid}.tmp")
        try:
            tmp.write_text(json.dumps(usage.as_json()))
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)  # a reader never sees half a file
        except OSError:
            self.broken = True
