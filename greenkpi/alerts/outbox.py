"""The notification outbox: rows written with the alert changes, sent once, swept when forgotten.

* ``notification_write`` runs inside the transaction that changes the alerts (or a group, or
  records a digest) and dispatches the send task with ``transaction.on_commit`` (no message for a
  rolled-back change, no send before the row is visible); a (channel, dedup_key) pair is written
  once, so re-running the same change writes nothing.
* ``notification_send`` claims the row with one conditional UPDATE (pending and due, or a lapsed
  claim: lib/outbox.py), so of two workers holding the same message one sends and the other does
  nothing.
* ``notifications_sweep`` re-dispatches rows still pending a minute after they were due: the lost
  broker message case. The claim keeps that exactly once as well.

A worker killed after the receiver got the message but before the row was marked sent re-sends it
once its claim lapses; the stable ``webhook-id`` lets the receiver drop that duplicate.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from greenkpi.alerts.channels import PermanentError, TransientError, notifier_for
from greenkpi.alerts.dispatch import SEND_NOTIFICATION, task
from greenkpi.alerts.models import Alert, AlertGroup, AlertRule, Channel, Notification
from greenkpi.inventory.models import Membership, Role
from greenkpi.lib.outbox import claim, finish, overdue, retry_later

log = logging.getLogger(__name__)

SEND_LEASE_S = 300  # longer than one send (10 s timeout per address) can take
MAX_ATTEMPTS = 8
SWEEP_GRACE = timedelta(seconds=60)  # the on_commit dispatch had this long to be delivered
MANAGING_ROLES = (Role.MANAGER, Role.ADMIN)


@dataclass(frozen=True, slots=True)
class SendResult:
    status: str  # sent, retry, failed, skipped (not ours to send: sent, claimed or not due)
    retry_in_s: float = 0.0
    error: str = ""


def dispatch(notification_id: str, queue: str | None = None) -> None:
    """Enqueue the send task (call after commit)."""
    options = {"queue": queue} if queue else {}
    task(SEND_NOTIFICATION).apply_async(args=[str(notification_id)], **options)


def recipients_for(channel: Channel, team_ids: Sequence[int | None]) -> list[str]:
    """Configured addresses plus, if asked, the managers of the alerts' teams (org managers and
    admins for alerts without a team)."""
    found = set(channel.address_list())
    if channel.notify_team_managers:
        teams = {t for t in team_ids if t is not None}
        who = Q(team_id__in=teams) if teams else Q(pk__in=[])
        if None in team_ids or not team_ids:
            who |= Q(team__isnull=True)
        found |= set(
            Membership.objects.filter(who, organisation_id=channel.organisation_id)
            .filter(role__in=MANAGING_ROLES)
            .exclude(user__email="")
            .values_list("user__email", flat=True)
        )
    return sorted(found)


def notification_write(
    *,
    channel: Channel,
    event: str,
    payload: dict[str, Any],
    dedup_key: str,
    now: datetime,
    rule: AlertRule | None = None,
    group: AlertGroup | None = None,
    alerts: Sequence[Alert] = (),
    recipients: Sequence[str] | None = None,
    queue: str | None = None,
) -> Notification | None:
    """One outbox row for ``channel``, dispatched after commit; None when ``dedup_key`` was already
    written for this channel (a second evaluation or digest run of the same news). Must run inside
    a transaction. Email recipients default to the channel's (addresses + the alerts' managers)."""
    if Notification.objects.filter(channel=channel, dedup_key=dedup_key).exists():
        return None
    if recipients is None:
        recipients = (
            recipients_for(channel, [a.team_id for a in alerts])
            if channel.kind == Channel.Kind.EMAIL
            else []
        )
    row = Notification.objects.create(
        organisation_id=channel.organisation_id,
        channel=channel,
        rule=rule,
        group=group,
        event=event,
        dedup_key=dedup_key,
        payload=payload,
        recipients=list(recipients),
        created_at=now,
        next_attempt_at=now,
    )
    if alerts:
        row.alerts.set(alerts)
    transaction.on_commit(partial(dispatch, str(row.pk), queue))
    return row


def notification_send(*, notification_id: str, now: datetime | None = None) -> SendResult:
    """Claim, send, record. Returns without sending when the row is not ours to send."""
    now = now or timezone.now()
    mine = claim(
        Notification.objects.all(),
        notification_id,
        now=now,
        lease_s=SEND_LEASE_S,
        waiting=[Notification.Status.PENDING],
    )
    if mine is None:
        return SendResult("skipped")
    row = Notification.objects.select_related("channel").get(pk=notification_id)
    attempts = row.attempts + 1
    try:
        if not row.channel.enabled:
            raise PermanentError("channel disabled")
        notifier_for(row.channel).send(notification=row, channel=row.channel)
    except TransientError as exc:
        if attempts >= MAX_ATTEMPTS:
            return _fail(mine, attempts, f"gave up after {attempts} attempts: {exc}")
        status = Notification.Status.PENDING
        delay = retry_later(mine, status=status, attempts=attempts, error=str(exc))
        return SendResult("retry", retry_in_s=delay, error=str(exc))
    except PermanentError as exc:
        return _fail(mine, attempts, str(exc))
    except Exception as exc:  # a bug in a notifier: record it rather than loop on it
        log.exception("notification %s crashed its notifier", notification_id)
        return _fail(mine, attempts, f"{type(exc).__name__}: {exc}")
    finish(mine, status=Notification.Status.SENT, attempts=attempts, sent_at=timezone.now())
    return SendResult("sent")


def _fail(mine, attempts: int, error: str) -> SendResult:
    finish(mine, status=Notification.Status.FAILED, attempts=attempts, error=error)
    return SendResult("failed", error=error)


def notifications_due(*, now: datetime, limit: int = 500) -> list[str]:
    """Rows a lost message left behind: pending and overdue by the grace, or a lapsed claim."""
    rows = Notification.objects.all()
    waiting = [Notification.Status.PENDING]
    pks = overdue(rows, now=now, grace=SWEEP_GRACE, waiting=waiting, limit=limit)
    return [str(pk) for pk in pks]


def notifications_sweep(*, now: datetime | None = None, queue: str | None = None) -> int:
    """Re-dispatch forgotten rows; returns how many."""
    due = notifications_due(now=now or timezone.now())
    for pk in due:
        dispatch(pk, queue)
    return len(due)
