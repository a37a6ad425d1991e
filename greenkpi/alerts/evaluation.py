"""Rule evaluation: observe, step the state machine, handle no data (rule.no_data), write the alert
changes, put firing / no-data alerts in their groups and flush what is due, in one transaction; a
rule whose evaluation raises goes to Error (told once per episode) and the others still run. The periodic job records its run like the KPI recompute does (RecomputeRun,
kind "alerts-evaluate": windows_done = rules evaluated, windows_failed = rules that failed,
rows_written = notifications created).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from greenkpi.alerts import evaluators, grouping, lifecycle, links, messages, outbox, selectors
from greenkpi.alerts.lifecycle import Action, Event, State
from greenkpi.alerts.models import (
    Alert,
    AlertGroup,
    AlertRule,
    NoDataHandling,
    RuleState,
    Silence,
)
from greenkpi.alerts.selectors import BudgetStatus
from greenkpi.kpis import services as kpis_services
from greenkpi.kpis.models import RecomputeRun
from greenkpi.lib.retry import TRANSIENT_ERRORS

log = logging.getLogger(__name__)

RUN_KIND = "alerts-evaluate"
RULE_LEASE_S = 120
OPEN_STATES = (State.PENDING, State.FIRING, State.NODATA)


@dataclass(frozen=True, slots=True)
class RuleResult:
    status: str  # done, busy (claimed elsewhere), failed
    notifications: int = 0
    error: str = ""


def rule_evaluate(
    *,
    rule: AlertRule,
    now: datetime | None = None,
    queue: str | None = None,
    budget_statuses: Mapping[int, BudgetStatus] | None = None,
) -> RuleResult:
    """Claim ``rule``, observe its condition, apply the transitions (see lifecycle) and flush the
    groups its alerts are in (see grouping), all in one transaction."""
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
        evaluation = evaluators.evaluate(rule, now=now, budget_statuses=budget_statuses)
        with transaction.atomic():
            state = _apply(rule, evaluation, now, queue)
            group_ids = grouping.groups_attach(
                rule=rule,
                alerts=Alert.objects.filter(rule=rule, state__in=grouping.GROUPED_STATES),
                now=now,
                queue=queue,
            )
            group_ids += list(
                AlertGroup.objects.filter(alerts__rule=rule).values_list("pk", flat=True)
            )
            created = grouping.groups_flush(now=now, group_ids=set(group_ids), queue=queue)
            mine.update(
                claimed_until=None, claimed_by="", last_evaluated_at=now, last_error="", **state
            )
    except TRANSIENT_ERRORS:
        mine.update(claimed_until=None, claimed_by="")
        raise
    except Exception as exc:  # this rule's problem (bad budget, a bug): record it, go on
        log.exception("evaluating rule %s failed", rule.pk)
        error = f"{type(exc).__name__}: {exc}"
        created = _record_error(rule, mine, error, now, queue)
        return RuleResult("failed", notifications=created, error=error)
    return RuleResult("done", notifications=created)


def _record_error(
    rule: AlertRule, mine: QuerySet[AlertRule], error: str, now: datetime, queue: str | None
) -> int:
    """Grafana's Error state: the rule's alerts are held as they were, the error is recorded on
    the rule and told once per episode (entering Error), not on every failing evaluation."""
    current = AlertRule.objects.filter(pk=rule.pk).values_list("state", flat=True).first()
    entering = current != RuleState.ERROR
    with transaction.atomic():
        changes: dict[str, object] = {"state": RuleState.ERROR, "state_since": now}
        mine.update(
            claimed_until=None,
            claimed_by="",
            last_evaluated_at=now,
            last_error=error[:2000],
            **(changes if entering else {}),
        )
        if not entering:
            return 0
        payload = messages.error_payload(
            organisation=rule.organisation,
            rule={"id": rule.pk, "name": rule.name, "kind": rule.kind},
            error=error,
            created_at=now,
            url=links.rule_page_url(rule.organisation, rule.pk),
            admin_url=links.rule_admin_url(rule),
        )
        created = 0
        team_ids = [rule.team_id or (rule.budget.team_id if rule.budget_id else None)]
        for channel in rule.channels.filter(enabled=True).order_by("pk"):
            email = channel.kind == channel.Kind.EMAIL
            created += bool(
                outbox.notification_write(
                    channel=channel,
                    rule=rule,
                    event=Event.ERROR,
                    payload=payload,
                    dedup_key=hashlib.sha256(f"error|{rule.pk}|{now}".encode()).hexdigest(),
                    now=now,
                    recipients=outbox.recipients_for(channel, team_ids) if email else [],
                    queue=queue,
                )
            )
        return created


def _no_data_fingerprint(rule: AlertRule, labels: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    full = {**labels, "alertstate": "nodata"}
    return evaluators.fingerprint(rule.organisation_id, rule.pk, full), full


def _apply(
    rule: AlertRule, evaluation: evaluators.Evaluation, now: datetime, queue: str | None
) -> dict[str, object]:
    """Write this evaluation's alert changes; return the rule's new state fields."""
    rows = {
        a.fingerprint: a
        for a in Alert.objects.select_for_update().filter(rule=rule, state__in=OPEN_STATES)
    }
    silences = list(
        Silence.objects.filter(
            organisation_id=rule.organisation_id, starts_at__lte=now, ends_at__gt=now
        )
    )
    observed = dict(evaluation.observed)
    unknown = set(evaluation.unknown)
    wanted_no_data: dict[str, tuple[dict[str, str], evaluators.NoData]] = {}
    for fp, gap in evaluation.no_data.items():
        if rule.no_data == NoDataHandling.ALERTING:  # no data counts as the condition holding
            observed[fp] = lifecycle.Observation(fp, gap.labels, None, f"No data: {gap.reason}")
        elif rule.no_data == NoDataHandling.NODATA:  # hold the alert, raise a "no data" one
            unknown.add(fp)
            nd_fp, nd_labels = _no_data_fingerprint(rule, gap.labels)
            wanted_no_data[nd_fp] = (nd_labels, gap)
        # OK: no data counts as clear, so an alert on it resolves.
    transitions = lifecycle.step(
        open_alerts={
            fp: lifecycle.OpenAlert(
                fp, State(a.state), a.active_since, a.last_active_at, a.notified_at, a.labels
            )
            for fp, a in rows.items()
            if a.state != State.NODATA
        },
        observed=observed,
        unknown=unknown,
        now=now,
        for_s=rule.for_s,
        repeat_s=rule.repeat_interval_s,
        keep_firing_s=rule.keep_firing_s,
        silenced=lambda labels: any(s.matches(labels) for s in silences),
    )
    for t in transitions:
        seen = observed.get(t.fingerprint)
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
        # Notifying is the groups' business (grouping.py): repeats, silences, acknowledgement.
        alert.save()
    for fp, (labels, gap) in wanted_no_data.items():
        alert = rows.get(fp) or Alert(
            organisation_id=rule.organisation_id,
            rule=rule,
            fingerprint=fp,
            state=State.NODATA,
            active_since=now,
            fired_at=now,
        )
        alert.labels, alert.summary, alert.value = labels, f"No data: {gap.reason}", None
        alert.annotations = {"no_data": True}
        alert.team_id, alert.last_active_at = gap.team_id, now
        alert.save()
    for fp, alert in rows.items():
        if alert.state == State.NODATA and fp not in wanted_no_data:  # data is back
            alert.state, alert.resolved_at = State.RESOLVED, now
            alert.save(update_fields=["state", "resolved_at"])
    return _rule_state(rule, now)


def _rule_state(rule: AlertRule, now: datetime) -> dict[str, object]:
    """The rule's state for pages: alerting > nodata > pending > normal."""
    open_states = set(
        Alert.objects.filter(rule=rule, state__in=OPEN_STATES).values_list("state", flat=True)
    )
    state = next(
        (
            rule_state
            for alert_state, rule_state in (
                (State.FIRING, RuleState.ALERTING),
                (State.NODATA, RuleState.NODATA),
                (State.PENDING, RuleState.PENDING),
            )
            if alert_state in open_states
        ),
        RuleState.NORMAL,
    )
    current = AlertRule.objects.filter(pk=rule.pk).values_list("state", "state_since").first()
    if current is not None and current[0] == state and current[1] is not None:
        return {"state": state}
    return {"state": state, "state_since": now}


