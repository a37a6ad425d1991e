"""Who the read API's caller is and what they see: a person's scope (``inventory.access``), as is
for a session, narrowed for a personal access token to its organisation and its teams.

Anything not visible is *not found* (404), like the pages: another organisation's team, an unknown
slug, another team's alert. Organisation-level figures (rows without a team, organisation
budgets) need an org-wide scope; a token narrowed to teams is never org-wide.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.http import Http404
from rest_framework.request import Request

from greenkpi.integrations.models import PersonalAccessToken
from greenkpi.inventory.access import NoOrganisation, scope_for
from greenkpi.inventory.models import Organisation, Team

SLUG_MAX_LEN = 100


@dataclass(frozen=True)
class Caller:
    user: AbstractBaseUser
    organisation: Organisation
    teams: tuple[Team, ...]
    org_wide: bool
    token: PersonalAccessToken | None

    @property
    def team_ids(self) -> frozenset[int]:
        return frozenset(t.pk for t in self.teams)

    def team_by_slug(self, slug: str) -> Team:
        for team in self.teams:
            if team.slug == slug:
                return team
        raise Http404("no such team")


def _slug_like(value: str) -> bool:
    return 0 < len(value) <= SLUG_MAX_LEN and all(c.isalnum() or c in "-_" for c in value)


def caller_for(request: Request, org_slug: str | None = None) -> Caller:
    """The caller's view of one organisation (a token: its own, whatever ``org`` says)."""
    if org_slug is not None and not _slug_like(org_slug):
        raise Http404("no such organisation")
    token = request.auth if isinstance(request.auth, PersonalAccessToken) else None
    if token is not None:
        if org_slug and org_slug != token.organisation.slug:
            raise Http404("no such organisation")
        org_slug = token.organisation.slug
    try:
        scope = scope_for(request.user, org_slug or None)
    except NoOrganisation:
        raise Http404("no organisation") from None
    teams, org_wide = scope.teams, scope.org_wide
    if token is not None:
        narrowed = set(token.teams.values_list("pk", flat=True))
        if narrowed:
            teams = tuple(t for t in teams if t.pk in narrowed)
            org_wide = False
    return Caller(request.user, scope.organisation, teams, org_wide, token)
