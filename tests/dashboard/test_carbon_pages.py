"""The carbon page, grid insights and the monthly ESG report, checked against hand-worked figures.

The story (time pinned at 2026-03-10 12:00 UTC): Acme's site paris-dc (zone FR, PUE 1.3) has a
contract of 10 gCO2e/kWh (market-based) and a tariff of 0.20 EUR/kWh from 2026-01-01. Samples go in
through the ingest API, then the hourly rollups are computed:

- vision-1 (vision): 2 H100 x 3 windows of 60 s x 12,000 J on 2026-03-02 10:00, and 2 x 3 x 6,000 J
  on 2026-02-15 10:00 (the previous month);
- nlp-1 (nlp): 1 H100 x 3 windows x 36,000 J on 2026-03-02 10:00.
Every window: busy 75 %, idle 5 s. No hourly grid data: FR direct (Scope 2, from the 2023 generation
mix, docs/kpis.md "Reporting") 17,212.96 / 514.11 = 33.4811 g/kWh, renewables 26.29 %. Each host
also carries its whole-host embodied share: an 8-GPU-class server, 2,899.125 kg over 4 years, so a
host whose GPUs report 180 s adds 2,899.125 x 180 / (4 x 31,557,600) = 0.00413405 kg (HOST_180S).
The figures below were worked at 41.44 g/kWh before gk-2026.2; each location-based figure scales
by 33.4811 / 41.44 (the constants below are written with FR).

Worked by hand, March:
  vision IT 6 x 12,000 J / 3.6e6 = 0.02 kWh; facility x 1.3 = 0.026 kWh
         location 0.026 x 41.44 / 1000 = 0.00107744 kg; market 0.026 x 10 / 1000 = 0.00026 kg
         embodied 2 GPUs x 150 kg x 180 s / (4 x 31,557,600 s) = 2 x 0.000213894 = 0.000427788 kg
         cost 0.026 x 0.20 = 0.0052 EUR; GPU-h 6 x 60 / 3600 = 0.1; idle 6 x 5 / 3600 = 0.0083333
         idle kWh 0.02 x 5/60 = 0.00166667; idle CO2e 0.00166667 x 1.3 x 0.04144 = 0.0000897867 kg
  nlp    IT 3 x 36,000 / 3.6e6 = 0.03 kWh; facility 0.039 kWh; location 0.039 x 0.04144 = 0.00161616
         market 0.00039; embodied 0.000213894; cost 0.0078 EUR; GPU-h 0.05; idle 0.00416667 GPU-h
         idle kWh 0.0025; idle CO2e 0.0025 x 1.3 x 0.04144 = 0.00013468 kg
  total  IT 0.05; facility 0.065; location 0.0026936; market 0.00065; embodied 0.000641682;
         O + M = 0.003335282; embodied share 0.000641682 / 0.003335282 = 0.192393; cost 0.013 EUR
February (vision only): IT 0.01, facility 0.013, location 0.00053872, cost 0.0026 EUR, so
month over month: location +400 % for the organisation, +100 % for vision alone (victor).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import time_machine

from greenkpi.carbon.methodology import METHODOLOGY_VERSION
from greenkpi.carbon.models import ElectricityTariff, GridIntensityHourly, MarketFactor
from greenkpi.dashboard.carbon import selectors as sc
from greenkpi.dashboard.carbon.tiles import Tile
from greenkpi.inventory.models import Site
from greenkpi.inventory.services import site_create, token_create
from greenkpi.kpis import daily, services
from greenkpi.kpis.labels import csv_header
from greenkpi.lib.periods import BadPeriod, Period, month_period, previous_period

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
MARCH = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
FEB = datetime(2026, 2, 15, 10, 0, tzinfo=UTC)
MARCH_RANGE = "from=2026-03-01&to=2026-03-31"

EMBODIED_GPU_180S = 150 * 180 / (4 * 31_557_600)  # 0.000213894 kg
HOST_180S = 2899.125 * 180 / (4 * 31_557_600)  # a host whose GPUs report 180 s: 0.00413405 kg
FR = 17212.96 / 514.11  # g/kWh, direct
VISION = {
    "energy_kwh": 0.02,
    "facility_energy_kwh": 0.026,
    "operational_location_kgco2e": 0.026 * FR / 1000,
    "operational_market_kgco2e": 0.00026,
    "embodied_kgco2e": 2 * EMBODIED_GPU_180S + HOST_180S,
    "renewable_share": 0.2629,
    "cost": 0.0052,
    "allocated_gpu_h": 0.1,
    "idle_gpu_h": 30 / 3600,
    "idle_kgco2e": 0.02 * 5 / 60 * 1.3 * FR / 1000,
}
NLP = {
    "energy_kwh": 0.03,
    "facility_energy_kwh": 0.039,
    "operational_location_kgco2e": 0.039 * FR / 1000,
    "operational_market_kgco2e": 0.00039,
    "embodied_kgco2e": EMBODIED_GPU_180S + HOST_180S,
    "renewable_share": 0.2629,
    "cost": 0.0078,
    "allocated_gpu_h": 0.05,
    "idle_gpu_h": 15 / 3600,
    "idle_kgco2e": 0.0025 * 1.3 * FR / 1000,
}


def approx(value: float):
    return pytest.approx(value, rel=1e-4)


def csv_rows(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.content.decode())))


@pytest.fixture(autouse=True)
def _own_cache(settings):
    """The report caches hours per host by its windows' state; with time pinned and ids reused
    between tests that state repeats, so each test gets an empty cache of its own."""
    import uuid

    settings.CACHES = {
        **settings.CACHES,  # the read layer's own alias stays (kpis/read/cache.py)
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"carbon-{uuid.uuid4()}",
        },
    }


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield NOW


def recompute(org, start: datetime) -> None:
    windows = services.backfill_windows(start=start, end=NOW, organisation_ids=[org.pk])
    services.windows_recompute(windows=windows, kind="backfill")


def refresh_days(when: datetime = NOW + timedelta(minutes=5)) -> None:
    """The beat's daily refresh, a while after the recomputes (the clock is frozen: a refresh at
    the recomputes' own instant would count as racing them and leave the days stale)."""
    with time_machine.travel(when, tick=False):
        daily.days_refresh_stale(limit=10_000)


