"""A real collector process against a local server that fails on purpose."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from gkc_helpers import COLLECTOR, REPO, collector_env, spool_depth, wait_until

pytestmark = pytest.mark.slow


def start(tmp_path: Path, url: str, **extra: str) -> subprocess.Popen:
    env = collector_env(tmp_path, url, **extra)
    log = open(tmp_path / "collector.log", "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([COLLECTOR, "run"], env=env, stdout=log, stderr=log, cwd=REPO)


def test_sigterm_finishes_the_send_in_flight_then_exits_cleanly(tmp_path, scripted_server) -> None:
    scripted_server.script = [(201, {}, {}, 1.5)]  # the first answer takes 1.5 s
    proc = start(tmp_path, scripted_server.url)
    assert scripted_server.request_started.wait(20), "no request arrived"
    proc.send_signal(signal.SIGTERM)
    began = time.monotonic()
    assert proc.wait(timeout=15) == 0, (tmp_path / "collector.log").read_text()[-2000:]
    assert time.monotonic() - began >= 1.2  # it waited for the answer instead of dropping it
    first = scripted_server.seen[0].key
    assert first in scripted_server.stored
    waiting, measured = spool_depth(tmp_path / "state")
    assert waiting == 0  # the acked batch, and the last partial window sent in the grace time
    assert sum(scripted_server.stored.values()) == measured


def test_500_429_413_400_each_get_their_treatment(tmp_path, scripted_server) -> None:
    errors = [
        {"pointer": "/samples/0/energy_j", "code": "range", "detail": "bad", "sample_index": 0}
    ]
    scripted_server.script = [
        (500, {}, {"title": "boom"}, 0),
        (503, {}, {"title": "busy"}, 0),
        (429, {"Retry-After": "1"}, {"title": "slow down"}, 0),
        (400, {}, {"title": "Invalid batch", "errors": errors}, 0),
    ]
    scripted_server.max_samples = 2  # then: anything bigger gets 413 and must be split
    proc = start(tmp_path, scripted_server.url, GREENKPI_BATCH_MAX_SAMPLES="6")
    try:
        wait_until(lambda: len(scripted_server.seen) >= 8, 30, "requests")
        wait_until(lambda: spool_depth(tmp_path / "state")[0] == 0, 30, "the spool to drain")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    seen = scripted_server.seen
    assert seen[0].key == seen[1].key == seen[2].key == seen[3].key  # retried, same batch
    assert seen[3].at - seen[2].at >= 0.95  # Retry-After: 1 honoured
    assert all(s.samples <= 2 for s in seen if s.key in scripted_server.stored)  # 413 → split
    assert any(s.samples > 2 for s in seen)  # a batch was indeed too large at first
    report = subprocess.run(
        [COLLECTOR, "spool", "--json", "--state-dir", str(tmp_path / "state")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    data = json.loads(report.stdout)
    assert data["dead_samples"] >= 1 and data["dead"][0]["status"] == 400
    _, measured = spool_depth(tmp_path / "state")
    assert sum(scripted_server.stored.values()) + data["dead_samples"] == measured
    text = subprocess.run(
        [COLLECTOR, "spool", "--state-dir", str(tmp_path / "state")],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    assert "dead letters: 1 batch(es)" in text and "HTTP 400" in text
