"""Rule evaluation: observe, step the state machine, write alert changes and their notifications
in one transaction. The periodic job records its run like the KPI recompute does (RecomputeRun,
kind "alerts-evaluate": windows_done = rules evaluated, windows_failed = rules that failed,
rows_written = notifications created).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from greenkpi.alerts import evaluators, lifecycle, outbox
from greenkpi.alerts.lifecycle import Action, Event, State
from greenkpi.alerts.models import Alert, AlertRule, Silence
from greenkpi.kpis import services as kpis_services
from greenkpi.kpis.models import RecomputeRun

log = logging.getLogger(__name__)

RUN_KIND = "alerts-evaluate"
RULE_LEASE_S = 120
OPEN_STATES = (State.PENDING, State.FIRING)


@dataclass(frozen=True, slots=True)
class RuleResult:
    status: str  # done, busy (claimed elsewhere), failed
    notifications: int = 0
    error: str = ""


def rule_evaluate(
    *, rule: AlertRule, now: datetime | None = None, queue: str | None = None
) -> RuleResult:
    """Claim ``rule``, observe its condition and apply the transitions (see lifecycle)."""
    now = now or timezone.now()
    token = uuid.uuid4().hex
    claimed = (
        AlertRule.objects.filter(pk=rule.pk)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(claimed_until=now + timedelta(seconds=RULE_LEASE_S), claimed_by=token)
    )
    if not claimed:
        return RuleResult("busy")
    mine = AlertRule.objects.filter(pk=rule.pk, claimed_by=token)
    try:
        evaluation = evaluators.evaluate(rule, now=now)
        with transaction.atomic():
            created = _apply(rule, evaluation, now, queue)
            mine.update(claimed_until=None, claimed_by="", last_evaluated_at=now, last_error="")
    except kpis_services.TRANSIENT_ERRORS:
        mine.update(claimed_until=None, claimed_by="")
        raise
    except Exception as exc:  # this rule's problem (bad budget, a bug): record it, go on
        log.exception("evaluating rule %s failed", rule.pk)
        error = f"{type(exc).__name__}: {exc}"
        mine.update(
            claimed_until=None, claimed_by="", last_evaluated_at=now, last_error=error[:2000]
        )
        return RuleResult("failed", error=error)
    return RuleResult("done", notifications=created)


def _apply(
    rule: AlertRule, evaluation: evaluators.Evaluation, now: datetime, queue: str | None
) -> int:
    rows = {
        a.fingerprint: a
        for a in Alert.objects.select_for_update().filter(rule=rule, state__in=OPEN_STATES)
    }
    silences = list(
        Silence.objects.filter(
            organisation_id=rule.organisation_id, starts_at__lte=now, ends_at__gt=now
        )
    )
    transitions = lifecycle.step(
        open_alerts={
            fp: lifecycle.OpenAlert(
                fp, State(a.state), a.active_since, a.last_active_at, a.notified_at, a.labels
            )
            for fp, a in rows.items()
        },
        observed=evaluation.observed,
        unknown=evaluation.unknown,
        now=now,
        for_s=rule.for_s,
        repeat_s=rule.repeat_interval_s,
        keep_firing_s=rule.keep_firing_s,
        silenced=lambda labels: any(s.matches(labels) for s in silences),
    )
    groups: dict[Event, list[Alert]] = {Event.FIRING: [], Event.RESOLVED: []}
    repeats: set[int] = set()
    previous: dict[int, datetime | None] = {}
    for t in transitions:
        seen = evaluation.observed.get(t.fingerprint)
        alert = rows.get(t.fingerprint)
        if t.action is Action.DROP:
            alert.delete()
            continue
        if alert is None:
            alert = Alert(
                organisation_id=rule.organisation_id,
                rule=rule,
                fingerprint=t.fingerprint,
                active_since=now,
                state=State.PENDING,
            )
        if seen is not None:
            alert.labels, alert.value, alert.summary = dict(seen.labels), seen.value, seen.summary
            alert.annotations = dict(seen.annotations)
            alert.last_active_at = now
            alert.team_id = evaluation.team_of.get(t.fingerprint)
        if t.action in (Action.OPEN_FIRING, Action.FIRE):
            alert.state, alert.fired_at = State.FIRING, now
        elif t.action is Action.RESOLVE:
            alert.state, alert.resolved_at = State.RESOLVED, now
        notify = t.notify
        if t.action is Action.REPEAT and alert.acknowledged_at is not None:
            notify = None  # acknowledged: someone is on it, stop reminding
        alert.save()
        if notify is Event.FIRING:
            previous[alert.pk] = alert.notified_at
            if t.action is Action.REPEAT:
                repeats.add(alert.pk)
            alert.notified_at = now
            alert.save(update_fields=["notified_at"])
        if notify is not None:
            groups[notify].append(alert)
    created = 0
    for event, alerts in groups.items():
        created += len(
            outbox.notifications_create(
                rule=rule,
                event=event,
                alerts=alerts,
                repeats=repeats,
                previous_notified=previous,
                now=now,
                queue=queue,
            )
        )
    return created


def rules_evaluate(
    *, now: datetime | None = None, queue: str | None = None, organisation_id: int | None = None
) -> RecomputeRun:
    """The periodic job: evaluate every enabled rule once, recording the run."""
    run = kpis_services.run_start(kind=RUN_KIND)
    done = failed = notifications = 0
    errors: list[str] = []
    rules = AlertRule.objects.filter(enabled=True).select_related("organisation", "budget", "team")
    if organisation_id is not None:
        rules = rules.filter(organisation_id=organisation_id)
    try:
        for rule in rules.order_by("pk"):
            result = rule_evaluate(rule=rule, now=now, queue=queue)
            if result.status == "done":
                done += 1
                notifications += result.notifications
            elif result.status == "failed":
                failed += 1
                errors.append(f"rule {rule.pk}: {result.error}")
    except Exception as exc:
        kpis_services.run_finish(
            run, done=done, failed=failed, rows=notifications, error=repr(exc), crashed=True
        )
        raise
    return kpis_services.run_finish(
        run, done=done, failed=failed, rows=notifications, error="\n".join(errors[:20])
    )