def send(post_batch, make_batch, secret, *, site: str = "paris-dc", **kwargs) -> None:
    body = make_batch(**kwargs)
    body["host"]["site"] = site
    response = post_batch(secret, body)
    assert response.status_code == 201, response.content


@pytest.fixture
def carbon(frozen, acme, globex, people, make_batch, post_batch):
    """The story of the module docstring; returns the organisation."""
    since = datetime(2026, 1, 1, tzinfo=UTC)
    MarketFactor.objects.create(site=acme.paris, valid_from=since, intensity_g_per_kwh=10.0)
    ElectricityTariff.objects.create(
        site=acme.paris, valid_from=since, price_per_kwh=0.20, currency="EUR"
    )
    _, vision = token_create(organisation=acme, name="vision", default_team=acme.vision)
    _, nlp = token_create(organisation=acme, name="nlp", default_team=acme.nlp)
    send(post_batch, make_batch, vision, hostname="vision-1", devices=2, windows=3, start=MARCH)
    send(
        post_batch,
        make_batch,
        vision,
        hostname="vision-1",
        devices=2,
        windows=3,
        start=FEB,
        energy_j=6000.0,
    )
    send(
        post_batch,
        make_batch,
        nlp,
        hostname="nlp-1",
        devices=1,
        windows=3,
        start=MARCH,
        energy_j=36000.0,
    )
    recompute(acme, FEB - timedelta(days=1))
    return acme


def tiles(response) -> dict[str, Tile]:
    return {tile.key: tile for tile in response.context["summary"].tiles}


# --- numbers ---------------------------------------------------------------------------------


def test_the_tiles_give_the_hand_worked_march_figures_and_month_over_month(client, carbon, people):
    client.force_login(people["alice"])
    response = client.get(f"/carbon/?{MARCH_RANGE}")
    assert response.status_code == 200
    t = tiles(response)
    assert t["energy"].value == approx(0.05)
    assert t["facility"].value == approx(0.065)
    assert t["location"].value == approx(0.065 * FR / 1000)
    assert t["market"].value == approx(0.00065)
    assert t["embodied"].value == approx(3 * EMBODIED_GPU_180S + 2 * HOST_180S)
    embodied = 3 * EMBODIED_GPU_180S + 2 * HOST_180S  # in %: the hosts' shares dominate
    assert t["embodied_share"].value == approx(100 * embodied / (0.065 * FR / 1000 + embodied))
    assert t["renewable"].value == approx(26.29)
    # February is the previous period: a whole month compared with the month before it.
    summary = response.context["summary"]
    assert (summary.previous.start, summary.previous.end) == (
        datetime(2026, 2, 1, tzinfo=UTC),
        datetime(2026, 3, 1, tzinfo=UTC),
    )
    assert t["location"].previous == approx(0.013 * FR / 1000)
    assert t["location"].change_pct == approx(400.0)
    assert t["energy"].change_pct == approx(400.0)  # 0.05 vs 0.01
    assert t["renewable"].change_pct == approx(0.0)  # a share changes in points: 26.29 both
    assert t["renewable"].change_unit == "pp"
    [eur] = summary.cost
    assert (eur.unit, eur.value, eur.previous) == ("EUR", approx(0.013), approx(0.0026))
    assert summary.sources == {"annual": 1.0}
    assert summary.methodology_versions == [METHODOLOGY_VERSION]
    assert not summary.scoped
    body = response.content.decode()
    assert "annual average (flat) 100 %" in body and METHODOLOGY_VERSION in body
    assert 'data-testid="scoped-note"' not in body
    assert 'data-testid="change-location">+400.0 % vs previous' in body


