from django.apps import AppConfig


class WorkloadsConfig(AppConfig):
    name = "greenkpi.workloads"
    verbose_name = "ML models, runs, evaluations and retraining need"
