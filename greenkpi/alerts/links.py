"""Where "Open in GreenKPI" goes: the dashboard page of what fired (issue 12, D3).

A team lead who receives an alert email must be able to open its link: the budget's page for a
budget rule, the model's page for a retraining need, the host's page for a silent collector or an
idle GPU, the team's page for low utilization, else the alerts page at the rule. The admin (where
the rule is edited as a database row) is a second link, shown only to recipients who may open it
(``admins_among``). Dashboard routes are looked up by name, never imported (alerts sits below the
dashboard).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import get_user_model
from django.urls import reverse

if TYPE_CHECKING:
    from greenkpi.alerts.models import AlertRule
    from greenkpi.inventory.models import Organisation


def _absolute(path: str, organisation: Organisation, fragment: str = "") -> str:
    query = urlencode({"org": organisation.slug})
    return f"{settings.SITE_URL}{path}?{query}" + (f"#{fragment}" if fragment else "")


def _one(labels: Sequence[Mapping[str, str]], key: str) -> str | None:
    """The value of ``key`` when every alert that has it agrees on one value."""
    values = {line[key] for line in labels if line.get(key)}
    return values.pop() if len(values) == 1 else None


def alerts_page_url(organisation: Organisation) -> str:
    """The dashboard's alerts page (open alerts of every rule the reader may see)."""
    return _absolute(reverse("dashboard:alerts"), organisation)


def recommendations_page_url(organisation: Organisation) -> str:
    """The dashboard's recommendations page (cards ranked by estimated saving)."""
    return _absolute(reverse("dashboard:recommendations"), organisation)


def dashboard_url(
    *,
    organisation: Organisation,
    rule: AlertRule | None,
    labels: Sequence[Mapping[str, str]],
) -> str:
    """The page of what fired (see the module docstring), absolute."""
    from greenkpi.inventory.models import Host
    from greenkpi.workloads.models import MLModel

    if rule is not None and rule.budget_id:
        return _absolute(reverse("dashboard:budget-detail", args=[rule.budget_id]), organisation)
    model = _one(labels, "model")
    if model and "/" in model:
        team_slug, key = model.split("/", 1)
        model_id = (
            MLModel.objects.filter(team__organisation=organisation, team__slug=team_slug, key=key)
            .values_list("pk", flat=True)
            .first()
        )
        if model_id is not None:
            return _absolute(reverse("dashboard:model-detail", args=[model_id]), organisation)
    hostname = _one(labels, "host")
    if hostname and all(line.get("host") for line in labels):
        host_id = (
            Host.objects.filter(organisation=organisation, hostname=hostname)
            .values_list("pk", flat=True)
            .first()
        )
        if host_id is not None:
            return _absolute(reverse("dashboard:host", args=[host_id]), organisation)
    team_slug = _one(labels, "team")
    if team_slug and all(line.get("team") for line in labels):
        from greenkpi.inventory.models import Team

        team_id = (
            Team.objects.filter(organisation=organisation, slug=team_slug)
            .values_list("pk", flat=True)
            .first()
        )
        if team_id is not None:
            return _absolute(reverse("dashboard:team", args=[team_id]), organisation)
    return alerts_page_url(organisation)


def rule_page_url(organisation: Organisation, rule_id: int) -> str:
    """The dashboard's alert rules page at the rule (a rule that could not be evaluated)."""
    return _absolute(reverse("dashboard:alert-rules"), organisation, f"rule-{rule_id}")


def admin_url(rule: AlertRule | None) -> str:
    """The admin's list of the rule's alerts: for administrators only, as a second link."""
    path = reverse("admin:alerts_alert_changelist")
    return f"{settings.SITE_URL}{path}" + (f"?rule__id__exact={rule.pk}" if rule else "")


def rule_admin_url(rule: AlertRule) -> str:
    return f"{settings.SITE_URL}{reverse('admin:alerts_alertrule_change', args=[rule.pk])}"


def admins_among(addresses: Iterable[str]) -> set[str]:
    """The addresses whose active user may open the alerts admin (staff with the view permission,
    or superuser): only they get the admin link."""
    wanted = {a.lower() for a in addresses}
    if not wanted:
        return set()
    users = get_user_model().objects.filter(is_active=True, is_staff=True)
    found = set()
    for user in users:
        email = (user.email or "").lower()
        if email in wanted and (user.is_superuser or user.has_perm("alerts.view_alert")):
            found.add(email)
    return {a for a in addresses if a.lower() in found}