def test_the_team_table_and_its_csv_hold_each_teams_hand_worked_figures(client, carbon, people):
    client.force_login(people["alice"])
    shown = client.get(f"/carbon/?{MARCH_RANGE}")
    assert [row["team"] for row in shown.context["rows"]] == ["NLP", "Vision"]  # largest CO2e first
    response = client.get(f"/carbon/teams.csv?{MARCH_RANGE}")
    assert response["Content-Type"].startswith("text/csv")
    rows = {row["team"]: row for row in csv_rows(response)}
    assert set(rows) == {"Vision", "NLP"}
    for team, expected in (("Vision", VISION), ("NLP", NLP)):
        for column, value in expected.items():
            # carbon quantities under their page names: "Scope 2 location-based (kgCO2e)"
            assert float(rows[team][csv_header(column)]) == approx(value), (team, column)
        assert rows[team]["currency"] == "EUR"
        assert float(rows[team]["pue_used"]) == approx(1.3)
        assert float(rows[team]["avg_gpu_utilization"]) == approx(0.75)
        assert float(rows[team]["annual_intensity_share"]) == approx(1.0)
        assert float(rows[team]["estimated_share"]) == 0.0  # counters, nothing estimated


def test_the_co2e_chart_stacks_teams_per_day_side_by_side_and_says_what_it_rests_on(
    client, carbon, people
):
    client.force_login(people["alice"])
    rows = csv_rows(client.get(f"/carbon/co2e-by-team.csv?{MARCH_RANGE}"))
    assert [(r["period_utc"], r["team"]) for r in rows] == [
        ("2026-03-02T00:00:00Z", "NLP"),
        ("2026-03-02T00:00:00Z", "Vision"),
    ]
    assert float(rows[1]["Scope 2 location-based (kgCO2e)"]) == approx(0.026 * FR / 1000)
    assert float(rows[1]["Scope 2 market-based (kgCO2e)"]) == approx(0.00026)
    figure = orjson.loads(client.get(f"/carbon/co2e-by-team.json?{MARCH_RANGE}").content)
    assert [(t["name"], t["xaxis"]) for t in figure["data"]] == [
        ("NLP", "x"),
        ("NLP", "x2"),
        ("Vision", "x"),
        ("Vision", "x2"),
    ]
    layout = figure["layout"]
    assert layout["barmode"] == "stack"
    assert layout["yaxis"]["title"]["text"] == "CO2e, Scope 2 (kgCO2e)"
    assert layout["xaxis"]["title"]["text"].endswith("Scope 2 location-based")
    assert layout["xaxis2"]["title"]["text"].endswith("Scope 2 market-based")
    assert "location-based" in layout["xaxis"]["title"]["text"]
    assert "market-based" in layout["xaxis2"]["title"]["text"]
    caption = layout["annotations"][0]["text"]
    assert "annual average (flat) 100 %" in caption and METHODOLOGY_VERSION in caption


def test_a_long_range_is_drawn_per_month(client, carbon, people):
    client.force_login(people["alice"])
    rows = csv_rows(client.get("/carbon/co2e-by-team.csv?from=2025-12-01&to=2026-03-31"))
    assert {r["period_utc"] for r in rows} == {"2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"}


def test_a_team_member_sees_their_teams_sum_and_is_told_so(client, carbon, people):
    client.force_login(people["victor"])
    response = client.get(f"/carbon/?{MARCH_RANGE}")
    t = tiles(response)
    assert t["location"].value == approx(0.026 * FR / 1000)
    assert t["location"].change_pct == approx(100.0)  # vs 0.00053872 in February
    assert response.context["summary"].scoped
    assert 'data-testid="scoped-note"' in response.content.decode()
    assert {r["team"] for r in csv_rows(client.get(f"/carbon/teams.csv?{MARCH_RANGE}"))} == {
        "Vision"
    }
    assert client.get(f"/carbon/?{MARCH_RANGE}&team=nlp").status_code == 404


def test_an_organisation_without_a_tariff_says_no_tariff(client, carbon, people):
    client.force_login(people["gary"])
    response = client.get("/carbon/")
    assert response.status_code == 200
    assert 'data-testid="tile-cost">no tariff' in response.content.decode()


# --- the monthly report ----------------------------------------------------------------------


