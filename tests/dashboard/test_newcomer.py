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


def test_the_teams_pages_show_co2e_cost_and_budget_status_not_only_energy(client, fleet, people):
    """Issue 12: Teams and Team showed energy only. Same rows as the overview's tiles: the
    teams' CO2e totals add up to the overview's."""
    from greenkpi.alerts import services
    from greenkpi.inventory.models import Team

    nlp = Team.objects.get(slug="nlp")
    services.budget_create(
        organisation=nlp.organisation,
        user=people["nina"],
        team=nlp,
        name="NLP energy",
        metric="energy_kwh",
        period="month",
        amount=1000,
    )
    client.force_login(people["alice"])
    teams = client.get("/teams/?range=7d")
    totals = {row.team.slug: row for row in teams.context["totals"]}
    overview = client.get("/?range=7d").context["tiles"]
    assert sum(t.co2e_kg for t in totals.values()) == pytest.approx(overview.co2e_kg, rel=1e-9)
    assert totals["nlp"].co2e_kg > 0
    page = teams.content.decode()
    assert "CO2e, total (SCI numerator)" in page and "NLP energy" in page
    assert 'data-testid="budget-status">On track<' in page
    assert "no tariff" in page  # the fleet has no tariff: said, not shown as 0

    team_page = client.get(f"/teams/{nlp.pk}/?range=7d").content.decode()
    assert 'data-testid="tile-co2e"' in team_page and 'data-testid="tile-energy"' in team_page
    assert "NLP energy" in team_page and 'data-testid="budget-status"' in team_page
