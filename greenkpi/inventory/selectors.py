"""Reads of the inventory."""

from __future__ import annotations

import hmac
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from greenkpi.inventory.models import CollectorToken
from greenkpi.lib import tokens

# last_used_at is bookkeeping: refresh it at most this often, not on every request.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def collector_token_authenticate(value: str) -> CollectorToken | None:
    """The active token for this string, or None. One indexed query; none for malformed strings."""
    parts = tokens.parse(value)
    if parts is None:
        return None
    now = timezone.now()
    token = (
        CollectorToken.objects.select_related("organisation", "default_team", "default_site")
        .filter(prefix=parts.prefix, revoked_at__isnull=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .first()
    )
    if token is None or not hmac.compare_digest(
        token.secret_hash, tokens.hash_secret(parts.secret)
    ):
        return None
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        CollectorToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token