def test_the_report_has_each_team_and_the_organisation_total(client, carbon, people):
    client.force_login(people["alice"])
    response = client.get("/reports/?month=2026-03")
    assert response.status_code == 200
    report = response.context["report"]
    total = report.total
    assert total["team"] == "Organisation total"
    assert total["energy_kwh"] == approx(0.05)
    assert total["operational_location_kgco2e"] == approx(0.065 * FR / 1000)
    assert total["operational_market_kgco2e"] == approx(0.00065)
    assert total["total_kgco2e"] == approx(
        0.065 * FR / 1000 + 3 * EMBODIED_GPU_180S + 2 * HOST_180S
    )
    assert total["cost"] == approx(0.013) and total["currency"] == "EUR"
    assert total["idle_kgco2e"] == approx(VISION["idle_kgco2e"] + NLP["idle_kgco2e"])
    assert total["pue_used"] == approx(1.3)
    assert [r["team"] for r in report.team_rows] == ["NLP", "Vision"]
    # March up to 2026-03-10 12:00: 9.5 days = 228 hours; each host reported in one of them.
    assert report.hours_in_month == 228
    assert {(h.hostname, h.hours_with_data) for h in report.completeness} == {
        ("vision-1", 1),
        ("nlp-1", 1),
    }
    assert "from=2026-03-01&amp;to=2026-03-31" in response.content.decode()  # the carbon page
    [paris] = report.provenance
    assert (paris.site, paris.zone, paris.sources_used) == ("paris-dc", "FR", ["annual"])
    assert "CC BY 4.0" in paris.annual and "41.44" in paris.annual


def test_the_report_csv_writes_the_team_rows_then_the_total(client, carbon, people):
    client.force_login(people["alice"])
    response = client.get("/reports/report.csv?month=2026-03")
    assert "esg-report-acme-2026-03.csv" in response["Content-Disposition"]
    rows = csv_rows(response)
    assert [(r["row"], r["team"]) for r in rows] == [
        ("team", "NLP"),
        ("team", "Vision"),
        ("total", "Organisation total"),
    ]
    assert all(r["month"] == "2026-03" for r in rows)
    assert all(r["methodology_versions"] == METHODOLOGY_VERSION for r in rows)
    embodied = 3 * EMBODIED_GPU_180S + 2 * HOST_180S
    assert float(rows[2]["embodied_share"]) == approx(embodied / (0.065 * FR / 1000 + embodied))
    assert float(rows[2]["facility_energy_kwh"]) == approx(0.065)
    for column, value in NLP.items():
        assert float(rows[0][csv_header(column)]) == approx(value), column


def test_the_report_defaults_to_the_last_full_month(client, carbon, people):
    client.force_login(people["victor"])
    response = client.get("/reports/")
    report = response.context["report"]
    assert report.month.start == datetime(2026, 2, 1, tzinfo=UTC)
    assert report.hours_in_month == 28 * 24
    assert report.total["team"] == "Total of your teams"
    assert report.total["energy_kwh"] == approx(0.01)
    assert 'data-testid="scoped-note"' in response.content.decode()


@pytest.mark.parametrize("month", ["2026-13", "march", "2026-3", "2026-03-01", "2027-01"])
def test_a_bad_month_is_a_400_that_says_why(client, carbon, people, month):
    client.force_login(people["alice"])
    for url in ("/reports/", "/reports/report.csv", "/reports/print/"):
        response = client.get(url, {"month": month})
        assert response.status_code == 400, (url, month)
        assert b"month" in response.content


@pytest.mark.parametrize(
    "query", ["range=1y", "from=2026-02-30", "from=2026-03-10&to=2026-03-01", "from=2020-01-01"]
)
def test_a_bad_range_on_the_carbon_pages_is_a_400(client, carbon, people, query):
    client.force_login(people["alice"])
    for url in ("/carbon/", "/carbon/co2e-by-team.json", "/carbon/teams.csv", "/carbon/grid/"):
        assert client.get(f"{url}?{query}").status_code == 400, (url, query)


def test_the_printable_report_has_no_navigation_and_leaves_sign_off_blank(client, carbon, people):
    client.force_login(people["alice"])
    response = client.get("/reports/print/?month=2026-03")
    body = response.content.decode()
    assert response.status_code == 200
    assert "<nav" not in body and "Log out" not in body
    assert "report-print.css" in body
    assert 'data-testid="generated-at">2026-03-10 12:00 UTC' in body
    assert "Ember" in body and "CC BY 4.0" in body
    assert body.count("<td></td>") == 5  # prepared, reviewed, approved, date, signature
    assert "Organisation total" in body


# --- who sees what ---------------------------------------------------------------------------

URLS = (
    "/carbon/",
    "/carbon/co2e-by-team.json",
    "/carbon/co2e-by-team.csv",
    "/carbon/teams.csv",
    "/carbon/grid/",
    "/carbon/grid/runs.csv",
    "/reports/",
    "/reports/report.csv",
    "/reports/print/",
)
TEAMS_SEEN = {"alice": {"Vision", "NLP"}, "victor": {"Vision"}, "nina": {"NLP"}, "gary": set()}
HOME = {"alice": "acme", "victor": "acme", "nina": "acme", "gary": "globex"}


