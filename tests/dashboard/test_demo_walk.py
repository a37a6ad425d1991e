"""A newcomer's first ten minutes, automated: the demo organisation that `make demo` loads (a few
days of it), every page of the main navigation in Debian's Chromium, every chart drawn, every link
and CSV on those pages answered, and a team viewer who sees only their team.

This is the check a person would do by hand before calling the dashboard done; it catches what the
per-area tests cannot: a page that breaks on the demo's data, a link to nowhere, a chart that fails.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
from dashboard.test_browser import browser, log_in, shoot  # noqa: F401
from dashboard.test_browser import page as browser_page  # noqa: F401

from greenkpi.demo import build
from greenkpi.demo.simulation import DEMO_PASSWORD
from greenkpi.inventory.models import Team

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

NAV = ("Overview", "Fleet", "Teams", "Models", "Carbon", "Reports", "Budgets", "Alerts")
# Links whose target is not a page to fetch in a crawl: they act (POST forms are not links) or
# leave the dashboard for the API docs and admin, which have tests of their own.
NOT_CRAWLED = ("/accounts/logout/", "/admin/", "/api/")


@pytest.fixture
def demo(db):
    return build.demo_build(days=3, now=datetime.now(UTC))


def panels_settled(page) -> dict[str, int]:
    """Wait until every lazy chart panel has loaded or failed; count them."""
    # (wait_for_function would eval a string, which the Content-Security-Policy rightly forbids)
    page.wait_for_selector(".chart-panel:not(.is-ready):not(.is-failed)", state="detached")
    return page.evaluate(
        """() => {
          const panels = [...document.querySelectorAll('.chart-panel')];
          return {
            total: panels.length,
            failed: panels.filter(p => p.classList.contains('is-failed')).length,
            with_traces: panels.filter(p => Number(p.dataset.traces || 0) > 0).length,
          };
        }"""
    )


def same_site_links(page, base: str) -> set[str]:
    hrefs = page.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.href)")
    links = set()
    for href in hrefs:
        parts = urlsplit(href)
        if href.startswith(base) and not parts.path.startswith(NOT_CRAWLED):
            links.add(href.split("#")[0])
    return links


def test_an_admin_opens_every_page_of_the_demo_and_nothing_is_broken(
    browser_page,  # noqa: F811
    live_server,
    demo,
):
    page = browser_page
    log_in(page, live_server, "admin", DEMO_PASSWORD)
    nav = page.get_by_role("navigation", name="Main")
    links: set[str] = set()
    for name in NAV:
        nav.get_by_role("link", name=name, exact=True).click()
        page.wait_for_load_state()
        assert page.locator("main h1").count() >= 1, f"{name}: no heading"
        counts = panels_settled(page)
        assert counts["failed"] == 0, f"{name}: {counts['failed']} chart(s) failed to load"
        if counts["total"]:
            assert counts["with_traces"] >= 1, f"{name}: charts drawn without data on the demo"
        shoot(page, f"demo-{name.lower()}")
        links |= same_site_links(page, live_server.url)

    assert len(links) >= 30, f"the crawl found too few links to mean anything: {sorted(links)}"
    # Every link and CSV the pages offer answers: no 404 for a link we drew, no server error.
    broken = {}
    for url in sorted(links):
        response = page.request.get(url)
        if response.status != 200:
            broken[url] = response.status
    assert not broken, f"links that do not answer 200: {broken}"
    assert any(url.split("?")[0].endswith(".csv") for url in links), "no CSV link on any page"


def test_a_team_viewer_of_the_demo_sees_only_their_team(
    browser_page,  # noqa: F811
    live_server,
    demo,
):
    page = browser_page
    log_in(page, live_server, "nlp-viewer", DEMO_PASSWORD)
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Teams", exact=True).click()
    teams = page.locator("main table a").all_inner_texts()
    assert "Language" in teams and "Computer Vision" not in teams

    vision = Team.objects.get(organisation=demo.organisation, slug="vision")
    response = page.request.get(f"{live_server.url}/teams/{vision.pk}/")
    assert response.status == 404

    nav.get_by_role("link", name="Models", exact=True).click()
    panels_settled(page)
    body = page.locator("main").inner_text()
    assert "Language" in body or "nlp" in body
    assert "Computer Vision" not in body
    assert "New budget" not in page.content()  # a viewer manages nothing
