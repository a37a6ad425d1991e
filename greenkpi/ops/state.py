"""Gauges read from shared state at scrape time: rollup lag, outbox backlog, silent collectors,
queue depth, the last successful run of each periodic task and the number of beats.

A custom prometheus_client collector: the figures are queries (a few indexed counts), not values a
process keeps, so every worker answers the same and nothing is stored per process.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, F, Min, Q
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from greenkpi.alerts.models import Notification
from greenkpi.inventory.models import Host
from greenkpi.kpis.models import RollupWindow

# Celery's default queue; dedicated queues can be listed in METRICS_QUEUES later if added.
QUEUES = ("celery",)


def last_success_key(task: str) -> str:
    return f"greenkpi:task-last-success:{task}"


def periodic_tasks() -> list[str]:
    from greenkpi.schedule import BEAT_SCHEDULE

    return sorted({entry["task"] for entry in BEAT_SCHEDULE.values()})


def record_task_success(task: str, at: float | None = None) -> None:
    """Called by the Celery signal on every success; the cache is shared by all hosts (Redis)."""
    cache.set(last_success_key(task), at if at is not None else time.time(), timeout=None)


class StateCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        yield from self._rollups(now)
        yield from self._outbox()
        yield from self._collectors(now)
        yield self._queues()
        yield self._last_success()
        beats = self._beats()
        if beats is not None:
            yield beats

    def _rollups(self, now: datetime) -> Iterator[Metric]:
        dirty = RollupWindow.objects.filter(computed_version__lt=F("version")).aggregate(
            n=Count("pk"), oldest=Min("marked_at")
        )
        yield GaugeMetricFamily(
            "greenkpi_rollup_dirty_windows",
            "(organisation, hour) windows waiting to be recomputed",
            value=dirty["n"],
        )
        oldest = dirty["oldest"]
        yield GaugeMetricFamily(
            "greenkpi_rollup_lag_seconds",
            "Age of the oldest dirty window since it was last marked (0: none waiting)",
            value=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
        )

    def _outbox(self) -> Iterator[Metric]:
        counts = dict(
            Notification.objects.filter(
                status__in=[Notification.Status.PENDING, Notification.Status.SENDING]
            )
            .values_list("status")
            .annotate(n=Count("pk"))
        )
        family = GaugeMetricFamily(
            "greenkpi_outbox_backlog", "Notifications not yet sent, by status", labels=["status"]
        )
        for status in (Notification.Status.PENDING, Notification.Status.SENDING):
            family.add_metric([str(status)], counts.get(status, 0))
        yield family

    def _collectors(self, now: datetime) -> Iterator[Metric]:
        cutoff = now - timedelta(seconds=settings.METRICS_SILENT_AFTER_S)
        seen = Host.objects.filter(last_seen__isnull=False).aggregate(
            total=Count("pk"), silent=Count("pk", filter=Q(last_seen__lt=cutoff))
        )
        yield GaugeMetricFamily(
            "greenkpi_collectors", "Hosts that have reported at least once", value=seen["total"]
        )
        yield GaugeMetricFamily(
            "greenkpi_collectors_silent",
            f"Hosts silent for more than METRICS_SILENT_AFTER_S ({settings.METRICS_SILENT_AFTER_S} s)",
            value=seen["silent"],
        )

    def _queues(self) -> Metric:
        family = GaugeMetricFamily(
            "greenkpi_celery_queue_depth", "Messages waiting in a Celery queue", labels=["queue"]
        )
        for queue, depth in queue_depths().items():
            family.add_metric([queue], depth)
        return family

    def _last_success(self) -> Metric:
        family = GaugeMetricFamily(
            "greenkpi_periodic_last_success_timestamp_seconds",
            "When each periodic task last succeeded (Unix time; absent: never since the cache "
            "was emptied)",
            labels=["task"],
        )
        tasks = periodic_tasks()
        found = cache.get_many([last_success_key(t) for t in tasks])
        for task in tasks:
            value = found.get(last_success_key(task))
            if value is not None:
                family.add_metric([task], float(value))
        return family

    def _beats(self) -> Metric | None:
        if not settings.REDIS_URL or not settings.BEAT_LEASE_S:
            return None
        import redis

        from greenkpi.beat import running_beats

        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)
        try:
            beats = running_beats(client, float(settings.BEAT_LEASE_S))
        except redis.RedisError:
            return None
        return GaugeMetricFamily(
            "greenkpi_celery_beats",
            "Celery beats seen alive within one lease TTL (more than 1: a duplicate beat)",
            value=len(beats),
        )


def queue_depths() -> dict[str, int]:
    """Redis: the list length per queue; the demo's file broker: message files waiting."""
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)
        try:
            return {queue: int(client.llen(queue)) for queue in QUEUES}
        except redis.RedisError:
            return {}
    folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("data_folder_in", ""))
    try:
        return {"celery": sum(1 for p in folder.iterdir() if p.is_file())}
    except OSError:
        return {}
