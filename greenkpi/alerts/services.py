"""Writes people make: budgets, silences, acknowledgements, channels. Keyword-only and typed; the
admin, pages and commands call these. Who may do what (docs/alerts.md):

* budgets and silences: organisation managers/admins anywhere in their organisation; team managers
  for their own teams only (a team manager's silence must name one of their teams);
* acknowledging an alert: anyone who can see it;
* letting a webhook reach private networks: superusers only (it opens the server's own network).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from greenkpi.alerts.forecast import DEFAULT_THRESHOLDS_PCT
from greenkpi.alerts.models import Alert, AlertRule, Budget, BudgetScope, Channel, Silence
from greenkpi.inventory.models import Membership, Organisation, Role, Team

MANAGING_ROLES = frozenset({Role.MANAGER, Role.ADMIN})
MAX_SILENCE = timedelta(days=90)


def _roles(user: AbstractBaseUser, organisation_id: int) -> dict[int | None, str]:
    """team id (None = organisation-wide) -> role of ``user`` in that organisation."""
    return dict(
        Membership.objects.filter(user=user, organisation_id=organisation_id).values_list(
            "team_id", "role"
        )
    )


def can_manage(user: AbstractBaseUser, organisation_id: int, team_id: int | None) -> bool:
    """Org managers/admins manage everything in the organisation; team managers their team."""
    if user.is_superuser:
        return True
    roles = _roles(user, organisation_id)
    if roles.get(None) in MANAGING_ROLES:
        return True
    return team_id is not None and roles.get(team_id) in MANAGING_ROLES


def can_see(user: AbstractBaseUser, organisation_id: int, team_id: int | None) -> bool:
    if user.is_superuser:
        return True
    roles = _roles(user, organisation_id)
    return None in roles or (team_id is not None and team_id in roles)


def budget_create(
    *,
    organisation: Organisation,
    user: AbstractBaseUser,
    name: str,
    metric: str,
    period: str,
    amount: float,
    team: Team | None = None,
    model_key: str = "",
    currency: str = "",
    thresholds_pct: Sequence[int] = DEFAULT_THRESHOLDS_PCT,
    forecast_method: str = "auto",
) -> Budget:
    """A budget on the organisation, a team (``team``), a model across the organisation
    (``model_key``) or one team's use of a model (``team`` and ``model_key``: counts only that
    team's rollups of the key, and its team's managers may set it)."""
    model_key = model_key.strip()
    scope = (
        BudgetScope.MODEL if model_key else BudgetScope.TEAM if team else BudgetScope.ORGANISATION
    )
    if team is not None and team.organisation_id != organisation.pk:
        raise ValidationError("the team belongs to another organisation")
    if not can_manage(user, organisation.pk, team.pk if team else None):
        raise PermissionDenied("only managers may set budgets")
    budget = Budget(
        organisation=organisation,
        name=name,
        scope=scope,
        team=team,
        model_key=model_key,
        metric=metric,
        period=period,
        amount=amount,
        currency=currency.upper(),
        thresholds_pct=sorted(set(thresholds_pct)),
        forecast_method=forecast_method,
        created_by=user,
    )
    budget.full_clean()
    budget.save()
    return budget


def budget_update(
    *,
    budget: Budget,
    user: AbstractBaseUser,
    name: str | None = None,
    amount: float | None = None,
    period: str | None = None,
    thresholds_pct: Sequence[int] | None = None,
    currency: str | None = None,
    forecast_method: str | None = None,
) -> Budget:
    """Change what a budget allows; its scope and metric are fixed (make a new budget instead)."""
    if not can_manage(user, budget.organisation_id, budget.team_id):
        raise PermissionDenied("only managers may change budgets")
    changes: dict[str, object] = {
        "name": name,
        "amount": amount,
        "period": period,
        "thresholds_pct": sorted(set(thresholds_pct)) if thresholds_pct is not None else None,
        "currency": currency.upper() if currency is not None else None,
        "forecast_method": forecast_method,
    }
    for field, value in changes.items():
        if value is not None:
            setattr(budget, field, value)
    budget.updated_at = timezone.now()
    budget.full_clean()
    budget.save()
    return budget


def alert_acknowledge(*, alert: Alert, user: AbstractBaseUser) -> Alert:
    """Mark an open alert as being handled: it stays firing but repeats stop (resolve still sent)."""
    if not can_see(user, alert.organisation_id, alert.team_id):
        raise PermissionDenied("no such alert")
    now = timezone.now()
    updated = Alert.objects.filter(
        pk=alert.pk, state__in=["pending", "firing"], acknowledged_at__isnull=True
    ).update(acknowledged_by=user, acknowledged_at=now)
    alert.refresh_from_db()
    if not updated and alert.acknowledged_at is None:
        raise ValidationError("only open alerts can be acknowledged")
    return alert


def silence_create(
    *,
    organisation: Organisation,
    user: AbstractBaseUser,
    matchers: Mapping[str, str],
    ends_at: datetime,
    comment: str = "",
    starts_at: datetime | None = None,
) -> Silence:
    """Mute notifications of alerts matching every label in ``matchers`` until ``ends_at``."""
    starts_at = starts_at or timezone.now()
    clean = {str(k): str(v) for k, v in matchers.items()}
    if not clean:
        raise ValidationError("a silence needs at least one label matcher")
    if ends_at <= starts_at or ends_at - starts_at > MAX_SILENCE:
        raise ValidationError(
            f"a silence ends after it starts and lasts at most {MAX_SILENCE.days} days"
        )
    team_id = None
    if "team" in clean:
        team_id = (
            Team.objects.filter(organisation=organisation, slug=clean["team"])
            .values_list("pk", flat=True)
            .first()
        )
    if not can_manage(user, organisation.pk, team_id):
        raise PermissionDenied("only managers may silence alerts (team managers: name your team)")
    return Silence.objects.create(
        organisation=organisation,
        matchers=clean,
        starts_at=starts_at,
        ends_at=ends_at,
        comment=comment,
        created_by=user,
    )


def channel_create(
    *,
    organisation: Organisation,
    user: AbstractBaseUser,
    name: str,
    kind: str,
    url: str = "",
    addresses: Sequence[str] = (),
    notify_team_managers: bool = True,
    body_format: str = Channel.BodyFormat.STANDARD,
    allow_private_network: bool = False,
    group_by: Sequence[str] = ("rule",),
    group_wait_s: int = 30,
    group_interval_s: int = 300,
    daily_digest: bool = True,
) -> Channel:
    """An email or webhook channel; a webhook URL is checked (SSRF) before it is saved.
    ``group_by`` / ``group_wait_s`` / ``group_interval_s``: how alerts are grouped into messages
    (docs/alerts.md, Grouping); ``daily_digest``: email channels only, opt out with False."""
    if not can_manage(user, organisation.pk, None):
        raise PermissionDenied("only organisation managers may add channels")
    if allow_private_network and not user.is_superuser:
        raise PermissionDenied("only a superuser may let a webhook reach private networks")
    channel = Channel(
        organisation=organisation,
        name=name,
        kind=kind,
        url=url,
        addresses="\n".join(addresses),
        notify_team_managers=notify_team_managers,
        body_format=body_format,
        allow_private_network=allow_private_network,
        group_by=list(group_by),
        group_wait_s=group_wait_s,
        group_interval_s=group_interval_s,
        daily_digest=daily_digest,
    )
    with transaction.atomic():
        channel.full_clean()  # resolves and checks the URL; generates the signing secret
        channel.save()
    return channel


# --- Rules and per-alert silences from the dashboard (appended by the budgets/alerts pages) ---

RULE_PARAMS = (
    "utilization_floor",
    "utilization_window_h",
    "idle_hours",
    "silent_minutes",
    "for_s",
    "keep_firing_s",
    "repeat_interval_s",
    "no_data",
)


def _rule_owner_team_id(rule: AlertRule) -> int | None:
    """The team whose managers may change a rule: its budget's team, else its own team filter
    (None: the organisation, so only organisation managers)."""
    if rule.budget_id is not None:
        return rule.budget.team_id if rule.budget else None
    return rule.team_id


def _rule_save(rule: AlertRule, user: AbstractBaseUser, channels: Sequence[Channel] | None) -> None:
    if not can_manage(user, rule.organisation_id, _rule_owner_team_id(rule)):
        raise PermissionDenied("only managers of the rule's team may change it")
    if channels is not None and any(c.organisation_id != rule.organisation_id for c in channels):
        raise ValidationError({"channels": "a channel of another organisation"})
    with transaction.atomic():
        rule.full_clean(exclude=["claimed_until", "claimed_by", "last_evaluated_at", "last_error"])
        rule.save()
        if channels is not None:
            rule.channels.set(channels)


def rule_create(
    *,
    organisation: Organisation,
    user: AbstractBaseUser,
    name: str,
    kind: str,
    budget: Budget | None = None,
    team: Team | None = None,
    enabled: bool = True,
    channels: Sequence[Channel] = (),
    **params: object,
) -> AlertRule:
    """A rule on a budget (budget kinds) or on the organisation's teams/hosts (``team`` narrows).

    ``params`` are AlertRule's tuning fields (RULE_PARAMS); unknown names are refused."""
    unknown = set(params) - set(RULE_PARAMS)
    if unknown:
        raise ValidationError(f"unknown rule parameters: {', '.join(sorted(unknown))}")
    rule = AlertRule(
        organisation=organisation,
        name=name,
        kind=kind,
        budget=budget,
        team=team,
        enabled=enabled,
        **params,
    )
    _rule_save(rule, user, list(channels))
    return rule


