"""Declare who a process works for: ``track()`` from Python, ``wrap`` from the shell.

Both write a registration for a PID into the registry directory the local agent reads
(``GREENKPI_REGISTRY_DIR``, default below). A training job never fails because of us: if the
registry cannot be written, it warns and runs unattributed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from greenkpi_collector.attribution import register, registration, unregister

DEFAULT_REGISTRY_DIR = "/var/lib/greenkpi-collector/registry"


def registry_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    return Path(explicit or os.environ.get("GREENKPI_REGISTRY_DIR") or DEFAULT_REGISTRY_DIR)


@contextmanager
def track(
    *,
    team: str,
    model: str | None = None,
    run: str | None = None,
    tags: dict[str, str] | None = None,
    directory: str | os.PathLike[str] | None = None,
) -> Iterator[None]:
    """Attribute this process's (and its children's) GPU energy while the block runs."""
    where = registry_dir(directory)
    pid = os.getpid()
    try:
        register(where, registration(pid=pid, team=team, model=model, run=run, tags=tags))
        registered = True
    except OSError as exc:
        warnings.warn(
            f"greenkpi: cannot register with the collector ({exc}); energy stays unattributed",
            RuntimeWarning,
            stacklevel=3,
        )
        registered = False
    try:
        yield
    finally:
        if registered:
            unregister(where, pid)


def wrap(
    command: Sequence[str],
    *,
    team: str,
    model: str | None = None,
    run: str | None = None,
    tags: dict[str, str] | None = None,
    directory: str | os.PathLike[str] | None = None,
) -> int:
    """Run ``command`` as our child under a registration of our PID; return its exit code.
    SIGINT/SIGTERM/SIGHUP are passed on, so a scheduler stopping us stops the job."""
    with track(team=team, model=model, run=run, tags=tags, directory=directory):
        child = subprocess.Popen(list(command))

        def forward(signum: int, frame: FrameType | None) -> None:
            child.send_signal(signum)

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, forward)
        code = child.wait()
    return code if code >= 0 else 128 - code  # killed by signal N: exit 128+N like a shell
