"""One vocabulary (issue 12, part 3 and D1): each carbon quantity has one name (kpis/labels.py)
and, for the same range, the same value on the overview, the carbon page and the ESG report,
written by the one unit rule (lib/units.py). Story: test_carbon_pages.py's March."""

from __future__ import annotations

import re
from html import escape

import pytest
from dashboard.test_carbon_pages import (  # noqa: F401
    MARCH_RANGE,
    _own_cache,
    carbon,
    frozen,
    refresh_days,
)

from greenkpi.kpis import labels
from greenkpi.lib import units

pytestmark = pytest.mark.django_db

# Names pages used before there was one vocabulary (D1: the same words for different figures).
RETIRED = (
    "CO<sub>2</sub>e (location-based)",
    "CO2e, location-based",
    "CO2e location (kg)",
    "CO2e market (kg)",
    "Embodied CO2e",
    "Total (O + M)",
    "kgCO2e per 1,000 units",
    "\u00b5",
)


def shown(page: str, testid: str) -> str:
    match = re.search(
        rf'data-testid="{testid}"[^>]*>([^<]*)</span> <span class="unit">([^<]*)<', page
    )
    assert match, f"no {testid} on the page"
    return f"{match.group(1)} {match.group(2)}"


def test_the_total_has_one_name_and_one_value_on_overview_carbon_and_report(
    client,
    carbon,  # noqa: F811
    people,
):
    # The daily tables refreshed, as the beat does: which table a page reads is the read layer's
    # business (issue 12 part 1); this test is about the names and the unit rule.
    refresh_days()
    client.force_login(people["alice"])
    overview = client.get(f"/?{MARCH_RANGE}").content.decode()
    carbon_page = client.get(f"/carbon/?{MARCH_RANGE}").content.decode()
    report = client.get("/reports/?month=2026-03").content.decode()

    # Scope 2 location-based (0.065 kWh x 33.4811 g direct) + embodied (3 GPUs + 2 hosts' shares)
    location_kg = 0.065 * (17212.96 / 514.11) / 1000
    kg = location_kg + (3 * 150 + 2 * 2899.125) * 180 / (4 * 31_557_600)
    total = units.co2e_mass(kg)
    assert shown(overview, "tile-co2e") == f"{total.number} {total.unit}CO2e"
    assert shown(carbon_page, "tile-total") == f"{total.number} {total.unit}CO2e"
    report_total = re.search(
        r'<tr class="total".*?data-quantity="total">([^<]*)<', report, flags=re.S
    )
    assert report_total and report_total.group(1) == str(total)
    for page in (overview, carbon_page):
        assert labels.TOTAL.tile in page
    assert labels.TOTAL.title in report

    location = units.co2e_mass(location_kg)
    assert shown(carbon_page, "tile-location") == f"{location.number} {location.unit}CO2e"
    # Scope 3 cat. 3 (issue 14): 0.065 kWh x (lifecycle - direct + 6.87 % T&D x lifecycle)
    lifecycle, direct = 32576.97 / 514.11, 17212.96 / 514.11
    upstream = units.co2e_mass(0.065 * (lifecycle - direct + 0.0687 * lifecycle) / 1000)
    assert shown(carbon_page, "tile-upstream") == f"{upstream.number} {upstream.unit}CO2e"
    assert escape(labels.SCOPE3_UPSTREAM.tile) in carbon_page  # T&amp;D in HTML
    # every figure says what produced it (issue 14): the factor's method, the market-based
    # fallback's label, measured vs estimated energy
    method = re.compile(r'data-testid="method-(\w+)">([^<]*)<')
    said = dict(method.findall(carbon_page))
    assert said["location"] == "factor: direct, derived from the zone&#x27;s generation mix 100%"
    assert said["market"] == (
        "contractual instruments; the grid average for any rest (no residual mix loaded)"
    )
    assert said["energy"] == "IT energy measured 100%, estimated 0%"
    assert said["upstream"] == "lifecycle - direct factor + 6.87% T&amp;D losses"
    assert re.search(
        rf'<tr class="total".*?data-quantity="upstream">{re.escape(str(upstream))}<',
        report,
        flags=re.S,
    )
    assert re.search(
        rf'<tr class="total".*?data-quantity="location">{re.escape(str(location))}<',
        report,
        flags=re.S,
    )


@pytest.mark.parametrize("path", ["/", "/carbon/", "/reports/", "/models/", "/carbon/grid/"])
def test_no_page_uses_a_retired_name_or_six_decimals(client, carbon, people, path):  # noqa: F811
    client.force_login(people["alice"])
    query = "month=2026-03" if path == "/reports/" else MARCH_RANGE
    page = client.get(f"{path}?{query}").content.decode()
    for name in RETIRED:
        assert name not in page, f"{path} still says {name!r}"
    main = page[page.index("<main") : page.index("</main>")]
    assert not re.search(r">\s*-?[0-9,]*\.[0-9]{6,}", main), f"{path}: a figure with 6 decimals"
    for q in (
        labels.SCOPE2_LOCATION,
        labels.SCOPE2_MARKET,
        labels.SCOPE3_UPSTREAM,
        labels.EMBODIED,
    ):
        if path in ("/carbon/", "/reports/"):
            assert escape(q.title) in page or escape(q.tile) in page, f"{path} lacks {q.name!r}"


def test_the_esg_report_does_not_count_a_healthy_new_collector_as_silent(
    client,
    carbon,  # noqa: F811
    people,
):
    """Issue 12: the demo's own collector, reporting for minutes (no hour rolled up yet), was one
    of "2 collectors silent". It is healthy; a host silent for hours still counts."""
    from datetime import timedelta

    from dashboard.test_carbon_pages import NOW

    from greenkpi.inventory.models import Host

    Host.objects.create(
        organisation=carbon, hostname="fresh-1", last_seen=NOW - timedelta(minutes=1)
    )
    Host.objects.create(organisation=carbon, hostname="gone-1", last_seen=NOW - timedelta(hours=3))
    client.force_login(people["alice"])
    report = client.get("/reports/?month=2026-03").context["report"]
    silent = {h.hostname for h in report.silent_hosts}
    assert "gone-1" in silent and "fresh-1" not in silent
