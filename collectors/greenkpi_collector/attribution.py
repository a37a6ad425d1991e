"""Who used a device: registrations by ``wrap`` / ``track()`` and the energy split rule.

A training or inference process registers itself by writing ``<pid>.json`` into the registry
directory. The agent maps each process NVML lists on a GPU to the nearest registered ancestor
(itself, its parent, ...), so children of a wrapped command are covered. A registration counts
only while its process lives (same PID and start time, so a reused PID never inherits a claim)
and only if the file's owner runs that process (or is root): one user cannot claim another's job.

Split of one sampling interval's energy E on one GPU among its processes p (docs/collector.md):
    with per-process SM utilization u_p (any > 0):  E_p = E * u_p / sum(u)   method utilization
    otherwise:                                        E_p = E / n             method equal
    no process on the GPU, or p claimed by nobody:   to nobody               method unattributed
    a scheduler job holds the GPU and it has no process, or the GPU is < 5 % busy and the
    process belongs to that job:                     to the job              method allocated-idle
    several pods hold one GPU (time-sliced, MPS, MIG slices of it) and it has no process:
                                                     E / holders each        method allocated-idle
Unattributed energy is charged by the backend to the host's default team.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from greenkpi_collector.sources.base import ProcUse

MAX_ANCESTORS = 64


# A scheduler job as the window builder keys it: (scheduler cluster, Slurm's raw job id), or for a
# Kubernetes pod (cluster, "<namespace>/<pod>:<container>") -- a str, never an int. Its facts
# (canonical id, account, labels, end, ...) are looked up when the window closes, so facts that
# arrive mid-window do not split one job into two shares.
JobKey = tuple[str, int | str]


@dataclass(frozen=True)
class Claim:
    pid: int | None
    team: str | None
    model: str | None
    run: str | None
    tags: tuple[tuple[str, str], ...] = ()
    job: JobKey | None = None
    # Which registration of this PID (its registered_at): a process that registers again (one
    # Optuna trial after another) starts a new usage total (usage.py). Not part of identity.
    registered_at: float | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ShareKey:
    team: str | None
    model: str | None
    run: str | None
    pid: int | None
    method: str
    tags: tuple[tuple[str, str], ...] = ()
    job: JobKey | None = None

    @classmethod
    def unattributed(cls) -> ShareKey:
        return cls(None, None, None, None, "unattributed")

    @classmethod
    def of(cls, claim: Claim, method: str) -> ShareKey:
        return cls(claim.team, claim.model, claim.run, claim.pid, method, claim.tags, claim.job)


def split_interval(
    energy_j: float,
    procs: Iterable[ProcUse],
    resolve: Callable[[int], Claim | None],
    allocated: Claim | tuple[Claim, ...] | None = None,
    idle: bool = False,
) -> list[tuple[ShareKey, float]]:
    """``allocated``: the scheduler job holding this GPU (or the pods sharing it); ``idle``: the
    GPU was < 5 % busy."""
    procs = list(procs)
    holders = allocated if isinstance(allocated, tuple) else (allocated,) if allocated else ()
    if not procs:
        if holders:
            each = energy_j / len(holders)
            return [(ShareKey.of(holder, "allocated-idle"), each) for holder in holders]
        return [(ShareKey.unattributed(), energy_j)]
    held_jobs = {holder.job for holder in holders}
    utils = [p.util for p in procs]
    if any(u for u in utils):
        weights, method = [u or 0.0 for u in utils], "utilization"
    else:
        weights, method = [1.0] * len(procs), "equal"
    total = sum(weights)
    out = []
    for proc, weight in zip(procs, weights, strict=True):
        claim = resolve(proc.pid)
        if claim is None:
            key = ShareKey.unattributed()
        elif idle and claim.job is not None and claim.job in held_jobs:
            key = ShareKey.of(claim, "allocated-idle")  # the job's own process idles on it
        else:
            key = ShareKey.of(claim, method)
        out.append((key, energy_j * weight / total))
    return out


def registration(
    *,
    pid: int,
    team: str | None,
    model: str | None = None,
    run: str | None = None,
    tags: dict[str, str] | None = None,
) -> dict:
    return {
        "pid": pid,
        "create_time": psutil.Process(pid).create_time(),
        "team": team,
        "model": model,
        "run": run,
        "tags": tags or {},
        "registered_at": time.time(),
    }


def register(directory: Path, record: dict) -> Path:
    """Write a registration atomically (a reader never sees half a file)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{record['pid']}.json"
    tmp = directory / f".{record['pid']}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)
    return path


def unregister(directory: Path, pid: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        (directory / f"{pid}.json").unlink()


class Registry:
    """The agent's view of the registry directory, re-read when the directory changes."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._mtime = -1.0
        self._claims: dict[int, Claim] = {}
        self._cache: dict[int, Claim | None] = {}

    def refresh(self) -> None:
        """Call once per tick: re-reads only when a registration was added or removed."""
        self._cache.clear()  # processes come and go: ancestry is resolved afresh per tick
        try:
            mtime = self.directory.stat().st_mtime
        except OSError:
            self._claims = {}
            return
        if mtime == self._mtime and all(psutil.pid_exists(pid) for pid in self._claims):
            return
        self._mtime = mtime
        claims: dict[int, Claim] = {}
        for path in self.directory.glob("*.json"):
            claim = self._load(path)
            if claim is not None and claim.pid is not None:
                claims[claim.pid] = claim
        self._claims = claims

    def _load(self, path: Path) -> Claim | None:
        try:
            owner = path.stat().st_uid
            data = json.loads(path.read_text())
            pid = int(data["pid"])
            proc = psutil.Process(pid)
            alive = abs(proc.create_time() - float(data["create_time"])) < 0.01
            proc_uid = proc.uids().real
        except (OSError, ValueError, KeyError, TypeError, psutil.Error):
            alive = False
        if not alive:
            with contextlib.suppress(OSError):
                path.unlink()  # the process ended (or its PID was reused): the claim is void
            return None
        if owner not in (0, proc_uid):
            return None
        tags = data.get("tags") or {}
        return Claim(
            pid=pid,
            team=data.get("team") or None,
            model=data.get("model") or None,
            run=data.get("run") or None,
            tags=tuple(sorted((str(k), str(v)) for k, v in tags.items())),
            registered_at=float(data.get("registered_at") or 0.0),
        )

    def claims(self) -> list[Claim]:
        return list(self._claims.values())

    def resolve(self, pid: int) -> Claim | None:
        if pid in self._cache:
            return self._cache[pid]
        found: Claim | None = None
        if self._claims:
            current: int | None = pid
            for _ in range(MAX_ANCESTORS):
                if current is None or current <= 1:
                    break
                if current in self._claims:
                    found = self._claims[current]
                    break
                try:
                    current = psutil.Process(current).ppid()
                except psutil.Error:
                    break
        self._cache[pid] = found
        return found
