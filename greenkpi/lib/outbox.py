"""The claim protocol of an outbox row (a message written in the transaction that decided to send
it, then sent once by whichever worker claims it). Shared by the alerts' notifications
(alerts/outbox.py) and the MLflow write-back (integrations/mlflow_outbox.py), whose models carry
the same fields: ``status``, ``next_attempt_at``, ``claimed_until``, ``claimed_by``, ``attempts``,
``last_error``.

* ``claim`` is one conditional UPDATE: the row is due and waiting, or its sender's lease lapsed
  (a worker killed mid-send). Of two workers holding the same message, one gets the row.
* ``retry_later`` hands the row back with an exponential backoff; ``finish`` records an end.
* ``overdue`` lists what a lost broker message left behind, for the periodic sweep.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

SENDING = "sending"
BACKOFF_FIRST_S = 30.0
# Under the broker's visibility timeout (tests/test_celery_countdowns.py holds it there).
BACKOFF_MAX_S = 3600.0


def backoff_s(attempts: int) -> float:
    """Seconds before attempt ``attempts + 1``: 30 s, doubling, at most an hour."""
    return min(BACKOFF_FIRST_S * 2 ** max(attempts - 1, 0), BACKOFF_MAX_S)


def claim(
    rows: QuerySet, pk: Any, *, now: datetime, lease_s: float, waiting: Sequence[str]
) -> QuerySet | None:
    """The claimed row as a queryset that only its claimer's updates match, or None when the row
    is not ours to send (already sent, claimed by a live sender, or not due)."""
    token = uuid.uuid4().hex
    claimed = (
        rows.filter(pk=pk, next_attempt_at__lte=now)
        .filter(Q(status__in=waiting) | Q(status=SENDING, claimed_until__lt=now))
        .update(
            status=SENDING,
            claimed_until=now + timedelta(seconds=lease_s),
            claimed_by=token,
        )
    )
    return rows.filter(pk=pk, claimed_by=token) if claimed else None


def retry_later(mine: QuerySet, *, status: str, attempts: int, error: str) -> float:
    """Give the claimed row back for another attempt after the backoff; returns the delay."""
    delay = backoff_s(attempts)
    mine.update(
        status=status,
        attempts=attempts,
        next_attempt_at=timezone.now() + timedelta(seconds=delay),
        claimed_until=None,
        claimed_by="",
        last_error=error[:2000],
    )
    return delay


def finish(mine: QuerySet, *, status: str, attempts: int, error: str = "", **fields: Any) -> None:
    """Record the end of the claimed row's sending (sent, failed, skipped); ``fields`` add to it."""
    mine.update(
        status=status, attempts=attempts, claimed_until=None, last_error=error[:2000], **fields
    )


def overdue(
    rows: QuerySet, *, now: datetime, grace: timedelta, waiting: Sequence[str], limit: int
) -> list[Any]:
    """Keys of rows a lost message left behind: waiting and overdue by ``grace`` (the after-commit
    dispatch had that long to arrive), or a lapsed claim."""
    return list(
        rows.filter(
            Q(status__in=waiting, next_attempt_at__lte=now - grace)
            | Q(status=SENDING, claimed_until__lt=now)
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
