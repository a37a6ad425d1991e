"""The short soak (bench/soak.py, issue 17): simulated collectors through the fault-injecting
proxy, a web-server restart and a PostgreSQL restart (its own throw-away cluster, never the
shared one); every measured window stored exactly once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.postgres
@pytest.mark.slow
def test_a_short_soak_loses_and_duplicates_nothing():
    done = subprocess.run(
        [sys.executable, "bench/soak.py", "--collectors", "10", "--seconds", "30"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
    )
    print(done.stdout)
    figures = dict(
        line.split(" ", 1) for line in done.stdout.splitlines() if line.startswith("soak_")
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert int(figures["soak_windows_measured"]) >= 10 * 2
    assert figures["soak_windows_lost"] == "0"
    assert figures["soak_windows_duplicated"] == "0"
    assert figures["soak_windows_stored"] == figures["soak_windows_measured"]
