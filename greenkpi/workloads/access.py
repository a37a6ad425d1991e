"""Who may read or write which model through the API (docs/retraining.md, "API").

- People: the scope every page uses (``inventory.access.scope_for``). A model of a team the person
  cannot see is *not found* (404), never *forbidden*, so ids cannot be probed. Writing needs the
  manager or admin role on the team (or the organisation); a viewer of the team gets 403.
- Collector tokens may WRITE (register models, versions and runs, close runs, post evaluations and
  drift reports) for any team of their own organisation: a training job on an ML host holds that
  token, not a person's session. They can READ nothing (403 on every GET, before any lookup, so
  the answer says nothing about what exists); another organisation's model or team is 404.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import Http404
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request

from greenkpi.inventory.access import NoOrganisation, Scope, scope_for
from greenkpi.inventory.models import CollectorToken, Organisation, Team
from greenkpi.workloads.models import MLModel

SLUG = re.compile(r"[-a-zA-Z0-9_]{1,100}")
WRITE_ONLY = "collector tokens are write-only: they cannot read the registry"


@dataclass(frozen=True)
class Access:
    """What the caller may do inside one organisation."""

    organisation: Organisation
    readable_team_ids: frozenset[int]
    writable_team_ids: frozenset[int]
    is_collector: bool


def _token(request: Request) -> CollectorToken | None:
    return request.auth if isinstance(request.auth, CollectorToken) else None


def is_slug(value: str) -> bool:
    """Whether ``value`` can be a slug at all: anything else (a NUL byte, a space) names nothing,
    and must not reach the database, which refuses NUL bytes with an error (a 500)."""
    return bool(SLUG.fullmatch(value))


def access_for(request: Request, org_slug: str | None = None) -> Access:
    """The caller's access in ``org_slug`` (a token: its own organisation, whatever is asked)."""
    if org_slug and not is_slug(org_slug):
        raise Http404("no such organisation")
    token = _token(request)
    if token is not None:
        if org_slug and org_slug != token.organisation.slug:
            raise Http404("no such organisation")
        teams = frozenset(
            Team.objects.filter(organisation=token.organisation).values_list("pk", flat=True)
        )
        return Access(token.organisation, frozenset(), teams, True)
    try:
        scope = scope_for(request.user, org_slug)
    except NoOrganisation:
        raise Http404("no organisation") from None
    return Access(scope.organisation, scope.team_ids, scope.managed_team_ids, False)


def forbid_collector_reads(request: Request) -> None:
    if _token(request) is not None:
        raise PermissionDenied(WRITE_ONLY)


def team_for_write(request: Request, *, team_slug: str, org_slug: str | None = None) -> Team:
    access = access_for(request, org_slug)
    team = Team.objects.filter(organisation=access.organisation, slug=team_slug).first()
    if team is None or (
        team.pk not in access.writable_team_ids and team.pk not in access.readable_team_ids
    ):
        raise Http404("no such team")
    if team.pk not in access.writable_team_ids:
        raise PermissionDenied("writing needs the manager or admin role on this team")
    return team


def model_for(request: Request, model_id: int, *, write: bool) -> MLModel:
    """The model ``model_id`` if the caller may read it (or write it, with ``write``)."""
    if not write:
        forbid_collector_reads(request)
    org_slug = (
        MLModel.objects.filter(pk=model_id)
        .values_list("team__organisation__slug", flat=True)
        .first()
    )
    if org_slug is None:
        raise Http404("no such model")
    token = _token(request)
    if token is not None and token.organisation.slug != org_slug:
        raise Http404("no such model")
    try:
        access = access_for(request, org_slug)
    except Http404:
        # Another organisation's model: the same answer as an unknown id, not "no organisation".
        raise Http404("no such model") from None
    model = MLModel.objects.select_related("team__organisation").get(pk=model_id)
    visible = access.readable_team_ids | access.writable_team_ids
    if model.team_id not in visible:
        raise Http404("no such model")
    if write and model.team_id not in access.writable_team_ids:
        raise PermissionDenied("writing needs the manager or admin role on this team")
    return model


def model_for_person(
    user: AbstractBaseUser | AnonymousUser, model_id: int
) -> tuple[Scope, MLModel]:
    """For dashboard pages: the model if its team is visible to ``user`` (else 404, never 403),
    with the user's scope in its organisation. Same rule as the API's reads."""
    org_slug = (
        MLModel.objects.filter(pk=model_id)
        .values_list("team__organisation__slug", flat=True)
        .first()
    )
    if org_slug is None:
        raise Http404("no such model")
    scope = scope_for(user, org_slug)  # 404 when the user is not in that organisation
    model = (
        MLModel.objects.select_related("team__organisation", "assessment", "owner")
        .filter(pk=model_id, team_id__in=list(scope.team_ids))
        .first()
    )
    if model is None:
        raise Http404("no such model")
    return scope, model
