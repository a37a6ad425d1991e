"""Which hosts a scope may see: its organisation's hosts whose default team is visible, plus those
a visible team computed on (rollup rows recorded in kpis.DailyHostTeam). Anything not visible is
*not found* (404), never *forbidden* (inventory.access explains why).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import Http404

from greenkpi.inventory.access import Scope, scope_for
from greenkpi.inventory.models import Host
from greenkpi.kpis.models import DailyHostTeam, HourlyRollup
from greenkpi.lib.replica import read_alias


def hosts_visible(scope: Scope) -> QuerySet[Host]:
    """Hosts of the scope's organisation that the user may see (unordered filters only)."""
    hosts = Host.objects.filter(organisation=scope.organisation)
    if scope.org_wide:
        return hosts
    # A team sees a host it computed on even when another team is the host's default: the daily
    # refresh records (day, host, team) of every rollup row, read here through its (team, host)
    # index instead of scanning shares.
    computed_on = DailyHostTeam.objects.filter(
        organisation_id=scope.organisation.pk, team_id__in=sorted(scope.team_ids)
    ).values("host_id")
    return hosts.filter(Q(default_team_id__in=scope.team_ids) | Q(pk__in=computed_on))


def host_for(user: AbstractBaseUser | AnonymousUser, host_id: int) -> tuple[Scope, Host]:
    """A visible host with its site and default team, and the user's scope in its organisation."""
    org_slug = Host.objects.filter(pk=host_id).values_list("organisation__slug", flat=True).first()
    if org_slug is None:
        raise Http404("no such host")
    scope = scope_for(user, org_slug)  # 404 when the user is not in that organisation
    host = hosts_visible(scope).select_related("site", "default_team").filter(pk=host_id).first()
    if host is None:
        raise Http404("no such host")
    return scope, host


def hosts_with_rows(
    *, organisation_id: int, host_ids: Collection[int], start: datetime, end: datetime
) -> set[int]:
    """The hosts of ``host_ids`` with rollup rows in [start, end): one probe per host on the
    (host, hour) index that stops at its first row (grouping a week of 250 hosts' hourly rows to
    learn the same took seconds; bench/dashboard.py, the budgets page with every host silent)."""
    if not host_ids:
        return set()
    rows = HourlyRollup.objects.filter(
        host_id=OuterRef("pk"), organisation_id=organisation_id, hour__gte=start, hour__lt=end
    )
    return set(
        Host.objects.using(read_alias())
        .filter(pk__in=sorted(host_ids), organisation_id=organisation_id)
        .filter(Exists(rows))
        .values_list("pk", flat=True)
    )
