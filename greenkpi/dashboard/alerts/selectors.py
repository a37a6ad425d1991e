"""Reads behind the alert pages: alert rules, open / recently resolved alerts and active silences,
all through a Scope."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone

from greenkpi.alerts.lifecycle import State
from greenkpi.alerts.models import Alert, AlertRule, Budget, Channel, Silence
from greenkpi.dashboard.budgets.selectors import budgets_visible, can_manage_budget, can_manage_team
from greenkpi.inventory.access import Scope

RECENTLY_RESOLVED = timedelta(days=7)
RECENT_LIMIT = 50


# --- Alerts, silences and rules ---------------------------------------------------------------


@dataclass(frozen=True)
class AlertRow:
    alert: Alert
    manageable: bool  # the user manages the alert's team (org managers: every alert)
    duration: timedelta

    @property
    def duration_text(self) -> str:
        """ "2 d 3 h", "4 h 10 min", "7 min": how long it has been open (or lasted)."""
        minutes = max(int(self.duration.total_seconds() // 60), 0)
        days, rest = divmod(minutes, 24 * 60)
        hours, mins = divmod(rest, 60)
        if days:
            return f"{days} d {hours} h"
        return f"{hours} h {mins} min" if hours else f"{mins} min"


def _alerts_visible(scope: Scope) -> QuerySet[Alert]:
    alerts = Alert.objects.filter(organisation=scope.organisation)
    if not scope.org_wide:
        alerts = alerts.filter(team_id__in=list(scope.team_ids))
    return alerts


def alert_for(scope: Scope, alert_id: int) -> Alert:
    alert = _alerts_visible(scope).select_related("rule").filter(pk=alert_id).first()
    if alert is None:
        raise Http404("no such alert")
    return alert


def alerts_open(scope: Scope, now: datetime | None = None) -> list[AlertRow]:
    """Open alerts (pending, firing and any other open state the alerts app adds), firing first."""
    now = now or timezone.now()
    rows = (
        _alerts_visible(scope)
        .filter(resolved_at__isnull=True)
        .exclude(state=State.RESOLVED)
        .select_related("rule", "team", "acknowledged_by")
        .order_by("state", "-active_since", "pk")[: RECENT_LIMIT * 4]
    )
    return [
        AlertRow(a, can_manage_team(scope, a.team_id), now - (a.fired_at or a.active_since))
        for a in rows
    ]


def alerts_resolved_recently(scope: Scope, now: datetime | None = None) -> list[AlertRow]:
    now = now or timezone.now()
    rows = (
        _alerts_visible(scope)
        .filter(state=State.RESOLVED, resolved_at__gte=now - RECENTLY_RESOLVED)
        .select_related("rule", "team")
        .order_by("-resolved_at", "-pk")[:RECENT_LIMIT]
    )
    return [
        AlertRow(a, False, (a.resolved_at or now) - (a.fired_at or a.active_since)) for a in rows
    ]


def silences_active(
    scope: Scope, user_id: int | None = None, now: datetime | None = None
) -> list[Silence]:
    """Silences in force or scheduled. Team members see those naming one of their teams or
    budgets, and their own; org-wide members all of the organisation's."""
    now = now or timezone.now()
    silences = list(
        Silence.objects.filter(organisation=scope.organisation, ends_at__gt=now)
        .select_related("created_by")
        .order_by("ends_at", "pk")
    )
    if scope.org_wide:
        return silences
    slugs = {t.slug for t in scope.teams}
    budgets = {str(pk) for pk in budgets_visible(scope).values_list("pk", flat=True)}
    return [
        s
        for s in silences
        if s.matchers.get("team") in slugs
        or s.matchers.get("budget") in budgets
        or (user_id is not None and s.created_by_id == user_id)
    ]


def rules_manageable(scope: Scope) -> QuerySet[AlertRule]:
    """Rules the user may edit: all of the organisation for org managers; team managers those on
    their teams or on their teams' budgets."""
    rules = AlertRule.objects.filter(organisation=scope.organisation).select_related(
        "budget", "team"
    )
    if not scope.manages_org:
        managed = list(scope.managed_team_ids)
        rules = rules.filter(Q(team_id__in=managed) | Q(budget__team_id__in=managed))
    return rules.prefetch_related("channels").order_by("name", "pk")


def rules_failing(scope: Scope) -> list[AlertRule]:
    """Visible rules whose last evaluation raised (the alerts app records the error): their
    alerts may be stale, so the alerts page says so. One query."""
    rules = AlertRule.objects.filter(organisation=scope.organisation).exclude(last_error="")
    if not scope.org_wide:
        teams = list(scope.team_ids)
        rules = rules.filter(Q(team_id__in=teams) | Q(budget__team_id__in=teams))
    return list(rules.order_by("name", "pk")[:RECENT_LIMIT])


def rule_for(scope: Scope, rule_id: int) -> AlertRule:
    rule = rules_manageable(scope).filter(pk=rule_id).first()
    if rule is None:
        raise Http404("no such rule")
    return rule


def budgets_manageable(scope: Scope) -> list[Budget]:
    return [b for b in budgets_visible(scope) if can_manage_budget(scope, b)]


def channels_of(scope: Scope) -> list[Channel]:
    return list(Channel.objects.filter(organisation=scope.organisation).order_by("name", "pk"))
