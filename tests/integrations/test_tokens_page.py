"""The account page for personal access tokens: created and shown once, listed without the secret,
revoked (then refused by the API), never for a team the person cannot see."""

from __future__ import annotations

import re

import pytest

from greenkpi.integrations.models import PersonalAccessToken

pytestmark = pytest.mark.django_db

PAGE = "/account/api-tokens/"
API = "/api/v1/alert-rules/"


def test_create_show_once_list_and_revoke(client, people, acme, auth):
    client.force_login(people["victor"])  # a viewer has the page too
    page = client.get(PAGE)
    assert page.status_code == 200
    assert b"API tokens" in page.content
    made = client.post(
        PAGE + "?org=acme", {"name": "grafana", "access": "read", "lifetime": "30", "org": "acme"}
    )
    assert made.status_code == 200
    (secret,) = set(re.findall(r"gkp_[0-9A-Za-z_]+", made.content.decode()))
    row = PersonalAccessToken.objects.get()
    assert row.user == people["victor"] and row.access == "read"
    assert secret not in row.secret_hash and row.secret_hash != secret
    assert client.get(API, **auth(secret)).status_code == 200
    again = client.get(PAGE)
    assert secret.encode() not in again.content  # shown once
    assert row.prefix.encode() in again.content
    client.post(PAGE + "?org=acme", {"revoke": str(row.pk)})
    row.refresh_from_db()
    assert row.revoked_at is not None
    assert client.get(API, **auth(secret)).status_code == 401


def test_no_token_for_a_team_one_cannot_see_and_no_revoking_others(client, people, acme, pat):
    client.force_login(people["victor"])  # vision only
    refused = client.post(
        PAGE + "?org=acme",
        {"name": "x", "access": "write", "lifetime": "7", "teams": [str(acme.nlp.pk)]},
    )
    assert refused.status_code == 200
    assert not PersonalAccessToken.objects.exists()
    pat(people["alice"], acme)
    other = PersonalAccessToken.objects.get()
    assert client.post(PAGE + "?org=acme", {"revoke": str(other.pk)}).status_code == 404
    other.refresh_from_db()
    assert other.revoked_at is None
