from __future__ import annotations

from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "greenkpi.alerts"
    verbose_name = "Budgets and alerts"

    def ready(self) -> None:
        # Register the tasks that services enqueue by name (alerts.dispatch).
        from greenkpi.alerts import tasks  # noqa: F401
