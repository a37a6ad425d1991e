"""Checklist scenario 23: two real `celery beat` processes on one Redis, with a real worker.

Both beats run the production scheduler class (greenkpi/beat.py) with a shortened schedule
(testsupport/beat_app.py: recompute, evaluate and sweep every second) on the test's own queue and
lease key. Batches arrive while they run, and a collector goes silent. What must hold:

- exactly one beat sends; the other logs the duplicate-beat WARNING and sends nothing;
- rollups equal the stored samples (no double effect) and every notification goes out once;
- when the sending beat stops, the standby takes over within one lease TTL.

The second test runs the same two beats with the lease off (BEAT_LEASE_S=0): both send, which is
what the first test's "exactly one sender" assertion would catch without the guard.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from datetime import timedelta

import pytest
from django.db.models import F, Sum
from django.utils import timezone
from testsupport.celery_workers import forget_queue, start_beat, start_worker, stop, wait_for

from greenkpi.alerts.models import AlertRule, Notification, RuleKind
from greenkpi.ingest.models import Sample
from greenkpi.kpis.models import HourlyRollup, RollupWindow

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]
REAL_DISPATCH = True  # the worker's outbox dispatches go through Redis (see conftest.dispatched)
LEASE_S = 3.0
# One every 2 s: both beats run >= 10 s with work to do (DUPLICATE_BEAT_BATCHES=60: 2 min).
BATCHES = int(os.environ.get("DUPLICATE_BEAT_BATCHES", "5"))
SENDING = re.compile(r"Scheduler: Sending due task")
DUPLICATE = "another celery beat is running"


@pytest.fixture
def queue(redis_url):
    name = f"beat-test-{uuid.uuid4().hex[:12]}"
    yield name
    forget_queue(redis_url, name)
    import redis

    client = redis.Redis.from_url(redis_url)
    client.delete(f"greenkpi-test:{name}", f"greenkpi-test:{name}:beats")


def sends(beat) -> int:
    return len(SENDING.findall(beat.log_path.read_text()))


def logs(*processes) -> str:
    return "\n".join(f"--- {p.log_path.name}\n{p.log_path.read_text()[-3000:]}" for p in processes)


@pytest.fixture
def silent_rule(acme, rollups, receiver):
    rollups.host(acme, "gpu-quiet", team=acme.vision, last_seen=timezone.now() - timedelta(hours=1))
    channel = receiver.channel(
        acme,
        group_wait_s=0,
    )
    rule = AlertRule.objects.create(
        organisation=acme, name="silent", kind=RuleKind.COLLECTOR_SILENT, silent_minutes=15, for_s=0
    )
    rule.channels.set([channel])
    return rule


def test_two_beats_one_sender_same_rollups_each_notification_once(
    tmp_path, redis_url, queue, acme_token, post_batch, make_batch, silent_rule, receiver
):
    _, secret = acme_token
    worker = start_worker(tmp_path, redis_url, queue)
    first = start_beat(tmp_path, redis_url, "a", queue, LEASE_S)
    second = start_beat(tmp_path, redis_url, "b", queue, LEASE_S)
    beats = [first, second]
    try:
        # Both start at once and race for the lease; the clock starts when one sends.
        wait_for(lambda: any(sends(b) for b in beats), "a beat to send", tmp_path)
        base = timezone.now().replace(second=0, microsecond=0) - timedelta(hours=3)
        for i in range(BATCHES):  # batches keep arriving while both beats run
            # Each batch its own three minutes: overlapping windows of a device are refused.
            batch = make_batch(devices=2, windows=3, start=base + timedelta(minutes=3 * i))
            assert post_batch(secret, batch).status_code == 201
            time.sleep(2.0)
        wait_for(
            lambda: (
                RollupWindow.objects.exists()
                and not RollupWindow.objects.filter(computed_version__lt=F("version")).exists()
            ),
            "every dirty window to be recomputed",
            tmp_path,
        )
        wait_for(lambda: len(receiver.requests) >= 1, "the notification", tmp_path)
        senders = [b for b in beats if sends(b) > 0]
        assert len(senders) == 1, logs(*beats)
        leader, standby = senders[0], next(b for b in beats if b is not senders[0])
        assert sends(leader) >= 3 * 3  # three entries a second, for a good while
        print(
            f"duplicate beat: {BATCHES} batches over two beats; sender sent {sends(leader)} due "
            f"tasks, standby {sends(standby)} and warned"
        )
        assert DUPLICATE in standby.log_path.read_text(), logs(standby)
        assert "WARNING" in standby.log_path.read_text()

        # Rollups: every stored joule counted once, whatever ran twice.
        stored_j = Sample.objects.aggregate(j=Sum("energy_j"))["j"]
        rolled_kwh = HourlyRollup.objects.aggregate(k=Sum("energy_kwh"))["k"]
        assert rolled_kwh == pytest.approx(stored_j / 3.6e6, rel=1e-9)
        # Notifications: the silent collector's alert went out once, and stays once.
        time.sleep(2.0)
        assert Notification.objects.count() == 1
        assert len(receiver.requests) == 1

        # The sender dies (SIGKILL: no release): the standby takes over once the lease expires.
        leader.kill()
        leader.wait(timeout=10)
        before = sends(standby)
        wait_for(lambda: sends(standby) > before, "the standby to take over", tmp_path, LEASE_S * 3)
        assert "holds the schedule lease and sends" in standby.log_path.read_text()
    finally:
        for process in (*beats, worker):
            stop(process)


def test_without_the_lease_both_beats_send(tmp_path, redis_url, queue):
    """The guard is what makes the first test pass: with BEAT_LEASE_S=0 both beats send."""
    beats = [start_beat(tmp_path, redis_url, name, queue, 0) for name in ("a", "b")]
    try:
        wait_for(lambda: all(sends(b) >= 3 for b in beats), "both beats to send", tmp_path, 30.0)
        assert all("lease off" in b.log_path.read_text() for b in beats), logs(*beats)
    finally:
        for beat in beats:
            stop(beat)
