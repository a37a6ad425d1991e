"""The spool: durable before sending, fixed key and body per batch, quota drops oldest first."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from greenkpi_collector.spool import Spool


def window(i: int, pad: int = 0) -> dict:
    return {"device_uuid": "GPU-a", "start": f"t{i:05d}", "energy_j": float(i), "pad": "x" * pad}


def build(samples: list[dict]) -> tuple[bytes, list[tuple[int, str]]]:
    return json.dumps({"host": {"hostname": "h"}, "samples": samples}).encode(), []


def starts(body: bytes) -> list[str]:
    return [s["start"] for s in json.loads(body)["samples"]]


def test_windows_survive_a_reopen_and_a_batch_keeps_its_key_and_body(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    spool = Spool(path)
    spool.add_windows([window(i) for i in range(5)], {"GPU-a": {"t": 1.0, "c": 5}}, "boot")
    first = spool.next_batch(3, build)
    spool.close()  # as if killed right after forming the batch, before the send
    again = Spool(path)
    assert again.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    second = again.next_batch(3, build)
    assert first is not None and second is not None
    assert (second.key, second.body) == (first.key, first.body)  # a replay, not a new batch
    assert starts(second.body) == ["t00000", "t00001", "t00002"]
    assert again.cursors() == {"GPU-a": {"t": 1.0, "c": 5}}
    again.ack(second)
    third = again.next_batch(3, build)
    assert third is not None and starts(third.body) == ["t00003", "t00004"]
    again.ack(third)
    assert again.next_batch(3, build) is None
    stats = again.stats()
    assert (stats.depth, stats.measured_windows, stats.dropped_windows) == (0, 5, 0)


def test_the_quota_drops_the_oldest_windows_and_counts_them(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3", quota_bytes=10_000)
    for i in range(30):
        spool.add_windows([window(i, pad=900)], {}, "boot")
    stats = spool.stats()
    assert stats.payload_bytes <= 10_000
    assert stats.dropped_windows == 30 - stats.pending_windows > 0
    kept = [json.loads(b)["start"] for (b,) in spool.db.execute("SELECT body FROM windows")]
    assert kept == [f"t{i:05d}" for i in range(30 - len(kept), 30)]  # the newest survive


def test_the_quota_drops_a_formed_batch_before_newer_windows(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3", quota_bytes=5_000)
    spool.add_windows([window(i, pad=400) for i in range(8)], {}, "boot")
    assert spool.next_batch(8, build) is not None  # the 8 oldest now form one outbox batch
    spool.add_windows([window(100, pad=2000)], {}, "boot")
    stats = spool.stats()
    assert stats.outbox_batches == 0 and stats.pending_windows == 1
    assert stats.dropped_windows == 8


def test_a_full_disk_drops_oldest_instead_of_crashing(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3", quota_bytes=10**9)
    for i in range(10):
        spool.add_windows([window(i, pad=3000)], {}, "boot")
    pages = spool.db.execute("PRAGMA page_count").fetchone()[0]
    spool.db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is now full
    for i in range(10, 40):
        spool.add_windows([window(i, pad=3000)], {}, "boot")  # must not raise
    stats = spool.stats()
    assert stats.dropped_windows > 0
    assert stats.pending_windows + stats.dropped_windows == 40


def test_a_split_replaces_the_batch_at_the_head_of_the_queue(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3")
    spool.add_windows([window(i) for i in range(4)], {}, "boot")
    item = spool.next_batch(4, build)
    assert item is not None
    spool.replace(
        item, [(build([window(0), window(1)])[0], 2), (build([window(2), window(3)])[0], 2)]
    )
    a = spool.next_batch(4, build)
    assert a is not None and starts(a.body) == ["t00000", "t00001"] and a.key != item.key
    spool.ack(a)
    b = spool.next_batch(4, build)
    assert b is not None and starts(b.body) == ["t00002", "t00003"]


def test_refused_samples_go_to_dead_letters_and_the_rest_is_requeued_first(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3")
    spool.add_windows([window(i) for i in range(3)], {}, "boot")
    item = spool.next_batch(3, build)
    assert item is not None
    spool.add_windows([window(9)], {}, "boot")
    spool.reject_samples(
        item,
        {1},
        400,
        "unknown team",
        lambda data, idx: json.dumps(
            {**data, "samples": [data["samples"][i] for i in idx]}
        ).encode(),
    )
    rest = spool.next_batch(3, build)
    assert rest is not None and starts(rest.body) == ["t00000", "t00002"]
    (dead,) = spool.dead_letters()
    assert (dead["status"], dead["samples"], dead["error"]) == (400, 1, "unknown team")
    spool.ack(rest)
    assert spool.requeue_dead() == 1
    again = spool.next_batch(3, build)
    assert again is not None and starts(again.body) == ["t00001"]


def test_local_schema_refusals_never_reach_the_outbox(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3")
    spool.add_windows([window(i) for i in range(3)], {}, "boot")

    def picky(samples: list[dict]) -> tuple[bytes, list[tuple[int, str]]]:
        bad = [(i, "negative") for i, s in enumerate(samples) if s["start"] == "t00001"]
        return build(samples)[0], bad

    item = spool.next_batch(3, picky)
    assert item is not None and starts(item.body) == ["t00000", "t00002"]
    assert spool.stats().dead_samples == 1


def test_a_sigkill_mid_transaction_leaves_the_old_state(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3")
    spool.add_windows([window(0)], {}, "boot")

    def crash(samples: list[dict]) -> tuple[bytes, list[tuple[int, str]]]:
        raise KeyboardInterrupt  # stands for dying between reading and moving the windows

    with pytest.raises(KeyboardInterrupt):
        spool.next_batch(10, crash)
    stats = spool.stats()
    assert (stats.pending_windows, stats.outbox_batches) == (1, 0)
    assert sqlite3.connect(spool.path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
