"""The notification outbox: rows written with the alert changes, sent once, swept when forgotten.

* ``notifications_create`` runs inside the transaction that changes the alerts and dispatches the
  send task with ``transaction.on_commit`` (no message for a rolled-back change, no send before the
  row is visible).
* ``notification_send`` claims the row with one conditional UPDATE (pending and due, or a lapsed
  claim), so of two workers holding the same message one sends and the other does nothing.
* ``notifications_sweep`` re-dispatches rows still pending a minute after they were due: the lost
  broker message case. The claim keeps that exactly once as well.

A worker killed after the receiver got the message but before the row was marked sent re-sends it
once its claim lapses; the stable ``webhook-id`` lets the receiver drop that duplicate.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from greenkpi.alerts import messages
from greenkpi.alerts.channels import PermanentError, TransientError, notifier_for
from greenkpi.alerts.models import Alert, AlertRule, Channel, Notification
from greenkpi.inventory.models import Membership, Role

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
    from greenkpi.alerts import tasks

    options = {"queue": queue} if queue else {}
    tasks.send_notification.apply_async(args=[str(notification_id)], **options)


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


def _dedup_key(event: str, alerts: Sequence[Alert], previous: dict[int, datetime | None]) -> str:
    # The same alerts in the same state (and, for a repeat, after the same last notification)
    # make the same key: a second evaluation of one change cannot add a second row.
    parts = [
        event,
        *(f"{a.pk}:{previous.get(a.pk) or ''}" for a in sorted(alerts, key=lambda a: a.pk)),
    ]
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def notifications_create(
    *,
    rule: AlertRule,
    event: str,
    alerts: Sequence[Alert],
    repeats: set[int],
    previous_notified: dict[int, datetime | None],
    now: datetime,
    queue: str | None = None,
) -> list[Notification]:
    """One row per enabled channel of ``rule`` for this group; must run inside a transaction."""
    if not alerts:
        return []
    organisation = rule.organisation
    payload = messages.build_payload(
        event=event,
        organisation={"id": organisation.pk, "slug": organisation.slug, "name": organisation.name},
        rule={"id": rule.pk, "name": rule.name, "kind": rule.kind},
        alerts=[
            messages.AlertLine(
                fingerprint=a.fingerprint,
                state=a.state,
                labels=a.labels,
                value=a.value,
                summary=a.summary,
                annotations=a.annotations,
                active_since=a.active_since,
                fired_at=a.fired_at,
                resolved_at=a.resolved_at,
                repeat=a.pk in repeats,
            )
            for a in sorted(alerts, key=lambda a: a.fingerprint)
        ],
        created_at=now,
        url=f"{settings.SITE_URL}/admin/alerts/alert/?rule__id__exact={rule.pk}",
    )
    key = _dedup_key(event, alerts, previous_notified)
    created = []
    for channel in rule.channels.filter(enabled=True).order_by("pk"):
        if Notification.objects.filter(channel=channel, dedup_key=key).exists():
            continue
        recipients = (
            recipients_for(channel, [a.team_id for a in alerts])
            if channel.kind == Channel.Kind.EMAIL
            else []
        )
        row = Notification.objects.create(
            organisation_id=rule.organisation_id,
            channel=channel,
            rule=rule,
            event=event,
            dedup_key=key,
            payload=payload,
            recipients=recipients,
            created_at=now,
            next_attempt_at=now,
        )
        row.alerts.set(alerts)
        transaction.on_commit(partial(dispatch, str(row.pk), queue))
        created.append(row)
    return created


def _backoff_s(attempts: int) -> float:
    return min(30.0 * 2 ** max(attempts - 1, 0), 3600.0)


def notification_send(*, notification_id: str, now: datetime | None = None) -> SendResult:
    """Claim, send, record. Returns without sending when the row is not ours to send."""
    now = now or timezone.now()
    token = uuid.uuid4().hex
    claimed = (
        Notification.objects.filter(pk=notification_id, next_attempt_at__lte=now)
        .filter(
            Q(status=Notification.Status.PENDING)
            | Q(status=Notification.Status.SENDING, claimed_until__lt=now)
        )
        .update(
            status=Notification.Status.SENDING,
            claimed_until=now + timedelta(seconds=SEND_LEASE_S),
            claimed_by=token,
        )
    )
    if not claimed:
        return SendResult("skipped")
    row = Notification.objects.select_related("channel").get(pk=notification_id)
    mine = Notification.objects.filter(pk=notification_id, claimed_by=token)
    attempts = row.attempts + 1
    try:
        if not row.channel.enabled:
            raise PermanentError("channel disabled")
        notifier_for(row.channel).send(notification=row, channel=row.channel)
    except TransientError as exc:
        if attempts >= MAX_ATTEMPTS:
            return _fail(mine, attempts, f"gave up after {attempts} attempts: {exc}")
        delay = _backoff_s(attempts)
        mine.update(
            status=Notification.Status.PENDING,
            attempts=attempts,
            next_attempt_at=timezone.now() + timedelta(seconds=delay),
            claimed_until=None,
            claimed_by="",
            last_error=str(exc)[:2000],
        )
        return SendResult("retry", retry_in_s=delay, error=str(exc))
    except PermanentError as exc:
        return _fail(mine, attempts, str(exc))
    except Exception as exc:  # a bug in a notifier: record it rather than loop on it
        log.exception("notification %s crashed its notifier", notification_id)
        return _fail(mine, attempts, f"{type(exc).__name__}: {exc}")
    mine.update(
        status=Notification.Status.SENT,
        attempts=attempts,
        sent_at=timezone.now(),
        claimed_until=None,
        last_error="",
    )
    return SendResult("sent")


def _fail(mine, attempts: int, error: str) -> SendResult:
    mine.update(
        status=Notification.Status.FAILED,
        attempts=attempts,
        claimed_until=None,
        last_error=error[:2000],
    )
    return SendResult("failed", error=error)


def notifications_due(*, now: datetime, limit: int = 500) -> list[str]:
    """Rows a lost message left behind: pending and overdue by the grace, or a lapsed claim."""
    return [
        str(pk)
        for pk in Notification.objects.filter(
            Q(status=Notification.Status.PENDING, next_attempt_at__lte=now - SWEEP_GRACE)
            | Q(status=Notification.Status.SENDING, claimed_until__lt=now)
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    ]


def notifications_sweep(*, now: datetime | None = None, queue: str | None = None) -> int:
    """Re-dispatch forgotten rows; returns how many."""
    due = notifications_due(now=now or timezone.now())
    for pk in due:
        dispatch(pk, queue)
    return len(due)
