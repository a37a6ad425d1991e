"""Celery's share of /metrics: task outcomes and durations (multiprocess files, like gunicorn's
workers) and each task's last success (the shared cache, so a web host on another machine still
reads it). Connected by greenkpi/celery.py."""

from __future__ import annotations

import time
from typing import Any

from celery import signals

from greenkpi.lib.metrics import CELERY_TASK_DURATION, CELERY_TASKS
from greenkpi.ops.state import record_task_success

_started: dict[str, float] = {}


def _name(sender: Any) -> str:
    return str(getattr(sender, "name", sender) or "unknown")


@signals.task_prerun.connect
def _prerun(task_id: str | None = None, **_: Any) -> None:
    if task_id:
        _started[task_id] = time.perf_counter()


@signals.task_postrun.connect
def _postrun(sender: Any = None, task_id: str | None = None, **_: Any) -> None:
    started = _started.pop(task_id or "", None)
    if started is not None:
        CELERY_TASK_DURATION.labels(_name(sender)).observe(time.perf_counter() - started)


@signals.task_success.connect
def _success(sender: Any = None, **_: Any) -> None:
    CELERY_TASKS.labels(_name(sender), "success").inc()
    record_task_success(_name(sender))


@signals.task_failure.connect
def _failure(sender: Any = None, **_: Any) -> None:
    CELERY_TASKS.labels(_name(sender), "failure").inc()


@signals.task_retry.connect
def _retry(sender: Any = None, **_: Any) -> None:
    CELERY_TASKS.labels(_name(sender), "retry").inc()
