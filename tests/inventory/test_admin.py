"""The admin: every inventory model is there, and tokens show their secret exactly once."""

from __future__ import annotations

import re

import pytest

from greenkpi.inventory.models import CollectorToken
from greenkpi.inventory.selectors import collector_token_authenticate


@pytest.fixture
def admin_client(client, db):
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_superuser("root", "root@example.com", "pw-for-the-admin")
    client.login(username="root", password="pw-for-the-admin")
    return client


@pytest.mark.parametrize(
    "model", ["organisation", "team", "membership", "site", "host", "device", "collectortoken"]
)
def test_every_inventory_model_has_an_admin_page(admin_client, model):
    assert admin_client.get(f"/admin/inventory/{model}/").status_code == 200
    assert admin_client.get(f"/admin/inventory/{model}/add/").status_code == 200


def test_a_token_created_in_the_admin_is_shown_once_then_only_its_prefix(
    admin_client, acme, globex
):
    response = admin_client.post(
        "/admin/inventory/collectortoken/add/",
        {"organisation": acme.pk, "name": "rack 7", "default_team": acme.vision.pk},
        follow=True,
    )
    assert response.status_code == 200
    secret = re.search(r"gkc_[A-Za-z0-9_]+", response.content.decode()).group(0)
    token = collector_token_authenticate(secret)
    assert token is not None
    assert token.default_team == acme.vision
    listing = admin_client.get("/admin/inventory/collectortoken/").content.decode()
    assert token.prefix in listing
    assert secret not in listing
    detail = admin_client.get(
        f"/admin/inventory/collectortoken/{token.pk}/change/"
    ).content.decode()
    assert secret not in detail


def test_a_token_cannot_default_to_another_orgs_team(admin_client, acme, globex):
    response = admin_client.post(
        "/admin/inventory/collectortoken/add/",
        {"organisation": acme.pk, "name": "bad", "default_team": globex.research.pk},
    )
    assert response.status_code == 200  # the form again, with the error
    assert "belongs to another organisation" in response.content.decode()
    assert not CollectorToken.objects.exists()


def test_revoking_from_the_admin_locks_the_collector_out(admin_client, acme_token):
    token, secret = acme_token
    admin_client.post(
        "/admin/inventory/collectortoken/",
        {"action": "revoke", "_selected_action": [token.pk]},
    )
    assert collector_token_authenticate(secret) is None


def test_editing_a_token_cannot_point_it_at_another_orgs_team(admin_client, acme_token, globex):
    token, _ = acme_token
    response = admin_client.post(
        f"/admin/inventory/collectortoken/{token.pk}/change/",
        {"name": token.name, "default_team": globex.research.pk},
    )
    assert "belongs to another organisation" in response.content.decode()
    token.refresh_from_db()
    assert token.default_team.organisation_id == token.organisation_id
