"""The demo's Kubernetes node (greenkpi/demo/pods.py) fills the Kubernetes pods page: two
namespaces of two teams, a MIG-sliced GPU, a time-sliced GPU shared by two pods, an idle pod."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dashboard.test_browser import browser, log_in, shoot  # noqa: F401
from dashboard.test_browser import page as browser_page  # noqa: F401

from greenkpi.demo import build, pods
from greenkpi.demo.simulation import DEMO_PASSWORD
from greenkpi.workloads.selectors.scheduler import pods_report

NOW = datetime(2026, 11, 17, 12, 20, tzinfo=UTC)


@pytest.fixture
def demo(db):
    return build.demo_build(days=2, now=NOW)


def test_the_pods_page_of_the_demo_shows_every_split_rule_and_the_idle_pod(demo, client):
    org = demo.organisation
    teams = dict(org.teams.values_list("pk", "slug"))
    hour = NOW.replace(minute=0)
    report = pods_report(
        organisation_id=org.pk, teams=teams, start=hour - timedelta(days=1), end=hour
    )
    got = {
        f"{p['namespace']}/{p['pod']}": (p["team"], p["model_key"], p["share_rules"])
        for p in report["pods"]
    }
    assert got == {
        "cv-research/train-detector": ("vision", "detr-small", ["mig-slice", "utilization"]),
        "nlp-serving/chat-0": ("nlp", "support-chat-8b", ["mig-slice", "utilization"]),
        "nlp-serving/chat-1": ("nlp", "support-chat-8b", ["utilization"]),
        "cv-research/detr-notebook": ("vision", "detr-small", ["allocated-idle"]),
    }
    idle = report["pods"][0]  # most wasted first
    assert idle["pod"] == "detr-notebook"
    # 24 hours of a GPU held idle at 62 W: 24 GPU-h and 1.488 kWh wasted
    assert idle["wasted_gpu_h"] == pytest.approx(24.0)
    assert idle["wasted_energy_kwh"] == pytest.approx(pods.IDLE_W * 24 / 1000)
    assert {g["key"] for g in report["by_namespace"]} == {"cv-research", "nlp-serving"}

    client.login(username="admin", password=DEMO_PASSWORD)
    page = client.get("/k8s/pods/?org=demo&from=2026-11-16&to=2026-11-16")
    assert page.status_code == 200
    html = page.content.decode()
    assert "cv-research/detr-notebook" in html and "MIG slice, utilization split" in html


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_pods_page_in_chromium_from_the_navigation(browser_page, live_server):  # noqa: F811
    build.demo_build(days=2, now=datetime.now(UTC))
    page = browser_page
    log_in(page, live_server, "admin", DEMO_PASSWORD)
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Kubernetes pods", exact=True).click()
    page.wait_for_load_state()
    assert page.locator("main h1").inner_text() == "Kubernetes pods"
    rows = page.locator("table[data-testid=pods] tbody tr")
    assert rows.count() == 4
    assert "cv-research/detr-notebook" in rows.first.inner_text()  # the idle pod: most waste
    page.get_by_label("Namespace").fill("nlp-serving")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_load_state()
    assert page.locator("table[data-testid=pods] tbody tr").count() == 2
    page.get_by_label("Namespace").fill("")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_load_state()
    shoot(page, "demo-k8s-pods")
