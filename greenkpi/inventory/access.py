"""Who may see what: the one place that answers it for every page, chart and CSV.

Rules (docs/dashboard.md): an org-wide member sees the whole organisation; a team member sees only
their teams; superusers see everything. Which hosts a scope sees depends on where its teams'
work ran, a KPI fact, so that rule lives with the rollups (kpis.read.hosts).
Anything not visible is reported as *not found* (404), never *forbidden*, so ids of other tenants
and teams cannot be probed.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import Http404

from greenkpi.inventory.models import Membership, Organisation, Role, Team

MANAGING_ROLES = frozenset({Role.MANAGER, Role.ADMIN})


class NoOrganisation(Exception):
    """The user belongs to no organisation yet (a page says whom to ask)."""


@dataclass(frozen=True)
class Scope:
    """What one user may see and manage inside one organisation (the one chosen for this request)."""

    organisation: Organisation
    organisations: tuple[Organisation, ...]  # all the user may switch between
    org_wide: bool
    teams: tuple[Team, ...]  # visible teams, by name
    managed_team_ids: frozenset[int]  # teams whose tokens this user may create
    manages_org: bool

    @property
    def team_ids(self) -> frozenset[int]:
        return frozenset(team.pk for team in self.teams)

    @property
    def can_manage_tokens(self) -> bool:
        return self.manages_org or bool(self.managed_team_ids)

    def team_by_slug(self, slug: str) -> Team:
        for team in self.teams:
            if team.slug == slug:
                return team
        raise Http404("no such team")

    def team_by_id(self, team_id: int) -> Team:
        for team in self.teams:
            if team.pk == team_id:
                return team
        raise Http404("no such team")


def scope_for(user: AbstractBaseUser | AnonymousUser, org_slug: str | None = None) -> Scope:
    """The user's scope in the organisation ``org_slug`` (default: their first, by name).

    Two queries: memberships (with their organisations and teams), and the organisation's teams
    when the user sees all of them. Raises Http404 for an organisation the user cannot see.
    """
    if not user.is_authenticated:
        raise Http404
    memberships = list(Membership.objects.filter(user=user).select_related("organisation", "team"))
    if user.is_superuser:
        organisations = tuple(Organisation.objects.all())
    else:
        by_id = {m.organisation_id: m.organisation for m in memberships}
        organisations = tuple(sorted(by_id.values(), key=lambda o: (o.name, o.pk)))
    if not organisations:
        raise NoOrganisation
    if org_slug:
        organisation = next((o for o in organisations if o.slug == org_slug), None)
        if organisation is None:
            raise Http404("no such organisation")
    else:
        organisation = organisations[0]
    mine = [m for m in memberships if m.organisation_id == organisation.pk]
    org_membership = next((m for m in mine if m.team_id is None), None)
    org_wide = user.is_superuser or org_membership is not None
    manages_org = user.is_superuser or (
        org_membership is not None and org_membership.role in MANAGING_ROLES
    )
    if org_wide:
        teams = tuple(Team.objects.filter(organisation=organisation).order_by("name", "pk"))
    else:
        teams = tuple(sorted((m.team for m in mine if m.team), key=lambda t: (t.name, t.pk)))
    if manages_org:
        managed = frozenset(t.pk for t in teams)
    else:
        managed = frozenset(m.team_id for m in mine if m.team_id and m.role in MANAGING_ROLES)
    return Scope(
        organisation=organisation,
        organisations=organisations,
        org_wide=org_wide,
        teams=teams,
        managed_team_ids=managed,
        manages_org=manages_org,
    )


def team_for(user: AbstractBaseUser | AnonymousUser, team_id: int) -> tuple[Scope, Team]:
    """A visible team and the user's scope in its organisation."""
    org_slug = Team.objects.filter(pk=team_id).values_list("organisation__slug", flat=True).first()
    if org_slug is None:
        raise Http404("no such team")
    scope = scope_for(user, org_slug)
    return scope, scope.team_by_id(team_id)
