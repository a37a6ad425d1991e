"""Retry classification against a real local HTTP server answering from a script."""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from greenkpi_collector.sender import Sender
from greenkpi_collector.spool import Spool
from greenkpi_collector.transport import (
    MAX_RESPONSE_BYTES,
    Transport,
    backoff_s,
    classify,
    parse_retry_after,
)

from greenkpi_schema import HostFacts
from greenkpi_schema.v1 import Sample, sample_to_json

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def sample(i: int) -> dict:
    start = T0 + timedelta(seconds=60 * i)
    return sample_to_json(
        Sample("GPU-a", "gpu", start, start + timedelta(seconds=60), 100.0 + i, "counter")
    )


def make_sender(tmp_path: Path, url: str, n: int, max_samples: int = 1000) -> Sender:
    spool = Spool(tmp_path / "spool.sqlite3")
    spool.add_windows([sample(i) for i in range(n)], {}, "boot")
    return Sender(
        spool=spool,
        transport=Transport(url, lambda: "gkc_test", timeout_s=5),
        facts=lambda: HostFacts(hostname="h1", clock=datetime.now(UTC)),
        max_samples=max_samples,
        backoff_base_s=0.05,
        backoff_cap_s=0.4,
        rng=random.Random(1),
    )


def drain(sender: Sender, steps: int = 50) -> list[float]:
    """Step the sender like its loop does, but record the waits instead of sleeping them."""
    waits = []
    for _ in range(steps):
        delay = sender.step()
        if delay is None:
            return waits
        waits.append(delay)
    raise AssertionError("spool not drained")


def test_backoff_grows_is_jittered_and_capped() -> None:
    rng = random.Random(7)
    delays = [backoff_s(n, 1.0, 60.0, rng) for n in range(12)]
    for n, d in enumerate(delays):
        cap = min(60.0, 2.0**n)
        assert cap / 2 <= d <= cap
    assert max(delays) <= 60.0 and delays[5] > delays[0]
    assert len({round(backoff_s(3, 1.0, 60.0, random.Random(s)), 6) for s in range(20)}) > 10


def test_retry_after_accepts_seconds_and_dates_and_is_bounded() -> None:
    now = time.time()
    assert parse_retry_after("30", now) == 30.0
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now + 120))
    assert 118 <= parse_retry_after(date, now) <= 121
    assert parse_retry_after("soon", now) == 30.0 and parse_retry_after("999999", now) == 3600.0


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (201, "ok"),
        (500, "retry"),
        (502, "retry"),
        (503, "retry"),
        (408, "retry"),
        (409, "retry"),
        (429, "rate_limited"),
        (413, "too_large"),
        (401, "auth"),
        (403, "auth"),
        (400, "rejected"),
        (422, "rejected"),
        (404, "rejected"),
    ],
)
def test_status_classification(status: int, kind: str) -> None:
    assert classify(status, {}, None).kind == kind


def test_5xx_and_network_errors_retry_the_same_batch_with_growing_waits(
    tmp_path, scripted_server
) -> None:
    scripted_server.script = [(500, {}, {}, 0)] * 3 + [(503, {}, {}, 0)]
    sender = make_sender(tmp_path, scripted_server.url, 3)
    waits = drain(sender)
    assert len(scripted_server.seen) == 5
    assert len({s.key for s in scripted_server.seen}) == 1  # same idempotency key every time
    assert all(0.025 <= w <= 0.4 for w in waits[:4]) and waits[3] > waits[0]
    assert list(scripted_server.stored.values()) == [3]


def test_connection_refused_is_retried_and_nothing_is_lost(tmp_path) -> None:
    from gkc_helpers import free_port

    sender = make_sender(tmp_path, f"http://127.0.0.1:{free_port()}", 2)
    for _ in range(3):
        assert sender.step() > 0
    assert sender.spool.stats().depth == 2
    assert sender.last_outcome is not None and sender.last_outcome.status is None


