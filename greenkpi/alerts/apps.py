from __future__ import annotations

from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "greenkpi.alerts"
    verbose_name = "Budgets and alerts"
