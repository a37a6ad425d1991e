from django.apps import AppConfig


class KpisConfig(AppConfig):
    name = "greenkpi.kpis"
    verbose_name = "KPIs and rollups"

    def ready(self) -> None:
        # Celery's autodiscovery imports only `tasks` modules; the daily refresh task lives beside
        # its service in daily.py, so import it for the worker to know it.
        from greenkpi.kpis import daily, signals  # noqa: F401
