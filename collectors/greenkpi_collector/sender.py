"""The sending loop: oldest batch first, one at a time, each answer handled as transport.py says.

A batch leaves the spool only on 2xx (ack), a split (replaced by its halves), or a permanent
refusal (dead letters). Anything else keeps it, with the same key and body, for the next try.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from greenkpi_collector import __version__
from greenkpi_collector.spool import OutboxItem, Spool
from greenkpi_collector.transport import Outcome, Transport, backoff_s
from greenkpi_schema import HostFacts, Limits, ValidationFailed, parse_batch
from greenkpi_schema.v1 import SCHEMA_VERSION, Batch, batch_to_json

log = logging.getLogger("greenkpi_collector")
IDLE_POLL_S = 5.0  # look at the spool this often even if the sampler did not wake us


def dumps(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), allow_nan=False).encode()


class Sender:
    def __init__(
        self,
        *,
        spool: Spool,
        transport: Transport,
        facts: Callable[[], HostFacts],
        max_samples: int = 1000,
        backoff_base_s: float = 1.0,
        backoff_cap_s: float = 60.0,
        rng: random.Random | None = None,
        wake: threading.Event | None = None,
    ) -> None:
        self.spool = spool
        self.transport = transport
        self.facts = facts
        self.max_samples = min(max_samples, Limits().max_samples)
        self.base_s = backoff_base_s
        self.cap_s = backoff_cap_s
        self.rng = rng or random.Random()
        self.wake = wake or threading.Event()
        self.failures = 0  # consecutive retryable failures: drives the backoff
        self.sent_batches = 0
        self.last_outcome: Outcome | None = None

    # --- building bodies -------------------------------------------------------------------------

    def host_json(self) -> dict[str, Any]:
        facts = self.facts()
        facts.agent_version = __version__
        stats = self.spool.stats()
        facts.spool_depth = stats.depth
        facts.dropped_windows = stats.dropped_windows
        return batch_to_json(Batch(host=facts, samples=[]))["host"]

    def build(self, samples: list[dict[str, Any]]) -> tuple[bytes, list[tuple[int, str]]]:
        """The batch body, after the same schema check the server runs: samples it would refuse
        are returned for the dead letters instead of poisoning the whole batch."""
        data = {"schema_version": SCHEMA_VERSION, "host": self.host_json(), "samples": samples}
        refused: list[tuple[int, str]] = []
        try:
            parse_batch(data, now=_now())
        except ValidationFailed as exc:
            refused = [
                (e.sample_index, f"{e.pointer}: {e.code}: {e.message}")
                for e in exc.errors
                if e.sample_index is not None
            ]
        return dumps(data), refused

    @staticmethod
    def rebuild(data: dict[str, Any], indices: list[int]) -> bytes:
        """A body with only some of a batch's samples (same host facts)."""
        return dumps({**data, "samples": [data["samples"][i] for i in indices]})

    # --- one step ------------------------------------------------------------------------------

    def step(self) -> float | None:
        """Send the oldest batch once. Returns how long to wait before the next step (None: the
        spool is empty)."""
        item = self.spool.next_batch(self.max_samples, self.build)
        if item is None:
            return None
        outcome = self.transport.post_batch(item.body, item.key)
        self.last_outcome = outcome
        return self.handle(item, outcome)

    def handle(self, item: OutboxItem, outcome: Outcome) -> float:
        kind = outcome.kind
        if kind == "ok":
            self.spool.ack(item)
            self.failures = 0
            self.sent_batches += 1
            body = outcome.body or {}
            for warning in body.get("warnings") or []:
                log.warning("server: %s", warning)
            if outcome.headers.get("idempotent-replayed") == "true":
                # The last run died after the server stored this batch but before our delete.
                log.info("batch %s was already stored (idempotent replay)", item.key)
            log.debug("sent %d samples: %s", item.samples, body)
            return 0.0
        if kind == "too_large" and item.samples > 1:
            data = json.loads(item.body)
            half = item.samples // 2
            halves = [list(range(half)), list(range(half, item.samples))]
            self.spool.replace(item, [(self.rebuild(data, h), len(h)) for h in halves])
            log.info("HTTP 413: split a batch of %d samples in two", item.samples)
            return 0.0
        if kind in ("rejected", "too_large"):
            bad = outcome.bad_samples
            if kind == "rejected" and bad and max(bad) < item.samples and len(bad) < item.samples:
                self.spool.reject_samples(
                    item, bad, outcome.status or 0, outcome.detail, self.rebuild
                )
                log.error(
                    "HTTP %s: %d of %d samples refused (dead letters): %s",
                    outcome.status,
                    len(bad),
                    item.samples,
                    outcome.detail,
                )
            else:
                self.spool.dead_letter(item, outcome.status, outcome.detail)
                log.error(
                    "HTTP %s: batch of %d samples refused (dead letters): %s",
                    outcome.status,
                    item.samples,
                    outcome.detail,
                )
            return 0.0
        self.spool.attempted(item, f"{outcome.status or 'network'}: {outcome.detail}")
        if kind == "rate_limited":
            log.warning("HTTP 429: waiting %.0f s as the server asks", outcome.retry_after_s or 0)
            return outcome.retry_after_s or 0.0
        if kind == "auth":
            # Every batch would fail alike; keeping them costs disk, dead-lettering loses data.
            log.error("token rejected (HTTP %s); keeping data, retrying", outcome.status)
            return self.cap_s
        delay = backoff_s(self.failures, self.base_s, self.cap_s, self.rng)
        self.failures += 1
        log.warning("send failed (%s); retry in %.1f s", outcome.detail, delay)
        return delay

    # --- loops ---------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Until stop: a send in progress always completes (the check is between sends)."""
        while not stop.is_set():
            try:
                delay = self.step()
            except Exception:
                log.exception("sending failed unexpectedly; retrying")
                delay = self.cap_s
            if delay is None:
                self.wake.wait(IDLE_POLL_S)
                self.wake.clear()
            elif delay > 0:
                stop.wait(delay)

    def drain(self, deadline: float) -> None:
        """At shutdown: send what is ready while the server answers well, until the deadline."""
        self.transport.timeout_s = max(
            0.1, min(self.transport.timeout_s, deadline - time.monotonic())
        )
        while time.monotonic() < deadline:
            delay = self.step()
            if delay is None or delay > 0:
                return


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)
