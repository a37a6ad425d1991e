from django.apps import AppConfig


class CarbonConfig(AppConfig):
    name = "greenkpi.carbon"
    verbose_name = "Carbon accounting"
