"""What each page shows, its empty states, and how many queries it may run."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from greenkpi.inventory.models import CollectorToken, Host, Team

pytestmark = pytest.mark.django_db

# Session + user + memberships + teams + the page's own reads. A page whose count grows with the
# number of hosts, devices or teams fails these bounds as soon as the fixture has a few of each.
MAX_QUERIES = {
    "/": 10,  # + carbon/cost tiles, the freshness line (newest rollup hour, last run), saved this quarter
    "/fleet/": 7,
    "/recommendations/": 6,  # session, user, scope (2), the cards and the parked ones
    "/teams/": 9,  # + the visible budgets and their status, + the read layer's freshness probe
    "/settings/tokens/": 6,
    "/charts/energy-by-team.json": 6,
    "/charts/energy-by-team.csv": 6,
}


@pytest.mark.parametrize("url", list(MAX_QUERIES))
@pytest.mark.parametrize("who", ["alice", "nina"])
def test_pages_run_a_bounded_number_of_queries(
    client, fleet, people, who, url, django_assert_max_num_queries
):
    client.force_login(people[who])
    with django_assert_max_num_queries(MAX_QUERIES[url]):
        response = client.get(url)
    assert response.status_code == 200


@pytest.mark.parametrize(
    "path", ["/hosts/{h}/", "/hosts/{h}/power.json", "/hosts/{h}/utilization.csv"]
)
def test_host_pages_run_a_bounded_number_of_queries(
    client, fleet, people, path, django_assert_max_num_queries
):
    client.force_login(people["victor"])
    with django_assert_max_num_queries(7):
        response = client.get(path.format(h=fleet.hosts["shared-1"].pk))
    assert response.status_code == 200


def test_team_pages_run_a_bounded_number_of_queries(
    client, fleet, people, django_assert_max_num_queries
):
    client.force_login(people["nina"])
    team = Team.objects.get(slug="nlp")
    # The page: + its energy, CO2e and cost totals and its budgets' status (issue 12), + the read
    # layer's freshness probe of its second rollup read (kpis.read: which days are stale).
    for url, most in ((f"/teams/{team.pk}/", 9), (f"/teams/{team.pk}/models.json", 6)):
        with django_assert_max_num_queries(most):
            assert client.get(url).status_code == 200


def test_the_fleet_page_does_not_query_per_host(
    client, fleet, people, make_batch, post_batch, acme_token, django_assert_max_num_queries
):
    for i in range(6):
        post_batch(acme_token[1], make_batch(hostname=f"extra-{i}", devices=3, windows=1))
    client.force_login(people["alice"])
    with django_assert_max_num_queries(MAX_QUERIES["/fleet/"]):
        response = client.get("/fleet/")
    assert len(response.context["fleet"].hosts) == 9


def test_the_fleet_flags_silent_and_skewed_hosts_and_shows_the_method(client, fleet, people):
    Host.objects.filter(hostname="vision-1").update(
        last_seen=timezone.now() - timedelta(minutes=11), clock_skew_s=-75.0
    )
    client.force_login(people["alice"])
    response = client.get("/fleet/")
    rows = {row.host.hostname: row for row in response.context["fleet"].hosts}
    assert rows["vision-1"].silent and rows["vision-1"].skewed
    assert not rows["nlp-1"].silent and not rows["nlp-1"].skewed
    assert {d.last_method for d in rows["vision-1"].devices} == {"counter"}
    html = response.content.decode()
    assert "silent" in html and "skewed" in html and "counter" in html


def test_the_host_page_shows_devices_and_links_its_charts_and_csvs(client, fleet, people):
    host = fleet.hosts["vision-1"]
    client.force_login(people["alice"])
    html = client.get(f"/hosts/{host.pk}/?range=7d").content.decode()
    assert "GPU-vision-1-0" in html and "NVIDIA H100 80GB HBM3" in html
    assert f"/hosts/{host.pk}/power.json?range=7d" in html
    assert f"/hosts/{host.pk}/power.csv?range=7d" in html
    assert f"/hosts/{host.pk}/utilization.csv?range=7d" in html


def test_the_host_csv_holds_power_in_watts_per_device(client, fleet, people):
    client.force_login(people["alice"])
    response = client.get(f"/hosts/{fleet.hosts['vision-1'].pk}/power.csv?range=24h")
    lines = response.content.decode().splitlines()
    assert lines[0] == "time_utc,device_id,device,kind,power_w,power_peak_w,windows"
    assert len(lines) == 1 + 2 * 3  # two GPUs, three windows in the last day
    assert lines[1].split(",")[0].endswith("Z")
    assert {line.split(",")[4] for line in lines[1:]} == {"200"}  # 12 kJ / 60 s


def test_the_team_page_lists_energy_by_model_and_run(client, fleet, people):
    team = Team.objects.get(slug="nlp")
    client.force_login(people["nina"])
    response = client.get(f"/teams/{team.pk}/models.csv?range=7d")
    lines = response.content.decode().splitlines()
    assert lines[0] == "model,run,energy_kwh,first_window_utc,last_window_utc"
    model, run, kwh, *_ = lines[1].split(",")
    assert (model, run) == ("bert", "r1")
    assert float(kwh) * 3600 == pytest.approx(27.0, rel=1e-4)  # 3 windows x 9 kJ
    assert b"bert" in client.get(f"/teams/{team.pk}/").content


def test_a_chart_json_is_a_plotly_figure_with_units_on_its_axes(client, fleet, people):
    client.force_login(people["alice"])
    figure = client.get("/charts/energy-by-team.json?range=7d").json()
    assert {t["name"] for t in figure["data"]} == {"Vision", "NLP"}
    assert figure["layout"]["yaxis"]["title"]["text"] == "Energy (kWh)"
    assert figure["layout"]["xaxis"]["title"]["text"] == "Day (UTC)"


def test_a_bad_range_is_a_400_that_says_why(client, fleet, people):
    client.force_login(people["alice"])
    for query in ("range=5y", "from=yesterday", "from=2025-02-01&to=2025-01-01"):
        response = client.get(f"/?{query}")
        assert response.status_code == 400, query
    assert client.get("/charts/energy-by-team.csv?range=5y").status_code == 400


def test_an_empty_organisation_shows_the_install_command_and_a_token_button(
    client, acme, people, settings
):
    settings.SITE_URL = "https://greenkpi.example.org"
    client.force_login(people["alice"])
    html = client.get("/").content.decode()
    assert "greenkpi-collector run --server https://greenkpi.example.org" in html
    assert "Create collector token" in html
    html = client.get("/fleet/").content.decode()
    assert "greenkpi-collector run --server https://greenkpi.example.org" in html


def test_viewers_get_the_command_but_no_token_button(client, acme, people):
    client.force_login(people["victor"])
    html = client.get("/").content.decode()
    assert "greenkpi-collector run" in html
    assert "Create collector token" not in html
    assert "Ask a manager" in html


def test_creating_a_token_shows_it_once_and_stores_only_its_hash(client, acme, people):
    client.force_login(people["alice"])
    response = client.post(
        "/settings/tokens/?org=acme", {"name": "lab", "default_team": acme.nlp.pk}
    )
    assert response.status_code == 200
    secret = response.context["secret"]
    assert secret.startswith("gkc_") and secret in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    token = CollectorToken.objects.get(name="lab")
    assert token.default_team == acme.nlp and token.created_by == people["alice"]
    assert secret not in token.secret_hash
    assert secret not in client.get("/settings/tokens/").content.decode()


def test_a_team_manager_can_only_create_tokens_for_the_teams_they_manage(client, acme, people):
    client.force_login(people["nina"])
    refused = client.post("/settings/tokens/", {"name": "x", "default_team": acme.vision.pk})
    assert "secret" not in refused.context or refused.context["secret"] is None
    no_team = client.post("/settings/tokens/", {"name": "x"})
    assert no_team.context["secret"] is None
    ok = client.post("/settings/tokens/", {"name": "x", "default_team": acme.nlp.pk})
    assert ok.context["secret"]
    assert list(CollectorToken.objects.values_list("default_team__slug", flat=True)) == ["nlp"]


def test_a_viewer_cannot_create_a_token(client, acme, people):
    client.force_login(people["victor"])
    assert client.post("/settings/tokens/", {"name": "x"}).status_code == 404
    assert not CollectorToken.objects.exists()


def test_the_token_list_of_a_team_manager_shows_only_their_teams_tokens(
    client, acme, people, acme_token
):
    from greenkpi.inventory.services import token_create

    token_create(organisation=acme, name="nlp-token", default_team=acme.nlp)
    client.force_login(people["nina"])
    names = [t.name for t in client.get("/settings/tokens/").context["tokens"]]
    assert names == ["nlp-token"]  # acme_token defaults to vision


def test_login_page_logs_in_and_logout_returns_to_it(client, people):
    response = client.get("/accounts/login/")
    assert response.status_code == 200 and b"Log in to GreenKPI" in response.content
    response = client.post(
        "/accounts/login/", {"username": "alice", "password": people["password"]}, follow=True
    )
    assert response.redirect_chain[-1][0] == "/"
    response = client.post("/accounts/logout/", {"next": "/accounts/login/"})
    assert response["Location"] == "/accounts/login/"


def test_the_org_switcher_appears_only_with_several_organisations(client, acme, globex, people):
    from greenkpi.inventory.services import membership_set

    client.force_login(people["alice"])
    assert b'name="org"' not in client.get("/fleet/").content
    membership_set(user=people["alice"], organisation=globex, team=None, role="viewer")
    html = client.get("/fleet/").content.decode()
    assert 'id="org-switch"' in html and "Globex" in html


def test_the_shown_collector_commands_are_accepted_by_the_collectors_own_parser():
    """A contract with collectors/: the empty-state lines must parse, flag for flag."""
    import shlex

    from greenkpi_collector.cli import parser

    from greenkpi.dashboard.common.onboarding import collector_commands

    lines = [
        line for line in collector_commands("https://gk.example") if "greenkpi-collector " in line
    ]
    assert [shlex.split(line)[2] for line in lines] == ["check", "run"]
    for line in lines:
        args = parser().parse_args(shlex.split(line)[2:])
        assert args.server == "https://gk.example"
        assert args.token_file == "/etc/greenkpi-collector/token"


def test_the_fleet_groups_identical_devices_of_a_host(client, fleet, people):
    client.force_login(people["alice"])
    rows = {row.host.hostname: row for row in client.get("/fleet/").context["fleet"].hosts}
    (group,) = rows["vision-1"].device_groups
    assert (group.count, group.kind, group.model, group.method) == (
        2,
        "GPU",
        "NVIDIA H100 80GB HBM3",
        "counter",
    )


def _team_kj(client, query: str) -> dict[str, float]:
    lines = client.get(f"/charts/energy-by-team.csv?{query}").content.decode().splitlines()
    assert lines[0] == "day,team_id,team,energy_kwh"
    sums: dict[str, float] = {}
    for line in lines[1:]:
        team, kwh = line.split(",")[2:4]
        sums[team] = sums.get(team, 0.0) + float(kwh) * 3600
    return sums


def test_days_read_daily_rollups_and_hours_hourly_ones_with_the_same_totals(client, fleet, people):
    client.force_login(people["alice"])
    # 7 days: daily rollups hold everything posted (164 kJ vision, 40 kJ nlp).
    assert _team_kj(client, "range=7d") == {
        "Vision": pytest.approx(164.0, rel=1e-4),
        "NLP": pytest.approx(40.0, rel=1e-4),
    }
    # 24 hours: hourly rollups; vision's windows of two days ago fall outside (72 + 20 kJ).
    assert _team_kj(client, "range=24h") == {
        "Vision": pytest.approx(92.0, rel=1e-4),
        "NLP": pytest.approx(40.0, rel=1e-4),
    }


def test_the_overview_tiles_show_carbon_and_cost_of_the_same_rows(client, fleet, people):
    client.force_login(people["alice"])
    tiles = client.get("/?range=7d").context["tiles"]
    energy_kwh = 204.0 / 3600  # 164 + 40 kJ
    assert tiles.energy_kwh == pytest.approx(energy_kwh, rel=1e-4)
    # Hosts without a site: PUE 1 and the world-average direct grid factor (363.5845 g/kWh, the
    # countries' 2023 mixes); embodied of a GPU 150 kg over 4 years (126,230,400 s) x 1,020
    # measured GPU-seconds (720 + 180 + 120), plus each host's whole-host figure (2,899.125 kg)
    # x the time its GPUs reported: vision-1 2 x 180 s, nlp-1 180 s, shared-1 120 s = 660 s.
    world = (10450.11 * 760 + 6629.84 * 370 + 792.77 * 406) / 29475.92
    embodied = (150.0 * 1020 + 2899.125 * 660) / (4 * 31_557_600)
    assert tiles.co2e_kg == pytest.approx(energy_kwh * world / 1000 + embodied, rel=1e-3)
    assert tiles.costs == ()  # no tariff: nothing priced, all of it said to be unpriced
    assert tiles.uncosted_energy_kwh == pytest.approx(energy_kwh, rel=1e-4)
    vision_only = client.get("/?range=7d&team=vision").context["tiles"]
    assert vision_only.uncosted_energy_kwh == pytest.approx(164.0 / 3600, rel=1e-4)


def test_the_freshness_line_says_how_current_the_rollups_are(client, fleet, people):
    from greenkpi.kpis.models import RecomputeRun

    client.force_login(people["alice"])
    html = client.get("/").content.decode()
    assert "Rollups up to" in html and "no periodic recompute has run yet" in html
    RecomputeRun.objects.create(kind="periodic", status="ok")
    html = client.get("/teams/").content.decode()
    assert "last recompute ok" in html


def test_the_freshness_line_never_promises_the_end_of_the_current_hour(client, fleet, people):
    """At 16:25 with rows for 16:00-17:00 it says "up to 16:25 (the current hour so far)", not
    "up to 17:00" (issue 12, part 6)."""
    import time_machine

    from greenkpi.kpis.models import HourlyRollup

    newest = HourlyRollup.objects.order_by("-hour").values_list("hour", flat=True).first()
    client.force_login(people["alice"])
    with time_machine.travel(newest + timedelta(minutes=25), tick=False):
        html = client.get("/").content.decode()
    assert f"Rollups up to {newest:%Y-%m-%d %H}:25 UTC (the current hour so far)" in html
    later = newest + timedelta(hours=3)
    with time_machine.travel(later, tick=False):
        html = client.get("/").content.decode()
    end = newest + timedelta(hours=1)
    assert f"Rollups up to {end:%Y-%m-%d %H:%M} UTC;" in html  # a finished hour: its end


def test_host_charts_beyond_a_week_read_hourly_rollups(client, fleet, people):
    client.force_login(people["alice"])
    host = fleet.hosts["vision-1"]
    response = client.get(f"/hosts/{host.pk}/power.csv?range=30d")
    lines = response.content.decode().splitlines()
    assert lines[0] == "time_utc,device_id,device,kind,power_w,power_peak_w,windows"
    rows = [line.split(",") for line in lines[1:]]
    assert {r[2] for r in rows} == {
        "GPU-vision-1-0 · NVIDIA H100 80GB HBM3",
        "GPU-vision-1-1 · NVIDIA H100 80GB HBM3",
    }
    assert {r[4] for r in rows} == {"200"}  # 12 kJ per 60 s window, from energy / measured time
    assert {r[5] for r in rows} == {""}  # peaks are not kept by rollups
    assert sum(int(r[6]) for r in rows) == 12  # 2 GPUs x 6 windows
    assert all(r[0].endswith(":00:00Z") for r in rows)  # hourly points
    figure = client.get(f"/hosts/{host.pk}/utilization.json?range=30d").json()
    assert len(figure["data"]) == 2


@pytest.mark.parametrize("query", ["range=7d", "range=24h", "range=7d&team=nlp"])
def test_the_tiles_the_chart_and_the_team_totals_agree(client, fleet, people, query):
    client.force_login(people["alice"])
    tiles = client.get(f"/?{query}").context["tiles"]
    chart_kj = sum(_team_kj(client, query).values())
    assert tiles.energy_kwh * 3600 == pytest.approx(chart_kj, rel=1e-4)  # CSV keeps 6 digits
    if "team=" not in query:
        totals = client.get(f"/teams/?{query}").context["totals"]
        assert sum(t.energy_kwh for t in totals) * 3600 == pytest.approx(chart_kj, rel=1e-4)


def test_the_fleet_is_paged_by_hostname(client, fleet, people, settings, monkeypatch):
    from greenkpi.dashboard.fleet import selectors as host_selectors

    monkeypatch.setattr(host_selectors, "FLEET_PAGE_SIZE", 2)
    client.force_login(people["alice"])
    first = client.get("/fleet/")
    assert [r.host.hostname for r in first.context["fleet"].hosts] == ["nlp-1", "shared-1"]
    assert "page 1 of 2" in first.content.decode() and "page=2" in first.content.decode()
    second = client.get("/fleet/?page=2")
    assert [r.host.hostname for r in second.context["fleet"].hosts] == ["vision-1"]
    # A page past the end (or not a number) shows the nearest one instead of an error.
    assert client.get("/fleet/?page=9").context["fleet"].page.number == 2
    assert client.get("/fleet/?page=x").context["fleet"].page.number == 1


@pytest.mark.parametrize("query", ["range=7d", "range=24h"])
def test_energy_lands_on_the_utc_day_its_windows_start(client, fleet, people, query):
    client.force_login(people["alice"])
    lines = client.get(f"/charts/energy-by-team.csv?{query}").content.decode().splitlines()
    days = {line.split(",")[0][:10] for line in lines[1:] if ",Vision," in line}
    recent = fleet.now - timedelta(hours=2)  # the fixture's windows start here (and 2 days before)
    want = {recent.date().isoformat()}
    if query == "range=7d":
        want.add((recent - timedelta(days=2)).date().isoformat())
    assert days == want
