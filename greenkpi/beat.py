"""One celery beat sends the schedule, however many are started (checklist scenario 23).

Celery says to run a single scheduler, "otherwise you'd end up with duplicate tasks"; a second
beat happens anyway (a rolling deploy, `worker -B` left on, a forgotten shell). The periodic tasks
are idempotent, so a double beat would not change rollups or notifications, but it doubles the
work and hides a deployment mistake. So each beat must hold a lease in Redis (SET NX with a TTL,
renewed every third of it) to send anything. A beat that cannot take the lease is a standby: it
logs a WARNING naming the holder, sends nothing, and takes over within one TTL when the holder
stops (a takeover is like a beat restart: entries that came due meanwhile run once).

Every beat also records itself in a sorted set with the time it was last alive, so the holder
warns too when another beat is running, and /metrics reports how many are
(``greenkpi_celery_beats``). Without Redis (the demo's file broker) there is one machine and
honcho starts one beat; the guard is off and says so.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from typing import Any

from celery.beat import PersistentScheduler
from django.conf import settings

logger = logging.getLogger("greenkpi.beat")

# How often a standby (or a holder) repeats its warning about the other beat.
WARN_EVERY_S = 300.0
# Renew (SET if ours, else fail) in one step, so a lease that expired and went to another beat is
# never extended by its former holder.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""


def lease_key() -> str:
    return settings.BEAT_LEASE_KEY


def beats_key() -> str:
    return settings.BEAT_LEASE_KEY + ":beats"


def running_beats(client: Any, ttl_s: float, now: float | None = None) -> list[str]:
    """The beats seen alive within one lease TTL (their ids: host:pid:nonce)."""
    now = time.time() if now is None else now
    members = client.zrangebyscore(beats_key(), now - ttl_s, "+inf")
    return sorted(m.decode() if isinstance(m, bytes) else m for m in members)


class BeatLease:
    """The lease itself: take, renew, and say who holds it."""

    def __init__(self, client: Any, ttl_s: float) -> None:
        self.client = client
        self.ttl_s = ttl_s
        self.me = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._renew = client.register_script(_RENEW)

    def hold(self) -> bool:
        """True if this beat holds the lease now (taken or renewed), else False."""
        ttl_ms = int(self.ttl_s * 1000)
        now = time.time()
        pipe = self.client.pipeline()
        pipe.zadd(beats_key(), {self.me: now})
        pipe.zremrangebyscore(beats_key(), "-inf", now - 10 * self.ttl_s)
        pipe.expire(beats_key(), int(10 * self.ttl_s) + 1)
        pipe.execute()
        if self._renew(keys=[lease_key()], args=[self.me, ttl_ms]):
            return True
        return bool(self.client.set(lease_key(), self.me, nx=True, px=ttl_ms))

    def holder(self) -> str:
        value = self.client.get(lease_key())
        return value.decode() if isinstance(value, bytes) else (value or "nobody")

    def release(self) -> None:
        self.client.zrem(beats_key(), self.me)
        if self._renew(keys=[lease_key()], args=[self.me, 1]):  # ours: expire it now
            logger.info("celery beat %s released the schedule lease", self.me)


class SingleBeatScheduler(PersistentScheduler):
    """PersistentScheduler that sends only while it holds the beat lease (settings: BEAT_LEASE_S)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.lease: BeatLease | None = None
        self._holding: bool | None = None
        self._warned_at = 0.0
        ttl_s = float(settings.BEAT_LEASE_S)
        if settings.REDIS_URL and ttl_s > 0:
            import redis

            self.lease = BeatLease(redis.Redis.from_url(settings.REDIS_URL), ttl_s)
        super().__init__(*args, **kwargs)
        if self.lease is None:
            logger.warning(
                "celery beat lease off (no REDIS_URL, or BEAT_LEASE_S=0): run exactly one beat"
            )

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if self.lease is None:
            return super().tick(*args, **kwargs)
        renew_s = self.lease.ttl_s / 3
        try:
            holding = self.lease.hold()
        except Exception:  # Redis down: the broker is down too, so nothing could be sent
            logger.exception("celery beat lease: Redis unreachable; sending nothing")
            self._holding = None
            return renew_s
        self._report(holding)
        if not holding:
            return renew_s
        return min(super().tick(*args, **kwargs), renew_s)

    def _report(self, holding: bool) -> None:
        """Log state changes at once, and the duplicate-beat warning every WARN_EVERY_S."""
        assert self.lease is not None
        changed = holding != self._holding
        self._holding = holding
        now = time.monotonic()
        if holding and changed:
            logger.info("celery beat %s holds the schedule lease and sends", self.lease.me)
        beats = running_beats(self.lease.client, self.lease.ttl_s)
        duplicate = not holding or len(beats) > 1
        if duplicate and (changed or now - self._warned_at >= WARN_EVERY_S):
            self._warned_at = now
            others = ", ".join(b for b in beats if b != self.lease.me) or self.lease.holder()
            if holding:
                logger.warning(
                    "another celery beat is running (%s); this one (%s) holds the schedule "
                    "lease, the other sends nothing: stop it, only one beat should run",
                    others,
                    self.lease.me,
                )
            else:
                logger.warning(
                    "another celery beat is running and holds the schedule lease (%s); this "
                    "one (%s) is a standby that sends nothing and takes over if that one "
                    "stops: only one beat should run",
                    self.lease.holder(),
                    self.lease.me,
                )

    def close(self) -> None:
        if self.lease is not None:
            try:
                self.lease.release()
            except Exception:
                logger.exception("celery beat lease: could not release")
        super().close()
