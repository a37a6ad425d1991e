"""The newcomer's small defects (issue 12, part 6) that need no browser: a 404 with navigation,
the API docs linked from the dashboard and the README, the demo's users named on its login page
(in demo mode only)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.django_db
REPO = Path(__file__).resolve().parents[2]


def test_a_404_keeps_the_navigation_and_offers_a_way_back(client, people):
    client.force_login(people["victor"])
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    page = response.content.decode()
    assert 'aria-label="Main"' in page and "Page not found" in page
    assert 'href="/"' in page and "/no/such/page/" in page


def test_a_404_for_someone_logged_out_offers_the_login(client):
    page = client.get("/no/such/page/").content.decode()
    assert "Page not found" in page and 'href="/accounts/login/"' in page


def test_the_api_docs_are_linked_from_every_dashboard_page_and_the_readme(client, people):
    client.force_login(people["alice"])
    for path in ("/", "/fleet/", "/teams/"):
        page = client.get(path).content.decode()
        assert 'href="/api/docs/" data-testid="api-docs"' in page, path
    readme = (REPO / "README.md").read_text()
    assert "/api/docs/" in readme


def test_the_login_page_names_the_demo_users_only_in_demo_mode(client, settings):
    from greenkpi.demo.simulation import DEMO_PASSWORD
    from greenkpi.inventory.services import organisation_create, user_create

    org = organisation_create(name="Demo Labs", slug="demo")
    user_create(username="admin", password=DEMO_PASSWORD, organisation=org)
    user_create(username="nlp-viewer", password=DEMO_PASSWORD, organisation=org)
    settings.GREENKPI_DEMO = False
    assert 'data-testid="demo-users"' not in client.get("/accounts/login/").content.decode()
    settings.GREENKPI_DEMO = True
    page = client.get("/accounts/login/").content.decode()
    assert 'data-testid="demo-users"' in page and DEMO_PASSWORD in page
    assert "<code>admin</code>" in page and "<code>nlp-viewer</code>" in page
    assert "vision-lead" not in page  # only users that exist
