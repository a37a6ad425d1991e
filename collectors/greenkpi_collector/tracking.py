"""Declare who a process works for: ``track()`` from Python, ``wrap`` from the shell.

Both write a registration for a PID into the registry directory the local agent reads
(``GREENKPI_REGISTRY_DIR``, default below). A training job never fails because of us: if the
registry cannot be written, it warns and runs unattributed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from greenkpi_collector.attribution import register, registration, unregister
from greenkpi_collector.mlflow_log import MlflowLogger
from greenkpi_collector.usage import Usage, read_usage, wait_for_usage

J_PER_KWH = 3.6e6
# Ember (2025) world average, lifecycle gCO2e/kWh: the figure the backend falls back to for a
# site without a grid zone (greenkpi/carbon/data/grid_annual.csv, zone WORLD). An estimate.
WORLD_INTENSITY_G_PER_KWH = 458.29


def carbon_intensity(explicit: float | None = None) -> float:
    """gCO2e per kWh: explicit, else GREENKPI_GRID_INTENSITY, else the world average."""
    if explicit is not None:
        return explicit
    return float(os.environ.get("GREENKPI_GRID_INTENSITY") or WORLD_INTENSITY_G_PER_KWH)


DEFAULT_REGISTRY_DIR = "/var/lib/greenkpi-collector/registry"


def registry_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    return Path(explicit or os.environ.get("GREENKPI_REGISTRY_DIR") or DEFAULT_REGISTRY_DIR)


# How long the end of a tracked block waits for the agent to count its last tick (a tick is
# the agent's sample interval, 1 s by default). Only waited when the agent is seen running.
USAGE_WAIT_S = float(os.environ.get("GREENKPI_USAGE_WAIT_S", "5"))


@dataclass
class Tracked:
    """What ``track()`` yields: after the block, the energy the local agent measured for it.

    ``usage`` is None when no agent counted the block (none running, or the registry is not
    shared with it); then ``energy_kwh`` is None too, never a made-up 0.
    """

    pid: int
    registry: Path
    registered_at: float | None
    started: float = field(default_factory=time.time)
    ended: float | None = None
    usage: Usage | None = None

    @property
    def energy_j(self) -> float | None:
        return self.usage.job_j if self.usage is not None else None

    @property
    def energy_kwh(self) -> float | None:
        joules = self.energy_j
        return joules / J_PER_KWH if joules is not None else None

    def gco2e(self, intensity_g_per_kwh: float | None = None) -> float | None:
        """Location-based estimate: energy x grid intensity (GREENKPI_GRID_INTENSITY, else the
        world average, see carbon_intensity())."""
        kwh = self.energy_kwh
        return kwh * carbon_intensity(intensity_g_per_kwh) if kwh is not None else None

    def finish(self, wait_s: float = USAGE_WAIT_S) -> None:
        self.ended = time.time()
        if self.registered_at is None:
            return
        if read_usage(self.registry, self.pid, self.registered_at) is None:
            return  # no agent counts this registration: nothing to wait for
        self.usage = wait_for_usage(self.registry, self.pid, self.registered_at, self.ended, wait_s)


@contextmanager
def track(
    *,
    team: str,
    model: str | None = None,
    run: str | None = None,
    tags: dict[str, str] | None = None,
    directory: str | os.PathLike[str] | None = None,
    mlflow: bool | MlflowLogger = False,
) -> Iterator[Tracked]:
    """Attribute this process's (and its children's) GPU energy while the block runs; the
    yielded handle holds the block's measured energy once it ends (see Tracked).

    ``mlflow=True`` also writes the block's energy, GPU-hours and CO2e into the active MLflow
    run when it ends (``greenkpi_collector.mlflow_log``: for teams whose backend has no MLflow
    link); pass an ``MlflowLogger`` to name the run, the server or the intensity."""
    logger = MlflowLogger() if mlflow is True else (mlflow or None)
    where = registry_dir(directory)
    pid = os.getpid()
    handle = Tracked(pid=pid, registry=where, registered_at=None)
    try:
        record = registration(pid=pid, team=team, model=model, run=run, tags=tags)
        register(where, record)
        handle.registered_at = record["registered_at"]
    except OSError as exc:
        warnings.warn(
            f"greenkpi: cannot register with the collector ({exc}); energy stays unattributed",
            RuntimeWarning,
            stacklevel=3,
        )
    try:
        yield handle
    finally:
        if handle.registered_at is not None:
            handle.finish()
            unregister(where, pid)
        if logger is not None:
            logger.finish(
                agent_energy_j=handle.energy_j,
                intensity_g_per_kwh=carbon_intensity(logger.intensity),
            )


# `wrap --budget-*`: the job succeeded but used more than its budget (docs/ci.md). Distinct from
# the codes of common tools (1, 2, 126, 127, 128+N), so a pipeline can tell "over budget" apart.
OVER_BUDGET_EXIT = 86


@dataclass(frozen=True)
class Budget:
    kwh: float | None = None
    gco2e: float | None = None
    intensity_g_per_kwh: float | None = None

    @property
    def set(self) -> bool:
        return self.kwh is not None or self.gco2e is not None


def _figure(value: float, unit: str, limit: float | None) -> str:
    return f"{value:.6g} {unit}" + (f" (budget {limit:.6g})" if limit is not None else "")


def budget_verdict(tracked: Tracked, budget: Budget) -> tuple[bool | None, str, str]:
    """(over budget? None if not measured, one summary line, a Markdown summary)."""
    kwh, gco2e = tracked.energy_kwh, tracked.gco2e(budget.intensity_g_per_kwh)
    if kwh is None or gco2e is None:
        line = (
            "greenkpi: energy NOT MEASURED (no collector agent counted this job; is "
            "greenkpi-collector running with the same registry_dir?); budget not checked"
        )
        return None, line, f"### GreenKPI energy\n\n{line.removeprefix('greenkpi: ')}\n"
    intensity = carbon_intensity(budget.intensity_g_per_kwh)
    over = (budget.kwh is not None and kwh > budget.kwh) or (
        budget.gco2e is not None and gco2e > budget.gco2e
    )
    verdict = "OVER BUDGET" if over else ("within budget" if budget.set else "no budget")
    seconds = (tracked.ended or time.time()) - tracked.started
    line = (
        f"greenkpi: {_figure(kwh, 'kWh', budget.kwh)}, {_figure(gco2e, 'gCO2e', budget.gco2e)} "
        f"at {intensity:.6g} g/kWh (estimated), {seconds:.1f} s: {verdict}"
    )
    rows = [
        ("Energy (measured)", f"{kwh:.6g} kWh", _limit(budget.kwh, "kWh")),
        ("CO2e (estimated)", f"{gco2e:.6g} g", _limit(budget.gco2e, "g")),
        ("Grid intensity", f"{intensity:.6g} gCO2e/kWh", ""),
        ("Duration", f"{seconds:.1f} s", ""),
    ]
    table = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    markdown = (
        f"### GreenKPI energy: {verdict}\n\n| | this job | budget |\n|---|---|---|\n{table}\n"
    )
    return over, line, markdown


def _limit(value: float | None, unit: str) -> str:
    return f"{value:.6g} {unit}" if value is not None else "-"


def wrap(
    command: Sequence[str],
    *,
    team: str,
    model: str | None = None,
    run: str | None = None,
    tags: dict[str, str] | None = None,
    directory: str | os.PathLike[str] | None = None,
    budget: Budget | None = None,
) -> int:
    """Run ``command`` as our child under a registration of our PID; return its exit code.
    SIGINT/SIGTERM/SIGHUP are passed on, so a scheduler stopping us stops the job.

    With a budget: one summary line on stderr, a Markdown table appended to
    $GITHUB_STEP_SUMMARY when set, and OVER_BUDGET_EXIT if the command succeeded but its measured
    energy or estimated CO2e went over (a failed command keeps its own code)."""
    with track(team=team, model=model, run=run, tags=tags, directory=directory) as tracked:
        child = subprocess.Popen(list(command))

        def forward(signum: int, frame: FrameType | None) -> None:
            child.send_signal(signum)

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, forward)
        code = child.wait()
    code = code if code >= 0 else 128 - code  # killed by signal N: exit 128+N like a shell
    if budget is None:
        return code
    over, line, markdown = budget_verdict(tracked, budget)
    print(line, file=sys.stderr, flush=True)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        try:
            with open(summary, "a", encoding="utf-8") as out:
                out.write(markdown)
        except OSError as exc:
            print(f"greenkpi: cannot write GITHUB_STEP_SUMMARY ({exc})", file=sys.stderr)
    return OVER_BUDGET_EXIT if over and code == 0 else code
