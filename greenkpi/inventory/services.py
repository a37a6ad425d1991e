"""Writes to the inventory. Keyword-only, typed; views, commands and the admin call these."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from greenkpi.inventory.models import CollectorToken, Membership, Organisation, Role, Site, Team
from greenkpi.lib import tokens


def organisation_create(*, name: str, slug: str = "") -> Organisation:
    return Organisation.objects.create(name=name, slug=slug or slugify(name))


def team_create(*, organisation: Organisation, name: str, slug: str = "") -> Team:
    return Team.objects.create(organisation=organisation, name=name, slug=slug or slugify(name))


def site_create(
    *, organisation: Organisation, name: str, grid_zone: str, pue: float = 1.5, **extra: object
) -> Site:
    site = Site(organisation=organisation, name=name, grid_zone=grid_zone.upper(), pue=pue, **extra)
    site.full_clean()
    site.save()
    return site


def user_create(
    *,
    username: str,
    password: str,
    email: str = "",
    organisation: Organisation | None = None,
    team: Team | None = None,
    role: str = Role.VIEWER,
    is_superuser: bool = False,
) -> AbstractBaseUser:
    """A user, optionally with a membership (org-wide when no team is given)."""
    user_model = get_user_model()
    with transaction.atomic():
        if is_superuser:
            user = user_model.objects.create_superuser(
                username=username, email=email, password=password
            )
        else:
            user = user_model.objects.create_user(username=username, email=email, password=password)
        if organisation is not None or team is not None:
            membership_set(
                user=user, organisation=organisation or team.organisation, team=team, role=role
            )
    return user


def membership_set(
    *, user: AbstractBaseUser, organisation: Organisation, team: Team | None, role: str
) -> Membership:
    if team is not None and team.organisation_id != organisation.pk:
        raise ValueError("the team belongs to another organisation")
    membership, _ = Membership.objects.update_or_create(
        user=user, organisation=organisation, team=team, defaults={"role": role}
    )
    return membership


def token_create(
    *,
    organisation: Organisation,
    name: str,
    default_team: Team | None = None,
    default_site: Site | None = None,
    created_by: AbstractBaseUser | None = None,
    expires_at: datetime | None = None,
) -> tuple[CollectorToken, str]:
    """A new collector token. The secret string is returned once and never stored."""
    for scoped in (default_team, default_site):
        if scoped is not None and scoped.organisation_id != organisation.pk:
            raise ValueError(f"{scoped} belongs to another organisation")
    value, parts = tokens.generate()
    token = CollectorToken.objects.create(
        organisation=organisation,
        name=name,
        prefix=parts.prefix,
        secret_hash=tokens.hash_secret(parts.secret),
        default_team=default_team,
        default_site=default_site,
        created_by=created_by,
        expires_at=expires_at,
    )
    return token, value


def token_revoke(*, token: CollectorToken) -> None:
    CollectorToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
