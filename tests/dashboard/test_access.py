"""Who may open what: every page, chart and CSV, for each persona. Not visible means 404, never 403.

Alice administers all of Acme; Victor views only vision; Nina manages only nlp; Gary is Globex.
"""

from __future__ import annotations

import csv
import io

import pytest

from greenkpi.inventory.models import Team

pytestmark = pytest.mark.django_db

VISIBLE_HOSTS = {
    "alice": {"vision-1", "nlp-1", "shared-1"},
    "victor": {"vision-1", "shared-1"},  # shared-1: vision's resnet computes there
    "nina": {"nlp-1", "shared-1"},
    "gary": {"globex-1"},
}
VISIBLE_TEAMS = {
    "alice": {"vision", "nlp"},
    "victor": {"vision"},
    "nina": {"nlp"},
    "gary": {"research"},
}
HOME_ORG = {"alice": "acme", "victor": "acme", "nina": "acme", "gary": "globex"}
ALL_HOSTS = ("vision-1", "nlp-1", "shared-1", "globex-1")
HOST_URLS = (
    "/hosts/{}/",
    "/hosts/{}/power.json",
    "/hosts/{}/power.csv",
    "/hosts/{}/utilization.json",
    "/hosts/{}/utilization.csv",
)
TEAM_URLS = ("/teams/{}/", "/teams/{}/models.json", "/teams/{}/models.csv")
PEOPLE = ("alice", "victor", "nina", "gary")


def csv_rows(response) -> list[dict[str, str]]:
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return list(csv.DictReader(io.StringIO(body.decode())))


@pytest.mark.parametrize("who", PEOPLE)
@pytest.mark.parametrize("hostname", ALL_HOSTS)
def test_a_host_page_and_its_charts_open_only_for_people_who_see_the_host(
    client, fleet, people, who, hostname
):
    client.force_login(people[who])
    expected = 200 if hostname in VISIBLE_HOSTS[who] else 404
    for url in HOST_URLS:
        response = client.get(url.format(fleet.hosts[hostname].pk))
        assert response.status_code == expected, url


@pytest.mark.parametrize("who", PEOPLE)
@pytest.mark.parametrize("slug", ["vision", "nlp", "research"])
def test_a_team_page_and_its_charts_open_only_for_its_viewers(client, fleet, people, who, slug):
    client.force_login(people[who])
    team = Team.objects.get(slug=slug)
    for url in TEAM_URLS:
        response = client.get(url.format(team.pk))
        assert response.status_code == (200 if slug in VISIBLE_TEAMS[who] else 404), url


@pytest.mark.parametrize("who", PEOPLE)
def test_the_fleet_lists_exactly_the_visible_hosts(client, fleet, people, who):
    client.force_login(people[who])
    response = client.get("/fleet/")
    assert response.status_code == 200
    listed = {row.host.hostname for row in response.context["fleet"].hosts}
    assert listed == VISIBLE_HOSTS[who]


@pytest.mark.parametrize("who", PEOPLE)
def test_the_energy_csv_holds_only_the_visible_teams_with_the_right_energy(
    client, fleet, people, who
):
    ENERGY_KJ = fleet.energy_kj
    client.force_login(people[who])
    response = client.get("/charts/energy-by-team.csv?range=7d")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    totals: dict[str, float] = {}
    for row in csv_rows(response):
        totals[row["team"]] = totals.get(row["team"], 0.0) + float(row["energy_kwh"])
    names = {t.name: t.slug for t in Team.objects.all()}
    assert {names[n] for n in totals} == VISIBLE_TEAMS[who]
    for name, kwh in totals.items():
        assert kwh * 3600 == pytest.approx(ENERGY_KJ[names[name]], rel=1e-4)


@pytest.mark.parametrize("who", PEOPLE)
def test_the_overview_tiles_add_up_the_visible_teams_only(client, fleet, people, who):
    ENERGY_KJ = fleet.energy_kj
    client.force_login(people[who])
    response = client.get("/?range=7d")
    assert response.status_code == 200
    expected_kj = sum(ENERGY_KJ[slug] for slug in VISIBLE_TEAMS[who])
    assert response.context["tiles"].energy_kwh * 3600 == pytest.approx(expected_kj, rel=1e-4)
    assert response.context["tiles"].hosts == len(VISIBLE_HOSTS[who])


@pytest.mark.parametrize("who", PEOPLE)
@pytest.mark.parametrize("org", ["acme", "globex", "nosuch"])
def test_another_organisation_is_not_found(client, fleet, people, who, org):
    client.force_login(people[who])
    for url in (
        "/",
        "/fleet/",
        "/teams/",
        "/charts/energy-by-team.json",
        "/charts/energy-by-team.csv",
    ):
        response = client.get(f"{url}?org={org}")
        assert response.status_code == (200 if org == HOME_ORG[who] else 404), url


def test_a_team_filter_naming_an_invisible_team_is_not_found(client, fleet, people):
    client.force_login(people["victor"])
    assert client.get("/?team=vision").status_code == 200
    assert client.get("/?team=nlp").status_code == 404
    assert client.get("/charts/energy-by-team.csv?team=nlp").status_code == 404
    assert client.get("/?team=research").status_code == 404


def test_the_team_filter_narrows_the_chart_to_the_chosen_team(client, fleet, people):
    client.force_login(people["alice"])
    rows = csv_rows(client.get("/charts/energy-by-team.csv?team=nlp&range=7d"))
    assert {r["team"] for r in rows} == {"NLP"}


@pytest.mark.parametrize("who", PEOPLE)
def test_the_token_page_is_only_for_managers_and_admins(client, fleet, people, who):
    client.force_login(people[who])
    response = client.get("/settings/tokens/")
    assert response.status_code == (404 if who == "victor" else 200)


@pytest.mark.parametrize(
    "url", ["/", "/fleet/", "/teams/", "/settings/tokens/", "/charts/energy-by-team.csv"]
)
def test_anonymous_visitors_are_sent_to_the_login_page(client, fleet, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_unknown_ids_are_not_found(client, fleet, people):
    client.force_login(people["alice"])
    assert client.get("/hosts/999999/").status_code == 404
    assert client.get("/teams/999999/").status_code == 404
    assert client.get(f"/hosts/{fleet.hosts['vision-1'].pk}/nosuch.json").status_code == 404
    assert client.get(f"/hosts/{fleet.hosts['vision-1'].pk}/power.xml").status_code == 404


def test_a_superuser_sees_every_organisation(client, fleet):
    from greenkpi.inventory.services import user_create

    root = user_create(username="root", password="x" * 20, is_superuser=True)
    client.force_login(root)
    assert client.get(f"/hosts/{fleet.hosts['globex-1'].pk}/").status_code == 200
    assert client.get("/fleet/?org=acme").status_code == 200
    response = client.get("/?org=globex")
    assert len(response.context["scope"].organisations) == 2


def test_a_user_without_organisation_is_told_whom_to_ask(client, db):
    from greenkpi.inventory.services import user_create

    client.force_login(user_create(username="loner", password="x" * 20))
    response = client.get("/")
    assert response.status_code == 200
    assert b"not in an organisation" in response.content
