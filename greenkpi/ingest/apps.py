from django.apps import AppConfig


class IngestConfig(AppConfig):
    name = "greenkpi.ingest"
    verbose_name = "Ingestion"
