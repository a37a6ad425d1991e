"""The scripting commands a platform engineer uses to set up an organisation."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from greenkpi.inventory.models import CollectorToken, Membership, Organisation, Team
from greenkpi.inventory.selectors import collector_token_authenticate


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().strip()


def test_an_org_team_user_and_token_from_the_command_line(db, monkeypatch):
    assert run("create_org", "Acme ML") == "acme-ml"
    assert run("create_team", "acme-ml", "Computer Vision", "--slug", "vision") == "vision"
    monkeypatch.setenv("GREENKPI_PASSWORD", "a long enough password")
    run("create_user", "lea", "--org", "acme-ml", "--team", "vision", "--role", "manager")
    secret = run("create_token", "acme-ml", "--team", "vision", "--name", "rack-1")
    org = Organisation.objects.get(slug="acme-ml")
    membership = Membership.objects.get(user__username="lea")
    assert (membership.organisation, membership.team.slug, membership.role) == (
        org,
        "vision",
        "manager",
    )
    assert get_user_model().objects.get(username="lea").check_password("a long enough password")
    token = collector_token_authenticate(secret)
    assert (
        token is not None
        and token.organisation == org
        and token.default_team == Team.objects.get(slug="vision")
    )
    assert CollectorToken.objects.get().name == "rack-1"


def test_commands_explain_what_is_wrong(db, monkeypatch):
    with pytest.raises(CommandError, match="no organisation with slug 'nope'"):
        run("create_team", "nope", "X")
    run("create_org", "Acme")
    with pytest.raises(CommandError, match="no team 'ghost'"):
        run("create_token", "acme", "--team", "ghost")
    monkeypatch.delenv("GREENKPI_PASSWORD", raising=False)
    with pytest.raises(CommandError, match="GREENKPI_PASSWORD"):
        run("create_user", "bob", "--org", "acme")
