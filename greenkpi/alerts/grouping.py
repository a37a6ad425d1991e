"""Notification grouping with Alertmanager's timing: ``group_by``, ``group_wait``,
``group_interval`` and ``repeat_interval``.

* Every firing or no-data alert of a rule belongs, on each enabled channel of the rule, to the group
  whose key is the channel plus the values of the channel's ``group_by`` labels (default
  ``["rule"]``: one group per rule and channel; ``["..."]``: every alert alone).
* A new group waits ``group_wait`` (30 s) before its first message, so alerts that fire together
  (many hosts silent at once) go out as ONE message listing them all.
* After that, the group is looked at every evaluation, but a message goes out only when there is
  news (an alert not yet told in its current state, or a told alert resolved) and ``group_interval``
  (5 min) has passed since the last message; an unchanged group with an unacknowledged firing alert
  is re-sent after ``repeat_interval`` (the smallest ``repeat_interval_s`` of its alerts' rules).
* Silenced alerts are left out of messages; an alert that resolves before it was ever told (inside
  group_wait, or under a silence) leaves the group without a word.

Exactly once: a flush locks the group row, writes the outbox row (dedup key = group + message
number) and the group's new "told" state in one transaction, so two flushers cannot both send.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection, Iterable
from datetime import datetime, timedelta
from functools import partial

import orjson
from django.db import transaction

from greenkpi.alerts import links, messages
from greenkpi.alerts.dispatch import FLUSH_ALERT_GROUP, task
from greenkpi.alerts.lifecycle import Event, State
from greenkpi.alerts.models import (
    Alert,
    AlertGroup,
    AlertRule,
    Channel,
    Notification,
    Silence,
)
from greenkpi.lib.retry import bounded_countdown

log = logging.getLogger(__name__)

ALL_LABELS = "..."
DEFAULT_GROUP_BY = ("rule",)
GROUPED_STATES = (State.FIRING, State.NODATA)


def group_labels(group_by: Iterable[str], labels: dict[str, str]) -> dict[str, str]:
    """The label values that make an alert's group on a channel (``...``: all of them)."""
    names = list(group_by) or list(DEFAULT_GROUP_BY)
    if ALL_LABELS in names:
        return dict(labels)
    return {name: str(labels.get(name, "")) for name in sorted(set(names))}


def group_key(channel_id: int, labels: dict[str, str]) -> str:
    raw = orjson.dumps([channel_id, labels], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).hexdigest()


def dispatch_flush(group_id: int, countdown: float, queue: str | None = None) -> None:
    """Enqueue a flush of one group when its group_wait ends (call after commit)."""
    # A group_wait beyond the broker's visibility timeout would be redelivered in a loop: the
    # flush then runs early, finds the group not yet due, and the evaluation tick sends it.
    options: dict[str, object] = {"countdown": bounded_countdown(countdown)}
    if queue:
        options["queue"] = queue
    task(FLUSH_ALERT_GROUP).apply_async(args=[group_id], **options)


def groups_attach(
    *, rule: AlertRule, alerts: Collection[Alert], now: datetime, queue: str | None = None
) -> list[int]:
    """Put each firing / no-data alert of ``rule`` in its group on every enabled channel of the
    rule (idempotent; inside the evaluation's transaction). Returns the ids of the groups."""
    alerts = [a for a in alerts if a.state in GROUPED_STATES]
    channels = list(rule.channels.filter(enabled=True).order_by("pk"))
    if not alerts or not channels:
        return []
    through = AlertGroup.alerts.through
    member = set(
        through.objects.filter(
            alert_id__in=[a.pk for a in alerts], alertgroup__channel__in=channels
        ).values_list("alert_id", "alertgroup__channel_id", "alertgroup_id")
    )
    known = {(a, c) for a, c, _ in member}
    touched = {g for _, _, g in member}
    for channel in channels:
        for alert in alerts:
            if (alert.pk, channel.pk) in known:
                continue
            group = _group_for(channel, rule, alert, now, queue)
            group.alerts.add(alert)
            touched.add(group.pk)
            if alert.notified_at is not None and alert.state == State.FIRING:
                _seed_told(group, alert)
    return sorted(touched)


def _seed_told(group: AlertGroup, alert: Alert) -> None:
    """An alert already told on this channel before it had a group (alerts firing when grouping was
    deployed) joins as told, so the upgrade does not re-send every firing alert."""
    if not Notification.objects.filter(
        channel_id=group.channel_id, alerts=alert, event=Event.FIRING
    ).exists():
        return
    group.notified = {**group.notified, alert.fingerprint: alert.state}
    if group.last_notified_at is None or group.last_notified_at < alert.notified_at:
        group.last_notified_at = alert.notified_at
    group.save(update_fields=["notified", "last_notified_at"])


def _group_for(
    channel: Channel, rule: AlertRule, alert: Alert, now: datetime, queue: str | None
) -> AlertGroup:
    labels = group_labels(channel.group_by or DEFAULT_GROUP_BY, alert.labels)
    by_rule = "rule" in labels or ALL_LABELS in (channel.group_by or ())
    group, created = AlertGroup.objects.get_or_create(
        channel=channel,
        key=group_key(channel.pk, labels),
        defaults={
            "organisation_id": channel.organisation_id,
            "labels": labels,
            "rule": rule if by_rule else None,
            "created_at": now,
        },
    )
    if created and channel.group_wait_s > 0:
        # Flush when group_wait ends rather than at the next evaluation tick (up to 60 s later).
        transaction.on_commit(partial(dispatch_flush, group.pk, channel.group_wait_s, queue))
    return group


