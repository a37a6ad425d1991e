from django.apps import AppConfig


class IngestConfig(AppConfig):
    name = "greenkpi.ingest"
    verbose_name = "Ingestion"

    def ready(self) -> None:
        from greenkpi.ingest import schema_auth  # noqa: F401  (registers the OpenAPI extension)