def test_429_waits_for_retry_after(tmp_path, scripted_server) -> None:
    scripted_server.script = [(429, {"Retry-After": "7"}, {"title": "slow down"}, 0)]
    sender = make_sender(tmp_path, scripted_server.url, 1)
    assert sender.step() == 7.0
    assert sender.step() == 0.0 and sender.spool.stats().depth == 0


def test_413_splits_until_the_server_accepts(tmp_path, scripted_server) -> None:
    scripted_server.max_samples = 2
    sender = make_sender(tmp_path, scripted_server.url, 7)
    drain(sender)
    accepted = [s for s in scripted_server.seen if s.samples <= 2]
    assert sum(scripted_server.stored.values()) == 7
    energies = [smp["energy_j"] for s in accepted for smp in s.body["samples"]]
    assert sorted(energies) == energies == [100.0 + i for i in range(7)]  # order kept


def test_a_400_naming_samples_dead_letters_only_those(tmp_path, scripted_server) -> None:
    errors = [
        {
            "pointer": "/samples/1/shares/0/team",
            "code": "unknown_team",
            "detail": "no team 'x'",
            "sample_index": 1,
        }
    ]
    scripted_server.script = [(400, {}, {"title": "Invalid batch", "errors": errors}, 0)]
    sender = make_sender(tmp_path, scripted_server.url, 3)
    drain(sender)
    assert [s.samples for s in scripted_server.seen] == [3, 2]
    (dead,) = sender.spool.dead_letters()
    assert dead["status"] == 400 and dead["samples"] == 1 and "unknown_team" in dead["error"]


def test_other_4xx_dead_letter_the_batch_and_the_next_batch_proceeds(
    tmp_path, scripted_server
) -> None:
    scripted_server.script = [(422, {}, {"title": "Idempotency-Key reused"}, 0)]
    sender = make_sender(tmp_path, scripted_server.url, 4, max_samples=2)
    drain(sender)
    assert [s.samples for s in scripted_server.seen] == [2, 2]
    assert sender.spool.stats().dead_samples == 2 and len(scripted_server.stored) == 1


def test_a_rejected_token_keeps_the_data(tmp_path, scripted_server) -> None:
    scripted_server.script = [(401, {}, {"detail": "invalid token"}, 0)]
    sender = make_sender(tmp_path, scripted_server.url, 2)
    assert sender.step() == sender.cap_s
    assert sender.spool.stats().depth == 2 and sender.spool.stats().dead_batches == 0
    assert sender.step() == 0.0


def test_the_body_carries_health_and_is_gzipped(tmp_path, scripted_server) -> None:
    sender = make_sender(tmp_path, scripted_server.url, 20)
    drain(sender)
    (seen,) = scripted_server.seen
    assert seen.headers["Content-Encoding"] == "gzip"
    assert seen.headers["Authorization"] == "Bearer gkc_test" and seen.key
    host = seen.body["host"]
    assert host["agent_version"] and host["spool_depth"] == 20 and host["dropped_windows"] == 0
    assert "clock" in host


def test_at_most_64_kib_of_a_response_is_read(tmp_path) -> None:
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    sent = []

    def huge() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        head = b"HTTP/1.1 500 Oops\r\nContent-Length: 104857600\r\nContent-Type: application/json\r\n\r\n"
        conn.sendall(head)
        try:
            for _ in range(1600):  # 100 MiB offered; we must stop reading long before
                conn.sendall(b"x" * 65536)
                sent.append(1)
        except OSError:
            pass
        conn.close()

    thread = threading.Thread(target=huge, daemon=True)
    thread.start()
    transport = Transport(f"http://127.0.0.1:{server.getsockname()[1]}", lambda: "t", timeout_s=5)
    outcome = transport.post_batch(json.dumps({"samples": []}).encode(), "k")
    thread.join(10)
    server.close()
    assert outcome.kind == "retry" and outcome.status == 500
    assert len(sent) * 65536 < 100 * 2**20  # the server could not push it all: we hung up
    assert MAX_RESPONSE_BYTES == 64 * 1024
