"""The Celery app. Broker: Redis when REDIS_URL is set, else files under var/ (no server needed)."""

from __future__ import annotations

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "greenkpi.settings")

app = Celery("greenkpi")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _beat_schedule() -> dict:
    from greenkpi.schedule import BEAT_SCHEDULE

    return BEAT_SCHEDULE


app.conf.beat_schedule = _beat_schedule()


@signals.worker_init.connect
def _operator_metrics(**_: object) -> None:
    """Task counters and last successes for /metrics (greenkpi/ops), once Django is set up."""
    import greenkpi.ops.celery_signals  # noqa: F401  (connects its handlers on import)