def groups_flush(
    *,
    now: datetime,
    group_ids: Collection[int] | None = None,
    organisation_id: int | None = None,
    queue: str | None = None,
) -> int:
    """Send what is due in each group (see module); returns the notifications written."""
    groups = AlertGroup.objects.filter(channel__enabled=True)  # a disabled channel is not told
    if group_ids is not None:
        groups = groups.filter(pk__in=list(group_ids))
    if organisation_id is not None:
        groups = groups.filter(organisation_id=organisation_id)
    created = 0
    silences: dict[int, list[Silence]] = {}
    for pk in groups.order_by("pk").values_list("pk", flat=True):
        with transaction.atomic():
            group = (
                AlertGroup.objects.select_for_update(of=("self",))
                .select_related("channel", "rule", "organisation")
                .filter(pk=pk)
                .first()
            )
            if group is None:  # flushed empty and deleted by another flusher
                continue
            if group.organisation_id not in silences:
                silences[group.organisation_id] = list(
                    Silence.objects.filter(
                        organisation_id=group.organisation_id, starts_at__lte=now, ends_at__gt=now
                    )
                )
            created += _flush_one(group, now, silences[group.organisation_id], queue)
    return created


def _flush_one(group: AlertGroup, now: datetime, silences: list[Silence], queue: str | None) -> int:
    members = list(group.alerts.select_related("rule").order_by("pk"))
    told: dict[str, str] = dict(group.notified)
    # An alert whose rule was disabled or no longer notifies this channel leaves the group quietly.
    linked = set(
        AlertRule.channels.through.objects.filter(
            channel_id=group.channel_id, alertrule_id__in={a.rule_id for a in members}
        ).values_list("alertrule_id", flat=True)
    )
    detached = [a for a in members if a.rule_id not in linked or not a.rule.enabled]
    members = [a for a in members if a not in detached]

    def quiet(alert: Alert) -> bool:
        return any(s.matches(alert.labels) for s in silences)

    active = [a for a in members if a.state in GROUPED_STATES and not quiet(a)]
    resolved = [
        a for a in members if a.state == State.RESOLVED and a.fingerprint in told and not quiet(a)
    ]
    # Resolved before anyone was told (or while silenced): leaves without a message.
    gone = [a for a in members if a.state == State.RESOLVED and a not in resolved] + detached
    news = [a for a in active if told.get(a.fingerprint) != a.state] or resolved
    channel = group.channel
    if group.last_notified_at is None:
        due = now >= group.created_at + timedelta(seconds=channel.group_wait_s)
    else:
        due = now >= group.last_notified_at + timedelta(seconds=channel.group_interval_s)
    reminders = [a for a in active if a.acknowledged_at is None and a.state == State.FIRING]
    repeat_due = (
        group.last_notified_at is not None
        and bool(reminders)
        and now
        >= group.last_notified_at
        + timedelta(seconds=min(a.rule.repeat_interval_s for a in reminders))
    )
    created = 0
    if (due and news) or (not news and repeat_due):
        created = _notify(group, active, resolved, told, now, queue)
        group.notified = {a.fingerprint: a.state for a in active}
        group.last_notified_at = now
        group.seq += 1
        firing_ids = [a.pk for a in active if a.state == State.FIRING]
        Alert.objects.filter(pk__in=firing_ids).update(notified_at=now)
        gone += resolved
    if gone:
        group.alerts.remove(*gone)
        for alert in gone:
            group.notified.pop(alert.fingerprint, None)
    if len(gone) == len(members) + len(detached) and not active:
        group.delete()  # nothing left to tell: the next alert starts a new group
    else:
        group.save()
    return created


def _notify(
    group: AlertGroup,
    active: list[Alert],
    resolved: list[Alert],
    told: dict[str, str],
    now: datetime,
    queue: str | None,
) -> int:
    from greenkpi.alerts import outbox

    alerts = active + resolved
    states = {a.state for a in active}
    event = (
        Event.FIRING
        if State.FIRING in states
        else Event.NODATA
        if State.NODATA in states
        else Event.RESOLVED
    )
    rules = {a.rule_id: a.rule for a in alerts}
    rule = group.rule or (next(iter(rules.values())) if len(rules) == 1 else None)
    organisation = group.organisation
    payload = messages.build_payload(
        event=event,
        organisation={"id": organisation.pk, "slug": organisation.slug, "name": organisation.name},
        rule=(
            {"id": rule.pk, "name": rule.name, "kind": rule.kind}
            if rule is not None
            else {
                "id": None,
                "name": ", ".join(f"{k}={v}" for k, v in group.labels.items()) or "alerts",
                "kind": "group",
            }
        ),
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
                repeat=told.get(a.fingerprint) == a.state,
            )
            for a in alerts
        ],
        created_at=now,
        url=links.dashboard_url(
            organisation=organisation, rule=rule, labels=[a.labels for a in alerts]
        ),
        admin_url=links.admin_url(rule),
        group={"key": group.key, "labels": group.labels},
    )
    dedup = hashlib.sha256(f"group|{group.pk}|{group.created_at}|{group.seq}".encode()).hexdigest()
    row = outbox.notification_write(
        channel=group.channel,
        rule=rule,
        group=group,
        event=event,
        alerts=alerts,
        payload=payload,
        dedup_key=dedup,
        now=now,
        queue=queue,
    )
    return 1 if row is not None else 0