def _budget_statuses(rules: list[AlertRule], now: datetime) -> dict[int, BudgetStatus]:
    """All budget rules' statuses in one batch; if the batch fails, each rule reads its own and a
    failing one goes to Error alone instead of failing the whole run."""
    budgets = {r.budget_id: r.budget for r in rules if r.budget_id is not None}
    try:
        return {s.budget.pk: s for s in selectors.statuses_of(list(budgets.values()), now=now)}
    except Exception:
        log.exception("batched budget statuses failed; evaluating budget rules one by one")
        return {}


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
    now = now or timezone.now()
    try:
        rules = list(rules.order_by("pk"))
        statuses = _budget_statuses(rules, now)
        for rule in rules:
            result = rule_evaluate(rule=rule, now=now, queue=queue, budget_statuses=statuses)
            notifications += result.notifications
            if result.status == "done":
                done += 1
            elif result.status == "failed":
                failed += 1
                errors.append(f"rule {rule.pk}: {result.error}")
        # Groups with nothing new from their rules may still be due: group_interval after a
        # change held back, a repeat, a silence that expired.
        notifications += grouping.groups_flush(
            now=now, organisation_id=organisation_id, queue=queue
        )
    except Exception as exc:
        kpis_services.run_finish(
            run, done=done, failed=failed, rows=notifications, error=repr(exc), crashed=True
        )
        raise
    return kpis_services.run_finish(
        run, done=done, failed=failed, rows=notifications, error="\n".join(errors[:20])
    )
