from __future__ import annotations

from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "greenkpi.integrations"
    verbose_name = "Integrations: personal access tokens, KPI read API, OpenMetrics, MLflow"

    def ready(self) -> None:
        # A closed run queues its MLflow write-back (workloads sends the signal; it cannot import
        # us, we sit above it), and the send task is registered by name for the worker.
        from greenkpi.integrations import receivers, schema_auth, tasks  # noqa: F401
