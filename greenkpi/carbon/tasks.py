"""Celery tasks of the carbon app: thin; the work is in ``carbon.live``."""

from __future__ import annotations

from celery import shared_task

from greenkpi.carbon import live


@shared_task(acks_late=True, ignore_result=True)
def fetch_live_intensity() -> int:
    """Periodic: fetch the sites' zones from Electricity Maps; a no-op without an API key.
    Not retried: the next hourly run fetches the last 24 hours again, so a gap heals itself."""
    return live.fetch_live().hours_written
