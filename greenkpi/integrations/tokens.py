"""Personal access tokens: create (the string is returned once), revoke, authenticate.

A token carries at most its user's rights: its teams must be teams the user sees in the token's
organisation when it is made, and every request intersects them again with what the user sees
then (a user who left a team loses it through the token too).
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from django.utils import timezone

from greenkpi.integrations.models import PersonalAccessToken, TokenAccess
from greenkpi.inventory.access import scope_for
from greenkpi.inventory.models import Organisation, Team
from greenkpi.lib import tokens

# last_used_at is written at most this often per token (one UPDATE per request would serialise
# a Grafana dashboard's parallel queries on the row).
LAST_USED_RESOLUTION = timedelta(minutes=1)
NAME_MAX_LEN = 100


def token_create(
    *,
    user: AbstractBaseUser,
    organisation: Organisation,
    name: str,
    access: str,
    expires_at: datetime,
    teams: Sequence[Team] = (),
) -> tuple[PersonalAccessToken, str]:
    """A new token of ``user`` in ``organisation``; returns (row, the token string, shown once)."""
    name = name.strip()
    if not name or len(name) > NAME_MAX_LEN:
        raise ValidationError({"name": f"a name of 1 to {NAME_MAX_LEN} characters"})
    if access not in TokenAccess.values:
        raise ValidationError({"access": "read or write"})
    now = timezone.now()
    if expires_at <= now:
        raise ValidationError({"expires_at": "must be in the future"})
    if expires_at > now + timedelta(days=PersonalAccessToken.MAX_LIFETIME_DAYS):
        limit = PersonalAccessToken.MAX_LIFETIME_DAYS
        raise ValidationError({"expires_at": f"at most {limit} days from now"})
    try:
        visible = scope_for(user, organisation.slug).team_ids
    except Http404:
        raise ValidationError({"organisation": "not one of your organisations"}) from None
    outside = [t.slug for t in teams if t.pk not in visible or t.organisation_id != organisation.pk]
    if outside:
        raise ValidationError({"teams": f"not your teams: {', '.join(sorted(outside))}"})
    value, parts = tokens.generate(tokens.PERSONAL_MARKER)
    with transaction.atomic():
        token = PersonalAccessToken.objects.create(
            user=user,
            organisation=organisation,
            name=name,
            prefix=parts.prefix,
            secret_hash=tokens.hash_secret(parts.secret),
            access=access,
            created_at=now,
            expires_at=expires_at,
        )
        token.teams.set(list(teams))
    return token, value


def token_revoke(*, token: PersonalAccessToken, user: AbstractBaseUser) -> bool:
    """Revoke one of ``user``'s own tokens; False if it was not theirs or already revoked."""
    return bool(
        PersonalAccessToken.objects.filter(
            pk=token.pk, user_id=user.pk, revoked_at__isnull=True
        ).update(revoked_at=timezone.now())
    )


def tokens_of(user: AbstractBaseUser) -> list[PersonalAccessToken]:
    """The user's tokens, newest first, with their organisation and teams (one page's list)."""
    return list(
        PersonalAccessToken.objects.filter(user_id=user.pk)
        .select_related("organisation")
        .prefetch_related("teams")
        .order_by("-created_at", "-pk")
    )


def token_authenticate(value: str) -> PersonalAccessToken | None:
    """The active token for this string, or None: revoked, expired, unknown or malformed (the
    last without touching the database). An inactive user's tokens do not work either."""
    parts = tokens.parse(value, tokens.PERSONAL_MARKER)
    if parts is None:
        return None
    now = timezone.now()
    token = (
        PersonalAccessToken.objects.select_related("user", "organisation")
        .filter(prefix=parts.prefix, revoked_at__isnull=True, expires_at__gt=now)
        .first()
    )
    if token is None or not hmac.compare_digest(
        token.secret_hash, tokens.hash_secret(parts.secret)
    ):
        return None
    if not token.user.is_active:
        return None
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        PersonalAccessToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token
