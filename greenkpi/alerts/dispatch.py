"""The alerts tasks that services enqueue, looked up by name in Celery's registry.

Tasks call services and services enqueue tasks after commit; naming the task instead of importing
``tasks`` keeps that a one-way import (tasks -> services). AlertsConfig.ready() imports ``tasks``
so the names are registered in every process (web, worker, tests) before a service enqueues one.
"""

from __future__ import annotations

from celery import Task, current_app

FLUSH_ALERT_GROUP = "greenkpi.alerts.tasks.flush_alert_group"
SEND_NOTIFICATION = "greenkpi.alerts.tasks.send_notification"


def task(name: str) -> Task:
    """The registered task ``name`` (KeyError, loudly, if the tasks module was never imported)."""
    return current_app.tasks[name]
