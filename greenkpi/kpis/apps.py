from django.apps import AppConfig


class KpisConfig(AppConfig):
    name = "greenkpi.kpis"
    verbose_name = "KPIs and rollups"
