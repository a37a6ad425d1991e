"""Helpers shared by the collector tests (importable as gkc_helpers)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from greenkpi_collector.sources.sim import SIM_EPOCH

REPO = Path(__file__).resolve().parents[2]
COLLECTOR = str(REPO / ".venv" / "bin" / "greenkpi-collector")


class Clock:
    """A wall clock the test moves by hand; starts on a window boundary."""

    def __init__(self, t: float = SIM_EPOCH + 6000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def collector_env(
    tmp_path: Path, server: str, token: str = "gkc_test", **extra: str
) -> dict[str, str]:
    """Environment for a real `greenkpi-collector run` using simulated GPUs and fast windows."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENKPI_")}
    env.update(
        GREENKPI_SERVER=server,
        GREENKPI_TOKEN=token,
        GREENKPI_STATE_DIR=str(tmp_path / "state"),
        GREENKPI_GPU="sim",
        GREENKPI_SIM_GPUS="2",
        GREENKPI_CPU="off",
        GREENKPI_SAMPLE_INTERVAL_S="0.1",
        GREENKPI_WINDOW_S="0.5",
        GREENKPI_BACKOFF_BASE_S="0.05",
        GREENKPI_BACKOFF_CAP_S="0.5",
        GREENKPI_TIMEOUT_S="5",
        GREENKPI_LOG_LEVEL="debug",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env