@pytest.mark.parametrize("who", ["alice", "victor", "nina", "gary"])
def test_each_person_opens_every_carbon_page_and_sees_only_their_teams(client, carbon, people, who):
    client.force_login(people[who])
    for url in URLS:
        assert client.get(url, {"month": "2026-03"}).status_code == 200, url
        other = "globex" if HOME[who] == "acme" else "acme"
        assert client.get(url, {"org": other}).status_code == 404, url
    seen = {r["team"] for r in csv_rows(client.get(f"/carbon/teams.csv?{MARCH_RANGE}"))}
    assert seen == TEAMS_SEEN[who]
    chart = {r["team"] for r in csv_rows(client.get(f"/carbon/co2e-by-team.csv?{MARCH_RANGE}"))}
    assert chart == TEAMS_SEEN[who]
    report = csv_rows(client.get("/reports/report.csv?month=2026-03"))
    assert {r["team"] for r in report if r["row"] == "team"} == TEAMS_SEEN[who]
    if report:
        total = next(r for r in report if r["row"] == "total")
        teams = [r for r in report if r["row"] == "team"]
        assert float(total["energy_kwh"]) == approx(sum(float(r["energy_kwh"]) for r in teams))


def test_a_site_chart_of_another_organisation_is_not_found(client, carbon, people):
    client.force_login(people["gary"])
    assert client.get(f"/carbon/grid/sites/{carbon.paris.pk}.json").status_code == 404
    client.force_login(people["victor"])
    assert client.get(f"/carbon/grid/sites/{carbon.paris.pk}.csv").status_code == 200


def test_anonymous_users_are_sent_to_log_in(client, carbon):
    for url in URLS:
        assert client.get(url).status_code == 302, url


def test_pages_cost_a_bounded_number_of_queries(
    client, carbon, people, django_assert_max_num_queries
):
    from django.db import connection

    refresh_days()
    # A rollup read: stale days (daily windows, hourly windows), the daily rows, and the partial
    # day's hourly rows (on PostgreSQL inside a savepoint with SET LOCAL work_mem: 3 more).
    read = 7 if connection.vendor == "postgresql" else 4
    client.force_login(people["alice"])
    # session, user, scope x2, two periods; + what produced the figures: the sites, their
    # instruments, residual mixes (carbon/selectors.figure_methods)
    with django_assert_max_num_queries(4 + 2 * read + 3):
        client.get(f"/carbon/?{MARCH_RANGE}")
    with django_assert_max_num_queries(4 + read):
        client.get(f"/carbon/co2e-by-team.json?{MARCH_RANGE}")
    # + completeness x3, provenance x2, the sites and their instruments and residual mixes x3,
    # the instruments with their volumes and the sites' hourly kWh they are applied to (contracted
    # vs applied; on PostgreSQL the read's savepoint and SET LOCAL: 3 more)
    hourly = 4 if connection.vendor == "postgresql" else 1
    with django_assert_max_num_queries(4 + read + 5 + 3 + 1 + hourly):
        client.get("/reports/?month=2026-03")
    with django_assert_max_num_queries(4 + 4):  # + sites, hourly profile, runs, run energy
        client.get("/carbon/grid/")


def hourly_sql(queries) -> str:
    return " ".join(q["sql"] for q in queries.captured_queries if "kpis_hourlyrollup" in q["sql"])


