"""Issue 14 items 2, 3 and 8 end to end: samples through the real API and rollup, then the ESRS E1
export, the monthly report and the carbon page read the same sums (kpis.read).

Hand-worked (Paris, owned, FR, PUE 1.3; tests/carbon/test_reporting_factors.py for the factors):
two GPUs x 3 windows x 12,000 J = 72,000 J = 0.02 kWh IT -> 0.026 kWh facility.
  Scope 2 location-based: 0.026 x 33.4811 g = 0.870509 g
  Scope 2 market-based, 60 % PPA at 0 g + residual 50 g: 0.026 x 20 g = 0.52 g
  Scope 3 cat. 3: 0.026 x 34.2379 g = 0.890185 g
  E1-5: 0.026 kWh = 2.6e-5 MWh; nuclear 0.026 x 335.65 / 514.11; renewable 0.026 x 0.2629
A second host at a cloud site (Frankfurt, DE, PUE 1.1) lands wholly in Scope 3 cat. 1.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest

from greenkpi.carbon.models import MarketFactor, ResidualMix
from greenkpi.dashboard.carbon import selectors as carbon_selectors
from greenkpi.dashboard.carbon import tiles as carbon_tiles
from greenkpi.dashboard.reports import selectors as report_selectors
from greenkpi.inventory.access import scope_for
from greenkpi.inventory.models import Boundary
from greenkpi.inventory.services import site_create
from greenkpi.kpis import reporting, services
from greenkpi.kpis.models import HourlyRollup
from greenkpi.lib.periods import Period

FR_DIRECT = 17212.96 / 514.11
FR_LIFECYCLE = 32576.97 / 514.11
FR_UPSTREAM = (FR_LIFECYCLE - FR_DIRECT) + 0.0687 * FR_LIFECYCLE


@pytest.fixture
def year_of_two_sites(acme, acme_token, ingest, hour):
    _, secret = acme_token
    cloud = site_create(organisation=acme, name="aws-frankfurt", grid_zone="DE", pue=1.1)
    cloud.boundary = Boundary.CLOUD
    cloud.save()
    MarketFactor.objects.create(
        site=acme.paris,
        kind="ppa",
        valid_from=hour - timedelta(days=400),
        intensity_g_per_kwh=0.0,
        share=0.6,
        volume_mwh=1000.0,  # a year: 0.114 MWh an hour, never binding on 0.026 kWh
    )
    ResidualMix.objects.create(
        zone="FR", year=hour.year, intensity_g_per_kwh=50.0, source="test residual", licence="x"
    )
    ingest(secret, site="paris-dc", start=hour + timedelta(minutes=10))
    ingest(secret, site="aws-frankfurt", hostname="cloud-1", start=hour + timedelta(minutes=10))
    result = services.window_recompute(organisation_id=acme.pk, hour=hour)
    assert result.status == "done"
    return cloud


def figures(report):
    return {f["datapoint"]: f for f in report["figures"]}


def test_the_esrs_export_has_the_hand_worked_figures_and_a_cloud_site_in_cat_1(
    acme, year_of_two_sites, hour
):
    report = reporting.esrs_e1(acme, hour.year)
    f = figures(report)
    assert report["year"] == hour.year and "2023/2772" in report["esrs_version"]
    assert report["methodology_versions_used"] == [report["methodology_version"]]
    assert f["Total energy consumption"]["value"] == pytest.approx(2.6e-5)  # MWh, Paris only
    assert f["from nuclear sources"]["value"] == pytest.approx(2.6e-5 * 335.65 / 514.11)
    assert f["from renewable sources"]["value"] == pytest.approx(2.6e-5 * 0.2629)
    fossil = 2.6e-5 * (1 - 0.2629 - 335.65 / 514.11)
    assert f["from fossil sources"]["value"] == pytest.approx(fossil)
    assert f["Renewable share"]["value"] == pytest.approx(0.2629)
    assert f["Total energy consumption"]["estimated_share"] == 0.0  # NVML counters: measured
    scope2 = f["Gross Scope 2 location-based"]
    assert scope2["value"] == pytest.approx(0.026 * FR_DIRECT / 1e6)  # tCO2e
    assert "direct, derived from the zone's generation mix: 100.0%" in scope2["method"]
    market = f["Gross Scope 2 market-based"]
    assert market["value"] == pytest.approx(0.026 * 20.0 / 1e6)
    assert "contractual instruments + residual mix: 100.0%" in market["method"]
    cat3 = f["Scope 3 cat. 3 fuel- and energy-related activities"]
    assert cat3["value"] == pytest.approx(0.026 * FR_UPSTREAM / 1e6)

    # the cloud host's whole footprint is cat. 1, and nothing of it is in Scope 2 or E1-5
    cloud_rows = HourlyRollup.objects.filter(site=year_of_two_sites)
    assert cloud_rows.count() == 2
    cloud_kg = sum(
        r.operational_location_kgco2e + r.upstream_kgco2e + r.embodied_kgco2e for r in cloud_rows
    )
    cat1 = f["Scope 3 cat. 1 purchased services (cloud sites)"]
    assert cat1["value"] == pytest.approx(cloud_kg / 1000) and cloud_kg > 0
    paris_embodied = sum(r.embodied_kgco2e for r in HourlyRollup.objects.filter(site=acme.paris))
    cat2 = f["Scope 3 cat. 2 capital goods (embodied, amortised)"]
    assert cat2["value"] == pytest.approx(paris_embodied / 1000) and cat2["estimated_share"] == 1.0
    assert {b["boundary"] for b in report["boundaries"]} == {"owned", "cloud"}
    assert any("CC BY 4.0" in s["source"] for s in report["sources"])
    assert any("test residual" in s["source"] for s in report["sources"])


def test_each_export_figure_equals_the_report_and_the_carbon_page(
    client, acme, people, year_of_two_sites, hour
):
    report = reporting.esrs_e1(acme, hour.year)
    scope = scope_for(people["alice"], "acme")
    month_start = hour.replace(day=1, hour=0)
    month_end = (month_start + timedelta(days=32)).replace(day=1)
    monthly = report_selectors.monthly_report(scope, Period(month_start, month_end, ""))
    inventory = {row["boundary"]: row for row in monthly.inventory}
    exported = {row["boundary"]: row for row in report["boundaries"]}
    assert set(inventory) == set(exported) == {"owned", "cloud"}
    for boundary, row in exported.items():
        page = inventory[boundary]
        assert row["facility_energy_mwh"] == pytest.approx(page["facility_energy_kwh"] / 1000)
        assert row["scope2_location_tco2e"] == pytest.approx(
            page["operational_location_kgco2e"] / 1000
        )
        assert row["scope2_market_tco2e"] == pytest.approx(page["operational_market_kgco2e"] / 1000)
        assert row["scope3_cat3_tco2e"] == pytest.approx(page["upstream_kgco2e"] / 1000)
    methods = {m["site"]: m for m in monthly.methods}
    assert methods["paris-dc"]["market"] == "ppa 60% at 0 g/kWh; rest: residual mix 50 g/kWh"
    assert methods["paris-dc"]["location"] == "direct, derived from the zone's generation mix"
    # The export's Scope 3 cat. 3 is the owned and colocation sites' (the cloud site's is in cat. 1)
    cat3_figure = figures(report)["Scope 3 cat. 3 fuel- and energy-related activities"]
    assert "6.87% T&D loss" in cat3_figure["method"]  # the rate used, stated on the figure
    cat3 = cat3_figure["value"]
    assert cat3 == pytest.approx(inventory["owned"]["upstream_kgco2e"] / 1000)
    assert cat3 == pytest.approx(0.026 * FR_UPSTREAM / 1e6)
    # the carbon page's tile, its CSV and the report's total row read the same sum over every site
    # (owned cat. 3 + the cloud site's upstream part, which the export counts in cat. 1)
    every_site = (
        exported["owned"]["scope3_cat3_tco2e"] + exported["cloud"]["scope3_cat3_tco2e"]
    ) * 1000
    start, end = f"{month_start:%Y-%m-%d}", f"{month_end - timedelta(days=1):%Y-%m-%d}"
    summary = carbon_tiles.summary(
        scope,
        carbon_selectors.carbon_frame(scope, month_start, month_end, by_day=False),
        carbon_selectors.carbon_frame(scope, month_start, month_start, by_day=False),
        Period(month_start, month_start, ""),
        picked=False,
    )
    tile = {t.key: t for t in summary.tiles}["upstream"]
    assert tile.label == "CO2e, Scope 3 cat. 3 (upstream and T&D losses)"
    assert tile.value == pytest.approx(every_site)
    assert monthly.total is not None
    assert monthly.total["upstream_kgco2e"] == pytest.approx(every_site)
    client.force_login(people["alice"])
    rows = list(
        csv.DictReader(
            io.StringIO(
                client.get(f"/carbon/teams.csv?org=acme&from={start}&to={end}").content.decode()
            )
        )
    )
    header = "Scope 3 cat. 3 (upstream and T&D losses) (kgCO2e)"
    assert sum(float(r[header]) for r in rows) == pytest.approx(every_site, rel=1e-5)
    # the carbon page's Scope 2 location-based figure of every site = owned Scope 2 + cloud's part
    frame = carbon_selectors.carbon_frame(scope, month_start, month_end)
    page_location = float(frame["operational_location_kgco2e"].sum())
    assert page_location == pytest.approx(
        (exported["owned"]["scope2_location_tco2e"] + exported["cloud"]["scope2_location_tco2e"])
        * 1000
    )


def test_the_export_endpoints_csv_json_access_and_bad_years(
    client, acme, people, year_of_two_sites, hour
):
    client.force_login(people["alice"])
    answer = client.get(f"/reports/esrs-e1.json?org=acme&year={hour.year}")
    assert answer.status_code == 200
    body = json.loads(answer.content)
    assert body["organisation"] == "acme" and body["figures"]
    text = client.get(f"/reports/esrs-e1.csv?org=acme&year={hour.year}").content.decode()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["# standard", "ESRS E1"]
    assert ["disclosure", "datapoint", "value", "unit", "estimated_share", "method"] in rows
    assert any(r[:2] == ["E1-6", "Gross Scope 2 market-based"] for r in rows)
    page = client.get(f"/reports/?org=acme&month={hour:%Y-%m}").content.decode()
    assert 'data-testid="inventory"' in page and "cloud (Scope 3 cat. 1)" in page
    assert "ppa 60% at 0 g/kWh; rest: residual mix 50 g/kWh" in page
    assert client.get("/reports/esrs-e1.json?org=acme&year=20x6").status_code == 400
    assert client.get(f"/reports/esrs-e1.json?org=acme&year={hour.year + 1}").status_code == 400
    client.force_login(people["victor"])  # a viewer of one team
    assert client.get(f"/reports/esrs-e1.json?org=acme&year={hour.year}").status_code == 403


def test_the_report_shows_each_instrument_contracted_beside_applied(
    client, acme, people, year_of_two_sites, hour
):
    """The 60 % PPA (1,000 MWh a year, open-ended) of paris-dc covered 0.6 x 0.026 = 0.0156 kWh;
    contracted for the month: 1,000 MWh x the month's hours / the year's hours."""
    scope = scope_for(people["alice"], "acme")
    month_start = hour.replace(day=1, hour=0)
    month_end = (month_start + timedelta(days=32)).replace(day=1)
    monthly = report_selectors.monthly_report(scope, Period(month_start, month_end, ""))
    [use] = monthly.instruments
    assert use.applied_kwh == pytest.approx(0.0156)
    year_h = 8784 if hour.year % 4 == 0 else 8760
    month_h = (month_end - month_start).total_seconds() / 3600
    assert use.contracted_mwh == pytest.approx(1000.0 * month_h / year_h)
    client.force_login(people["alice"])
    page = client.get(f"/reports/?org=acme&month={hour:%Y-%m}").content.decode()
    assert 'data-testid="instruments"' in page and "0.0156 kWh" in page
    # a viewer of one team does not see the site's whole consumption through its instruments
    victor = scope_for(people["victor"], "acme")
    assert (
        report_selectors.monthly_report(victor, Period(month_start, month_end, "")).instruments
        == []
    )
