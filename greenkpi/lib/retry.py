"""The one Celery retry policy: retry only what a later attempt can fix, with backoff.

Transient means the other side went away for a moment: the database connection (OperationalError,
InterfaceError), Redis (ConnectionError, TimeoutError) or an HTTP server answering 5xx
(UpstreamServerError, raised by the code that saw the status). Anything else is a bug or bad data:
it is recorded where it happened (the window, the rule, the run), never retried blindly.
"""

from __future__ import annotations

from typing import Any

from django.db import InterfaceError, OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError


class UpstreamServerError(Exception):
    """An HTTP server we called answered 5xx: a later attempt may succeed."""

    def __init__(self, status: int, detail: str = "") -> None:
        super().__init__(f"HTTP {status}{': ' + detail if detail else ''}")
        self.status = status


TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    RedisConnectionError,
    RedisTimeoutError,
    UpstreamServerError,
)

# Exponential backoff from 5 s, capped at 5 minutes, with jitter so workers that failed together
# do not come back together; five tries cover a database restart.
RETRY_POLICY: dict[str, Any] = {
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 5,
}


def retrying_task(**options: Any) -> dict[str, Any]:
    """Options for ``@shared_task(**retrying_task(...))``: idempotent (acks_late), result ignored,
    transient errors retried by RETRY_POLICY; ``options`` add to or override these."""
    return {"acks_late": True, "ignore_result": True, **RETRY_POLICY, **options}


# Redis redelivers a message not acknowledged within the broker's visibility_timeout, so a task
# sent with a longer countdown (or ETA) runs again, and again (checklist scenario 24). Every
# countdown goes through bounded_countdown; tests/test_celery_countdowns.py scans for the rest.
DEFAULT_VISIBILITY_TIMEOUT_S = 3600.0  # kombu's Redis default


def visibility_timeout_s() -> float:
    from django.conf import settings

    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {}
    return float(options.get("visibility_timeout", DEFAULT_VISIBILITY_TIMEOUT_S))


def bounded_countdown(seconds: float) -> float:
    """``seconds``, but never more than half the visibility timeout (never negative). A task
    that must wait longer runs early and finds nothing due yet; its periodic sweep catches up."""
    return min(max(seconds, 0.0), visibility_timeout_s() / 2)