def test_whole_days_are_read_from_the_daily_table_and_a_stale_day_from_its_hours(
    client, carbon, people, make_batch, post_batch
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    refresh_days()
    client.force_login(people["alice"])
    url = f"/carbon/teams.csv?{MARCH_RANGE}"
    with CaptureQueriesContext(connection) as queries:
        first = {r["team"]: float(r["energy_kwh"]) for r in csv_rows(client.get(url))}
    assert first == {"NLP": approx(0.03), "Vision": approx(0.02)}
    # March 1-9 are whole days (daily table); March 10 up to now is partial and read hourly.
    assert "kpis_dailyteamrollup" in " ".join(q["sql"] for q in queries.captured_queries)
    assert "2026-03-02" not in hourly_sql(queries)

    # Late data for 2026-03-02 recomputes that day's window after the day's refresh: the day is
    # stale, read from its hours at once (not when the beat next refreshes it).
    _, secret = token_create(organisation=carbon, name="late", default_team=carbon.nlp)
    late = MARCH + timedelta(minutes=30)
    send(post_batch, make_batch, secret, hostname="nlp-1", devices=1, windows=1, start=late)
    with time_machine.travel(NOW + timedelta(minutes=10), tick=False):
        recompute(carbon, MARCH)
    expected = {"NLP": approx(0.03 + 12000 / 3.6e6), "Vision": approx(0.02)}
    with CaptureQueriesContext(connection) as queries:
        after = {r["team"]: float(r["energy_kwh"]) for r in csv_rows(client.get(url))}
    assert after == expected
    assert "2026-03-02" in hourly_sql(queries)
    refresh_days(NOW + timedelta(minutes=20))
    with CaptureQueriesContext(connection) as queries:
        refreshed = {r["team"]: float(r["energy_kwh"]) for r in csv_rows(client.get(url))}
    assert refreshed == expected
    assert "2026-03-02" not in hourly_sql(queries)


def test_a_refreshed_months_report_sums_no_hourly_rows(client, carbon, people):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    refresh_days()
    client.force_login(people["alice"])
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/reports/report.csv?month=2026-02")
    sums = [q["sql"] for q in queries.captured_queries if "SUM(" in q["sql"]]
    assert sums and not [sql for sql in sums if "kpis_hourlyrollup" in sql]  # daily rows only
    assert float(csv_rows(response)[-1]["energy_kwh"]) == approx(0.01)


# --- grid insights ---------------------------------------------------------------------------


@pytest.fixture
def grid(frozen, acme, people, make_batch, post_batch):
    """FR hourly data for 2026-03-02: 30, 40, 50 g/kWh at 03, 04, 05 UTC, 100 otherwise; site
    oslo-dc (NO, PUE 1.1) has no hourly data (annual 28.11 g/kWh, flat). vision's training run
    resnet/r1 used 2 x 3 x 12,000 J = 0.02 kWh at paris-dc, 2026-03-02 10:00.

    By hand: as run 0.02 x 1.3 x 100 / 1000 = 0.0026 kg; at 03:00 in Paris 0.02 x 1.3 x 30 / 1000
    = 0.00078 kg (saving 0.00182); at oslo-dc 0.02 x 1.1 x 28.11 / 1000 = 0.00061842 kg, the
    cleanest option (saving 0.00198158)."""
    from greenkpi.workloads.services import model_register, run_open

    day = datetime(2026, 3, 2, tzinfo=UTC)
    special = {3: 30.0, 4: 40.0, 5: 50.0}
    GridIntensityHourly.objects.bulk_create(
        GridIntensityHourly(
            zone="FR",
            hour=day + timedelta(hours=h),
            intensity_lifecycle_g_per_kwh=special.get(h, 100.0),
            source="Electricity Maps test export",
        )
        for h in range(24)
    )
    site_create(organisation=acme, name="oslo-dc", grid_zone="NO", pue=1.1)
    model, _ = model_register(team=acme.vision, key="resnet")
    run_open(model=model, key="r1", kind="training", started_at=MARCH)
    _, secret = token_create(organisation=acme, name="vision", default_team=acme.vision)
    shares = [
        {
            "energy_j": 12000.0,
            "method": "utilization",
            "team": "vision",
            "model": "resnet",
            "run": "r1",
        }
    ]
    send(
        post_batch,
        make_batch,
        secret,
        hostname="vision-1",
        devices=2,
        windows=3,
        start=MARCH,
        shares=shares,
    )
    recompute(acme, MARCH - timedelta(hours=1))
    return acme


def test_grid_insights_show_each_sites_best_hours_and_flag_the_annual_fallback(
    client, grid, people
):
    client.force_login(people["alice"])
    response = client.get("/carbon/grid/")
    profiles = {p.site.name: p for p in response.context["profiles"]}
    assert profiles["paris-dc"].hourly and profiles["paris-dc"].best_hours == [3, 4, 5]
    assert not profiles["oslo-dc"].hourly and profiles["oslo-dc"].best_hours == []
    assert "annual average: flat, no hours" in response.content.decode()
    paris = csv_rows(client.get(f"/carbon/grid/sites/{grid.paris.pk}.csv"))
    assert len(paris) == 24
    assert [(r["hour_utc"], r["mean_g_per_kwh"], r["best"]) for r in paris[3:6]] == [
        ("3", "30", "True"),
        ("4", "40", "True"),
        ("5", "50", "True"),
    ]
    oslo = Site.objects.get(name="oslo-dc")
    flat = csv_rows(client.get(f"/carbon/grid/sites/{oslo.pk}.csv"))
    assert {(r["mean_g_per_kwh"], r["source"], r["best"]) for r in flat} == {
        ("28.11", "annual (flat)", "False")
    }
    figure = orjson.loads(client.get(f"/carbon/grid/sites/{grid.paris.pk}.json").content)
    assert figure["layout"]["yaxis"]["title"]["text"] == "Grid intensity (gCO2e/kWh)"


def test_shifting_the_training_run_saves_the_hand_worked_carbon(client, grid, people):
    client.force_login(people["victor"])
    savings = client.get("/carbon/grid/").context["savings"]
    assert savings.flexible_energy_kwh == approx(0.02)
    assert savings.current_kgco2e == approx(0.0026)
    assert savings.saving_time_kgco2e == approx(0.00182)
    assert savings.saving_anywhere_kgco2e == approx(0.00198158)
    assert savings.saving_time_pct == approx(70.0)  # 0.00182 / 0.0026
    [run] = csv_rows(client.get("/carbon/grid/runs.csv"))
    assert (run["model"], run["run"], run["site"], run["start_hour_utc"]) == (
        "resnet",
        "r1",
        "paris-dc",
        "10",
    )
    assert (run["best_hour_here_utc"], run["best_site"]) == ("3", "oslo-dc")
    # nina's team has no training run: nothing flexible, and the page says how to get there.
    client.force_login(people["nina"])
    savings = client.get("/carbon/grid/").context["savings"]
    assert savings.runs == [] and savings.notes


def test_the_carbon_page_says_when_hourly_intensity_was_used(client, grid, people):
    client.force_login(people["alice"])
    response = client.get(f"/carbon/?{MARCH_RANGE}")
    assert response.context["summary"].sources == {"hourly": 1.0}
    # 0.026 kWh facility x 100 g/kWh (the measured hour) / 1000
    assert tiles(response)["location"].value == approx(0.0026)


# --- periods (no database) -------------------------------------------------------------------


def _period(start: datetime, end: datetime, preset: str = "") -> Period:
    return Period(start=start, end=end, preset=preset)


def test_a_whole_month_is_compared_with_the_previous_calendar_month():
    march = _period(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
    before = previous_period(march)
    assert (before.start, before.end) == (march.start.replace(month=2), march.start)
    january = _period(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    assert previous_period(january).start == datetime(2025, 12, 1, tzinfo=UTC)


def test_other_ranges_are_compared_with_the_equal_length_before():
    week = _period(NOW - timedelta(days=7), NOW, "7d")
    before = previous_period(week)
    assert (before.start, before.end) == (NOW - timedelta(days=14), NOW - timedelta(days=7))


def test_month_parameters():
    assert month_period("2026-02", now=NOW).end == datetime(2026, 3, 1, tzinfo=UTC)
    assert month_period("2025-12", now=NOW).end == datetime(2026, 1, 1, tzinfo=UTC)
    assert month_period(None, now=NOW).start == datetime(2026, 2, 1, tzinfo=UTC)
    for bad in ("2026-1", "26-01", "2026-00", "x", "2026-04"):
        with pytest.raises(BadPeriod):
            month_period(bad, now=NOW)


def mixed_hours(grid, make_batch, post_batch) -> None:
    """Two hours of different intensity, renewable share and idle time, on two sites."""
    GridIntensityHourly.objects.filter(zone="FR", hour__hour=3).update(renewable_share=0.5)
    _, secret = token_create(organisation=grid, name="more", default_team=grid.nlp)
    early = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    body = make_batch(hostname="nlp-2", devices=2, windows=4, start=early, energy_j=24000.0)
    for sample in body["samples"]:
        sample["idle_s"] = 30.0
    body["host"]["site"] = "paris-dc"
    assert post_batch(secret, body).status_code == 201
    send(post_batch, make_batch, secret, site="oslo-dc", hostname="nlp-3", devices=1, start=early)
    send(post_batch, make_batch, secret, hostname="nlp-2", devices=2, start=MARCH)  # idle 5 s
    recompute(grid, early - timedelta(hours=1))


def test_the_daily_rows_sum_to_what_the_hourly_rows_sum_to(grid, make_batch, post_batch):
    """The carbon frame of whole days from DailyTeamRollup equals the same days summed from
    HourlyRollup, column by column (sources, idle CO2e, renewable kWh, versions included)."""
    from greenkpi.dashboard.carbon import days

    mixed_hours(grid, make_batch, post_batch)
    refresh_days()
    first, end = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 10, tzinfo=UTC)
    from greenkpi.kpis.models import DailyWindow
    from greenkpi.kpis.read import freshness

    stale = freshness.stale_days(organisation_id=grid.pk, first=first.date(), end=end.date())
    assert not stale  # so the read layer takes DailyTeamRollup
    keys = list(days.KEYS)
    from_days = days.org_frame(grid.pk, first, end)
    DailyWindow.objects.filter(organisation_id=grid.pk).delete()  # never refreshed: the hours
    from_hours = days.org_frame(grid.pk, first, end)
    assert len(from_days) == len(from_hours) >= 3  # two sites, two teams, two currencies
    a = from_days.sort_values(keys).reset_index(drop=True)
    b = from_hours.sort_values(keys).reset_index(drop=True)
    assert a[keys].astype(str).equals(b[keys].astype(str))
    assert a["methodology_version"].tolist() == b["methodology_version"].tolist()
    assert a["methodology_version_max"].tolist() == b["methodology_version_max"].tolist()
    for column in [*days.SUMMED, "cost"]:
        assert a[column].tolist() == pytest.approx(b[column].tolist(), rel=1e-12, nan_ok=True), (
            column
        )
    assert a["facility_kwh_hourly_intensity"].sum() > 0  # FR had an hourly series that day
    assert a["facility_kwh_annual_intensity"].sum() > 0  # oslo-dc has none: annual
    assert a["idle_location_kgco2e"].sum() > 0


@pytest.mark.parametrize("refreshed", [False, True], ids=["hourly", "daily"])
def test_the_summed_frame_gives_what_the_formulas_give_on_the_hourly_rows(
    grid, make_batch, post_batch, refreshed
):
    """Summing (in the database, or in the daily table once the days are refreshed) must not
    change any figure: compared with the formulas over raw hourly rows."""
    from greenkpi.inventory.access import scope_for
    from greenkpi.kpis import formulas
    from greenkpi.kpis.selectors import rollup_frame

    mixed_hours(grid, make_batch, post_batch)
    if refreshed:
        refresh_days()

    from django.contrib.auth import get_user_model

    scope = scope_for(get_user_model().objects.get(username="alice"), "acme")
    start, end = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC)
    summed = sc.kpi_table(sc.carbon_frame(scope, start, end), ["team_id"]).set_index("team_id")
    # The pages' tables and tiles read the range without days (one group per team, site and
    # currency): the same figures.
    whole = sc.carbon_frame(scope, start, end, by_day=False)
    assert whole["day"].isna().all() and len(whole) <= len(sc.carbon_frame(scope, start, end))
    undated = sc.kpi_table(whole, ["team_id"]).set_index("team_id")
    hourly = rollup_frame(organisation_id=grid.pk, start=start, end=end)
    assert len(hourly) > len(sc.carbon_frame(scope, start, end))  # it did sum something
    by = ["team_id"]
    expected = (
        formulas.energy(hourly, by)
        .merge(formulas.co2e(hourly, by), on=by)
        .merge(formulas.renewable_share(hourly, by)[[*by, "renewable_share"]], on=by)
        .merge(formulas.idle_waste(hourly, by)[[*by, "idle_kgco2e", "idle_gpu_h"]], on=by)
        .merge(formulas.gpu_utilization(hourly, by)[[*by, "avg_gpu_utilization"]], on=by)
        .set_index("team_id")
    )
    for column in expected.columns:
        for team_id in expected.index:
            for table in (summed, undated):
                assert table.loc[team_id, column] == pytest.approx(
                    expected.loc[team_id, column], rel=1e-9, nan_ok=True
                ), (team_id, column)
    assert expected.loc[grid.nlp.pk, "renewable_share"] != pytest.approx(0.2629)  # mixed shares


# --- in a real browser -----------------------------------------------------------------------

from dashboard.test_browser import (  # noqa: E402  (fixtures and helpers shared with that module)
    browser,  # noqa: F401
    chart_traces,
    log_in,
    page,  # noqa: F401
    shoot,
)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_carbon_page_draws_its_chart_and_its_csv_downloads(
    page,  # noqa: F811
    live_server,
    acme,
    people,
    make_batch,
    post_batch,
    tmp_path,
):
    _, vision = token_create(organisation=acme, name="vision", default_team=acme.vision)
    _, nlp = token_create(organisation=acme, name="nlp", default_team=acme.nlp)
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    send(post_batch, make_batch, vision, hostname="vision-1", devices=2, windows=3, start=start)
    send(post_batch, make_batch, nlp, hostname="nlp-1", devices=1, windows=3, start=start)
    windows = services.backfill_windows(
        start=start - timedelta(hours=1), end=datetime.now(UTC), organisation_ids=[acme.pk]
    )
    services.windows_recompute(windows=windows, kind="backfill")

    log_in(page, live_server, "alice", people["password"])
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Carbon").click()
    page.wait_for_url("**/carbon/**")
    traces = chart_traces(page, "co2e-by-team")
    assert sorted(traces) == ["NLP", "NLP", "Vision", "Vision"]  # location and market panels
    assert page.locator("#co2e-by-team .ytitle").text_content() == "CO2e, Scope 2 (kgCO2e)"
    assert page.locator("[data-testid=tile-location]").inner_text() not in ("", "\u2013")
    assert page.locator("[data-testid=team-table] tbody tr").count() == 2
    shoot(page, "carbon")

    with page.expect_download() as download_info:
        page.locator("section:has(#co2e-by-team) a.csv").click()
    target = tmp_path / "co2e.csv"
    download_info.value.save_as(target)
    lines = target.read_text().splitlines()
    assert lines[0] == ",".join(csv_header(c) for c in sc.SERIES_COLUMNS)
    assert len(lines) == 1 + 2  # today, one row per team

    page.get_by_role("link", name="Grid insights: cleanest hours and sites").click()
    assert chart_traces(page, f"grid-site-{acme.paris.pk}") == ["Mean intensity"]
    shoot(page, "carbon-grid")
    page.goto(f"{live_server.url}/reports/print/?month={start:%Y-%m}")
    assert page.locator("nav").count() == 0
    assert page.locator("[data-testid=report-table] tbody tr").count() == 3  # 2 teams + total
    shoot(page, "report-print")
