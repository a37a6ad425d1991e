"""The local durable queue: SQLite in WAL mode, written before any send, emptied only by a 2xx.

Tables: ``windows`` (measured samples not yet in a batch), ``outbox`` (formed batches: their
idempotency key and exact body are fixed once, so a resend after a crash is a harmless replay),
``dead`` (batches the server refused for good, kept for ``greenkpi-collector spool``) and
``state`` (drop counter, per-device cursors, measured count). Each change is one transaction, so a
SIGKILL at any point leaves either the old or the new state. The quota counts payload bytes and
drops the oldest data first, adding the number of samples to ``dropped``.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEAD_KEEP = 500  # dead letters kept for inspection; older ones are forgotten

_SCHEMA = """
CREATE TABLE IF NOT EXISTS windows (id INTEGER PRIMARY KEY, created REAL NOT NULL,
    body TEXT NOT NULL, bytes INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY, created REAL NOT NULL,
    idem_key TEXT NOT NULL UNIQUE, body BLOB NOT NULL, samples INTEGER NOT NULL,
    bytes INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT);
CREATE TABLE IF NOT EXISTS dead (id INTEGER PRIMARY KEY, created REAL NOT NULL,
    idem_key TEXT NOT NULL, status INTEGER, error TEXT, body BLOB NOT NULL,
    samples INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class OutboxItem:
    id: int
    key: str
    body: bytes
    samples: int
    attempts: int


@dataclass(frozen=True)
class SpoolStats:
    pending_windows: int
    outbox_batches: int
    outbox_samples: int
    dead_batches: int
    dead_samples: int
    dropped_windows: int
    measured_windows: int
    payload_bytes: int
    oldest_created: float | None

    @property
    def depth(self) -> int:
        return self.pending_windows + self.outbox_samples


# build(samples) -> (body to send, indices of samples the local schema check refused + why)
BuildFn = Callable[[list[dict[str, Any]]], tuple[bytes, list[tuple[int, str]]]]


class Spool:
    def __init__(self, path: Path, quota_bytes: int = 100 * 2**20) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.quota_bytes = quota_bytes
        self.unpersisted_drops = 0  # drops we could not even record (disk full)
        # Each Spool is used by one thread at a time, but may be created and closed by another.
        self.db = sqlite3.connect(
            str(path), timeout=30, isolation_level=None, check_same_thread=False
        )
        self.db.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed window survives power loss too, not only a process crash.
        self.db.execute("PRAGMA synchronous=FULL")
        with self._tx():
            for statement in _SCHEMA.strip().split(";"):
                if statement.strip():
                    self.db.execute(statement)

    @classmethod
    def read_only(cls, path: Path) -> Spool:
        """The spool opened for reading only (``check``): no schema, no directory, no writes."""
        spool = cls.__new__(cls)
        spool.path = path
        spool.quota_bytes = 0
        spool.unpersisted_drops = 0
        # Without a -wal file (no agent has it open) everything is in the main file, and
        # immutable=1 keeps SQLite from creating -wal/-shm beside it; with one, the agent's own
        # -wal/-shm already exist and a plain read-only connection sees its latest windows.
        wal = path.with_name(path.name + "-wal").exists()
        mode = "mode=ro" if wal else "mode=ro&immutable=1"
        spool.db = sqlite3.connect(
            f"{path.resolve().as_uri()}?{mode}", uri=True, timeout=30, check_same_thread=False
        )
        return spool

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            if self.db.in_transaction:  # SQLITE_FULL has already rolled it back
                self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # --- state ---------------------------------------------------------------------------------

    def _get(self, key: str, default: str) -> str:
        row = self.db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def _set(self, key: str, value: str) -> None:
        self.db.execute(
            "INSERT INTO state (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _bump(self, key: str, by: int) -> None:
        if by:
            self._set(key, str(int(self._get(key, "0")) + by))

    def cursors(self) -> dict[str, dict[str, Any]]:
        return json.loads(self._get("cursors", "{}"))

    def boot_id(self) -> str:
        return self._get("boot_id", "")

    def save_cursors(self, cursors: dict[str, dict[str, Any]], boot_id: str) -> None:
        with self._tx():
            self._set("cursors", json.dumps(cursors))
            self._set("boot_id", boot_id)

    def dropped(self) -> int:
        return int(self._get("dropped", "0")) + self.unpersisted_drops

    # --- writing windows -------------------------------------------------------------------------

    def add_windows(
        self, samples: list[dict[str, Any]], cursors: dict[str, dict[str, Any]], boot_id: str
    ) -> None:
        """Store closed windows and the cursors they end at, atomically. Never raises on a full
        disk: it drops the oldest data to make room, and counts what it could not keep."""
        rows = [(time.time(), json.dumps(s), 0) for s in samples]
        rows = [(created, body, len(body)) for created, body, _ in rows]
        for attempt in range(3):
            try:
                with self._tx():
                    self.db.executemany(
                        "INSERT INTO windows (created, body, bytes) VALUES (?, ?, ?)", rows
                    )
                    self._set("cursors", json.dumps(cursors))
                    self._set("boot_id", boot_id)
                    self._bump("measured", len(rows))
                    self._enforce_quota()
                return
            except sqlite3.OperationalError as exc:
                if "full" not in str(exc).lower() or attempt == 2:
                    if "full" in str(exc).lower():
                        self.unpersisted_drops += len(rows)
                        return
                    raise
                self._free_for_disk_full()

    def _free_for_disk_full(self) -> None:
        """SQLITE_FULL: drop the oldest tenth of the pending data (deletes need little space)."""
        try:
            with self._tx():
                n = self.db.execute("SELECT COUNT(*) FROM windows").fetchone()[0]
                self._drop_oldest_windows(max(1, n // 10))
        except sqlite3.OperationalError:
            pass

    def _payload_bytes(self) -> int:
        row = self.db.execute(
            "SELECT (SELECT COALESCE(SUM(bytes), 0) FROM windows) "
            "+ (SELECT COALESCE(SUM(bytes), 0) FROM outbox)"
        ).fetchone()
        return int(row[0])

    def _drop_oldest_windows(self, n: int) -> int:
        ids = [r[0] for r in self.db.execute("SELECT id FROM windows ORDER BY id LIMIT ?", (n,))]
        if ids:
            self.db.execute("DELETE FROM windows WHERE id <= ?", (ids[-1],))
            self._bump("dropped", len(ids))
        return len(ids)

    def _enforce_quota(self) -> None:
        """Oldest first: formed batches always hold older windows than the pending ones (they
        are cut from the head of the queue), so drop batches first, then windows by age."""
        excess = self._payload_bytes() - self.quota_bytes
        while excess > 0:
            batch = self.db.execute(
                "SELECT id, bytes, samples FROM outbox ORDER BY id LIMIT 1"
            ).fetchone()
            if batch is not None:
                self.db.execute("DELETE FROM outbox WHERE id = ?", (batch[0],))
                self._bump("dropped", batch[2])
                excess -= batch[1]
                continue
            row = self.db.execute("SELECT id, bytes FROM windows ORDER BY id LIMIT 1").fetchone()
            if row is None:
                return
            self.db.execute("DELETE FROM windows WHERE id = ?", (row[0],))
            self._bump("dropped", 1)
            excess -= row[1]

    # --- sending -------------------------------------------------------------------------------

    def next_batch(self, max_samples: int, build: BuildFn) -> OutboxItem | None:
        """The oldest formed batch, or a new one from the oldest windows (body and key fixed)."""
        item = self._oldest_outbox()
        if item is not None:
            return item
        with self._tx():
            rows = self.db.execute(
                "SELECT id, body FROM windows ORDER BY id LIMIT ?", (max_samples,)
            ).fetchall()
            if not rows:
                return None
            samples = [json.loads(body) for _, body in rows]
            body, refused = build(samples)
            if refused:
                bad = {i for i, _ in refused}
                keep = [s for i, s in enumerate(samples) if i not in bad]
                reason = "; ".join(sorted({why for _, why in refused}))[:1000]
                self._insert_dead(
                    None, reason, json.dumps([samples[i] for i in sorted(bad)]).encode(), len(bad)
                )
                body = build(keep)[0] if keep else b""
                samples = keep
            self.db.execute("DELETE FROM windows WHERE id <= ?", (rows[-1][0],))
            if samples:
                self._insert_outbox(body, len(samples))
        return self._oldest_outbox()

    def _insert_outbox(self, body: bytes, samples: int) -> None:
        self.db.execute(
            "INSERT INTO outbox (created, idem_key, body, samples, bytes) VALUES (?, ?, ?, ?, ?)",
            (time.time(), str(uuid.uuid4()), body, samples, len(body)),
        )

    def _insert_dead(self, status: int | None, error: str, body: bytes, samples: int) -> None:
        self.db.execute(
            "INSERT INTO dead (created, idem_key, status, error, body, samples) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (time.time(), str(uuid.uuid4()), status, error[:2000], body, samples),
        )
        self.db.execute(
            "DELETE FROM dead WHERE id <= (SELECT id FROM dead ORDER BY id DESC LIMIT 1 OFFSET ?)",
            (DEAD_KEEP,),
        )

    def _oldest_outbox(self) -> OutboxItem | None:
        row = self.db.execute(
            "SELECT id, idem_key, body, samples, attempts FROM outbox ORDER BY id LIMIT 1"
        ).fetchone()
        return OutboxItem(row[0], row[1], bytes(row[2]), row[3], row[4]) if row else None

    def ack(self, item: OutboxItem) -> None:
        with self._tx():
            self.db.execute("DELETE FROM outbox WHERE id = ?", (item.id,))

    def attempted(self, item: OutboxItem, error: str) -> None:
        with self._tx():
            self.db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                (error[:1000], item.id),
            )

    def dead_letter(self, item: OutboxItem, status: int | None, error: str) -> None:
        with self._tx():
            if self.db.execute("DELETE FROM outbox WHERE id = ?", (item.id,)).rowcount:
                self._insert_dead(status, error, item.body, item.samples)

    def replace(self, item: OutboxItem, bodies: list[tuple[bytes, int]]) -> None:
        """Swap a batch for others (a 413 split, or the rest after refused samples). The new
        batches take the old one's place in the send order and get fresh idempotency keys,
        which is safe: the server stored nothing of a batch it refused."""
        with self._tx():
            if not self.db.execute("DELETE FROM outbox WHERE id = ?", (item.id,)).rowcount:
                return
            first = self.db.execute("SELECT MIN(id) FROM outbox").fetchone()[0]
            for body, samples in bodies:
                self._insert_outbox(body, samples)
            if first is not None:
                # Keep oldest-first order: renumber the new rows ahead of the older queue.
                self._reorder_new_first(len(bodies))

    def _reorder_new_first(self, n: int) -> None:
        rows = self.db.execute("SELECT * FROM outbox ORDER BY id").fetchall()
        new, old = rows[-n:], rows[:-n]
        self.db.execute("DELETE FROM outbox")
        for row in [*new, *old]:
            self.db.execute(
                "INSERT INTO outbox (created, idem_key, body, samples, bytes, attempts, "
                "last_error) VALUES (?, ?, ?, ?, ?, ?, ?)",
                row[1:],
            )

    def reject_samples(
        self,
        item: OutboxItem,
        bad: set[int],
        status: int,
        error: str,
        rebuild: Callable[[dict, list[int]], bytes],
    ) -> None:
        """Dead-letter the samples the server named, requeue the rest as a new batch."""
        data = json.loads(item.body)
        samples = data["samples"]
        keep = [i for i in range(len(samples)) if i not in bad]
        with self._tx():
            if not self.db.execute("DELETE FROM outbox WHERE id = ?", (item.id,)).rowcount:
                return
            self._insert_dead(status, error, rebuild(data, sorted(bad)), len(bad))
            if keep:
                self._insert_outbox(rebuild(data, keep), len(keep))
                if self.db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] > 1:
                    self._reorder_new_first(1)

    # --- reporting -----------------------------------------------------------------------------

    def stats(self) -> SpoolStats:
        w = self.db.execute("SELECT COUNT(*), MIN(created) FROM windows").fetchone()
        o = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(samples), 0), MIN(created) FROM outbox"
        ).fetchone()
        d = self.db.execute("SELECT COUNT(*), COALESCE(SUM(samples), 0) FROM dead").fetchone()
        oldest = [t for t in (w[1], o[2]) if t is not None]
        return SpoolStats(
            pending_windows=w[0],
            outbox_batches=o[0],
            outbox_samples=o[1],
            dead_batches=d[0],
            dead_samples=d[1],
            dropped_windows=self.dropped(),
            measured_windows=int(self._get("measured", "0")),
            payload_bytes=self._payload_bytes(),
            oldest_created=min(oldest) if oldest else None,
        )

    def dead_letters(self, limit: int = 20) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT id, created, idem_key, status, error, samples FROM dead ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        keys = ("id", "created", "key", "status", "error", "samples")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def requeue_dead(self) -> int:
        """Move dead batches back to the outbox (after the operator fixed the cause)."""
        with self._tx():
            rows = self.db.execute("SELECT id, body, samples FROM dead ORDER BY id").fetchall()
            for _, body, samples in rows:
                if bytes(body).lstrip().startswith(b"{"):
                    self._insert_outbox(bytes(body), samples)
                else:  # refused-by-local-check samples are a bare list: back to windows
                    for s in json.loads(body):
                        text = json.dumps(s)
                        self.db.execute(
                            "INSERT INTO windows (created, body, bytes) VALUES (?, ?, ?)",
                            (time.time(), text, len(text)),
                        )
            self.db.execute("DELETE FROM dead")
        return len(rows)
