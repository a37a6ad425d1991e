"""End to end: a real `greenkpi-collector run` process (simulated GPUs) against the real backend
(live_server; PostgreSQL when DATABASE_URL says so). Ground truth is the simulator's closed-form
energy and the spool's own count of measured windows; the check is the stored Sample rows."""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from gkc_helpers import COLLECTOR, REPO, Proxy, collector_env, free_port, spool_depth, wait_until
from greenkpi_collector.sources.sim import sim_gpus

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
HOST = "e2e-host"


@pytest.fixture(autouse=True)
def _no_rate_limit(settings) -> None:
    settings.INGEST_RATE_PER_MINUTE = 1_000_000  # other tests share the throttle cache


def start(tmp_path: Path, server: str, secret: str, **extra: str) -> subprocess.Popen:
    env = collector_env(tmp_path, server, secret, GREENKPI_HOSTNAME=HOST, **extra)
    log = open(tmp_path / "collector.log", "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([COLLECTOR, "run"], env=env, stdout=log, stderr=log, cwd=REPO)


def stop(proc: subprocess.Popen, tmp_path: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("collector ignored SIGTERM") from None
    assert code == 0, (tmp_path / "collector.log").read_text()[-3000:]


def stored() -> dict[str, list]:
    from greenkpi.ingest.models import Sample

    rows = (
        Sample.objects.filter(device__host__hostname=HOST)
        .order_by("device__uuid", "window_start")
        .values_list("device__uuid", "window_start", "window_end", "energy_j", "method")
    )
    out: dict[str, list] = {}
    for uuid, *rest in rows:
        out.setdefault(uuid, []).append(rest)
    return out


def assert_exactly_what_was_measured(tmp_path: Path) -> int:
    """Every device's windows tile time with no gap and no overlap, each holds the simulator's
    energy for its span, and the row count equals what the spool says it measured."""
    waiting, measured = spool_depth(tmp_path / "state")
    assert waiting == 0
    by_device = stored()
    gpus = {g.uuid: g for g in sim_gpus(2, os.uname().nodename.split(".")[0] or "sim")}
    assert set(by_device) == set(gpus)
    assert sum(len(v) for v in by_device.values()) == measured
    for uuid, windows in by_device.items():
        gpu = gpus[uuid]
        for (_, end, _, _), (start, _, _, _) in itertools.pairwise(windows):
            assert end == start, f"{uuid}: gap or overlap at {end} / {start}"
        for start, end, energy, method in windows:
            expected = gpu.energy_j(end.timestamp()) - gpu.energy_j(start.timestamp())
            assert method == "counter"
            assert energy == pytest.approx(expected, abs=6.0)  # reading vs timestamp: ms
        total = sum(w[2] for w in windows)
        span = gpu.energy_j(windows[-1][1].timestamp()) - gpu.energy_j(windows[0][0].timestamp())
        assert total == pytest.approx(span, abs=6.0)
    return measured


def test_backend_down_then_up_every_window_arrives_exactly_once(
    tmp_path, live_server, acme_token
) -> None:
    _, secret = acme_token
    port = free_port()
    target = live_server.url.removeprefix("http://").split(":")
    proxy = Proxy(port, (target[0], int(target[1])))
    proc = start(tmp_path, f"http://127.0.0.1:{port}", secret)
    try:
        wait_until(
            lambda: spool_depth(tmp_path / "state")[0] >= 8, 20, "windows to pile up while down"
        )
        proxy.start()  # the backend comes back
        wait_until(lambda: spool_depth(tmp_path / "state")[0] == 0, 30, "the backlog to drain")
    finally:
        stop(proc, tmp_path)
        proxy.stop()
    measured = assert_exactly_what_was_measured(tmp_path)
    assert measured >= 8


def test_sigkill_at_random_points_loses_and_duplicates_nothing(
    tmp_path, live_server, acme_token
) -> None:
    _, secret = acme_token
    rng = random.Random(int(os.environ.get("GK_SEED", "11")))
    kills = int(os.environ.get("GK_KILLS", "25"))
    spooled_runs = 0
    for i in range(kills):
        before = spool_depth(tmp_path / "state")[1] if i else 0
        proc = start(tmp_path, live_server.url, secret, GREENKPI_BATCH_MAX_SAMPLES="3")
        if i % 5:
            # Most kills land after this run has measured a window (sampling, spooling, sending:
            # wherever the random delay falls); waiting for it, not for a fixed time, keeps the
            # test's meaning on a loaded machine where start-up alone can take over a second.
            wait_until(
                lambda b=before: spool_depth(tmp_path / "state")[1] > b, 30, "a window this run"
            )
            spooled_runs += 1
        time.sleep(rng.uniform(0.0, 1.2))  # every fifth run: anywhere in start-up
        proc.kill()
        proc.wait(timeout=10)
    before = spool_depth(tmp_path / "state")[1]
    proc = start(tmp_path, live_server.url, secret, GREENKPI_BATCH_MAX_SAMPLES="3")
    try:
        # a window of this last run: it is past start-up (its SIGTERM handler is installed)
        wait_until(lambda: spool_depth(tmp_path / "state")[1] > before, 30, "a window")
        time.sleep(1.0)
        wait_until(lambda: spool_depth(tmp_path / "state")[0] == 0, 30, "the spool to drain")
    finally:
        stop(proc, tmp_path)
    import sqlite3

    check = sqlite3.connect(tmp_path / "state" / "spool.sqlite3").execute("PRAGMA integrity_check")
    assert check.fetchone()[0] == "ok"
    measured = assert_exactly_what_was_measured(tmp_path)
    assert measured >= spooled_runs > 0  # those runs spooled something; all of it arrived once
