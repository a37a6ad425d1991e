from __future__ import annotations

from celery import shared_task

from greenkpi.ingest import services


@shared_task(acks_late=True, ignore_result=True)
def expire_idempotency_keys() -> int:
    """Forget stored answers older than INGEST_IDEMPOTENCY_DAYS (samples stay deduplicated by key)."""
    return services.idempotency_keys_expire()