def rule_update(
    *,
    rule: AlertRule,
    user: AbstractBaseUser,
    channels: Sequence[Channel] | None = None,
    **changes: object,
) -> AlertRule:
    """Change a rule's name, enabled flag, team, budget or tuning; its kind is fixed. The user
    must manage the rule both before and after the change (no moving a rule out of reach)."""
    allowed = {"name", "enabled", "team", "budget", *RULE_PARAMS}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationError(f"cannot change: {', '.join(sorted(unknown))}")
    if not can_manage(user, rule.organisation_id, _rule_owner_team_id(rule)):
        raise PermissionDenied("only managers of the rule's team may change it")
    for field, value in changes.items():
        setattr(rule, field, value)
    _rule_save(rule, user, None if channels is None else list(channels))
    return rule


def alert_silence(
    *,
    alert: Alert,
    user: AbstractBaseUser,
    duration: timedelta,
    comment: str = "",
    whole_rule: bool = False,
) -> Silence:
    """Silence one alert (all its labels) or every alert of its rule for ``duration``.

    Managers of the alert's team may do it (organisation managers for alerts without a team).
    Unlike ``silence_create`` the matchers come from the alert itself, so a team manager can
    silence a budget alert whose labels carry no team.
    """
    if not can_manage(user, alert.organisation_id, alert.team_id):
        raise PermissionDenied("only managers of the alert's team may silence it")
    if not timedelta(0) < duration <= MAX_SILENCE:
        raise ValidationError(f"a silence lasts more than 0 s and at most {MAX_SILENCE.days} days")
    labels = {str(k): str(v) for k, v in alert.labels.items()}
    if whole_rule:
        keep = ("rule", "budget")
        labels = {k: v for k, v in labels.items() if k in keep}
    now = timezone.now()
    return Silence.objects.create(
        organisation_id=alert.organisation_id,
        matchers=labels,
        starts_at=now,
        ends_at=now + duration,
        comment=comment,
        created_by=user,
    )


def budget_delete(*, budget: Budget, user: AbstractBaseUser) -> None:
    """Delete a budget with its rules and their alert history (managers of its team)."""
    if not can_manage(user, budget.organisation_id, budget.team_id):
        raise PermissionDenied("only managers may delete budgets")
    budget.delete()
