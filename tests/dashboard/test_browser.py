"""The dashboard in a real browser: Debian's Chromium driven by Playwright against a live server.

Needs /usr/bin/chromium (`apt-get install -y chromium`); never a browser downloaded by Playwright.
Locally a missing Chromium skips these tests; under CI=true it fails them. Screenshots of the main
pages are written to test-artifacts/ (gitignored) for people to look at.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from greenkpi.inventory.models import Team

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TIMEOUT_MS = 15_000


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        reason = "Chromium is missing: apt-get install -y chromium"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    from testsupport import browser as shared

    # Playwright's sync API keeps an event loop running in this thread; Django would then refuse
    # ORM calls from the test's own fixtures. Those calls are synchronous and safe here.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    # Shared: the area modules that import this fixture each hold an instance of it, and only one
    # Playwright may run per thread.
    yield shared.acquire(
        str(CHROMIUM),
        ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    )
    shared.release()


def serialise_requests_on_sqlite(live_server) -> None:
    """On in-memory SQLite every live-server thread shares the test's one connection, and two
    chart requests running on it at once can deadlock. There, let one request at a time through
    (PostgreSQL gives each thread its own connection and stays concurrent)."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
        return
    httpd = live_server.thread.httpd
    app = httpd.get_app()
    if getattr(app, "serialised", False):
        return
    lock = threading.Lock()

    def serialised(environ, start_response):
        with lock:
            result = app(environ, start_response)
            try:
                return list(result)
            finally:
                result.close()

    serialised.serialised = True
    httpd.set_app(serialised)


@pytest.fixture
def page(browser, live_server) -> Iterator[object]:
    """A fresh browser context that records every request it makes, every script error and every
    Content-Security-Policy violation."""
    serialise_requests_on_sqlite(live_server)
    context = browser.new_context(viewport={"width": 1360, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.requests_made = []
    page.errors = []
    page.on("request", lambda request: page.requests_made.append(request.url))
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    # A script or style the Content-Security-Policy blocked is reported on the console.
    page.on(
        "console",
        lambda message: (
            page.errors.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    yield page
    context.close()
    foreign = [url for url in page.requests_made if not url.startswith(live_server.url)]
    assert not foreign, f"the page loaded from other hosts (no CDN allowed): {foreign}"
    assert not page.errors, f"script errors: {page.errors}"


@pytest.fixture
def busy_week(fleet, acme, make_batch, post_batch, acme_token) -> int:
    """train-1: two GPUs, a week of 60 s windows (20,160 samples): a diurnal inference load and
    a training run each night; vision's models claim 80 % of the energy. Returns the host id."""
    from greenkpi.inventory.models import Host

    start = fleet.now.replace(hour=0, minute=0) - timedelta(days=7)
    for day in range(7):
        batch = make_batch(
            hostname="train-1", devices=2, windows=1440, start=start + timedelta(days=day)
        )
        for i, sample in enumerate(batch["samples"]):
            minute = (i // 2) % 1440
            gpu = i % 2
            training = gpu == 0 and 60 <= minute < 360  # 01:00-06:00 UTC
            diurnal = 0.5 - 0.4 * math.cos(2 * math.pi * minute / 1440)
            util = 0.97 if training else diurnal
            power_w = 70.0 + 600.0 * util + (35.0 if minute == 700 + day else 0.0)
            energy_j = power_w * 60
            model = "vit-large" if training else "resnet-serving"
            sample.update(
                energy_j=energy_j,
                power_avg_w=power_w,
                power_peak_w=power_w * 1.08,
                util_busy=util,
                shares=[
                    {
                        "energy_j": energy_j * 0.8,
                        "method": "utilization",
                        "team": "vision",
                        "model": model,
                        "run": f"{model}-{day}",
                    },
                    {"energy_j": energy_j * 0.2, "method": "unattributed"},
                ],
            )
        response = post_batch(acme_token[1], batch)
        assert response.status_code == 201, response.content
    return Host.objects.get(hostname="train-1").pk


def log_in(page, live_server, username: str, password: str) -> None:
    page.goto(f"{live_server.url}/")
    assert "/accounts/login/" in page.url
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/")


def chart_traces(page, chart_id: str) -> list[str]:
    """Names of the traces Plotly drew in the chart element ``chart_id``."""
    page.wait_for_selector(f"#{chart_id}.js-plotly-plot .main-svg")
    return page.evaluate(f"document.getElementById('{chart_id}').data.map(t => t.name)")


def shoot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_an_admin_logs_in_reads_the_charts_walks_fleet_to_host_and_downloads_a_csv(
    page, live_server, fleet, people, tmp_path
):
    log_in(page, live_server, "alice", people["password"])
    assert set(chart_traces(page, "energy-by-team")) == {"Vision", "NLP"}
    bars = page.evaluate(
        "document.getElementById('energy-by-team').querySelectorAll('.bars .point').length"
    )
    assert bars >= 3  # vision on two days, nlp on one
    assert page.locator("[data-testid=tile-energy]").inner_text() != "0.0"
    shoot(page, "overview")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Fleet").click()
    page.wait_for_selector("table.fleet")
    assert page.locator("table.fleet tbody tr").count() == 3
    shoot(page, "fleet")

    page.get_by_role("link", name="vision-1").click()
    page.wait_for_url(f"**/hosts/{fleet.hosts['vision-1'].pk}/")
    power = chart_traces(page, "host-power")
    assert len(power) == 2 and all("GPU-vision-1" in name for name in power)
    assert len(chart_traces(page, "host-util")) == 2
    y_title = page.locator("#host-power .ytitle").text_content()
    assert y_title == "Power (W)"
    shoot(page, "host")

    with page.expect_download() as download_info:
        page.locator("section:has(#host-power) a.csv").click()
    target = tmp_path / "power.csv"
    download_info.value.save_as(target)
    lines = target.read_text().splitlines()
    assert lines[0] == "time_utc,device_id,device,kind,power_w,power_peak_w,windows"
    assert len(lines) == 1 + 2 * 3

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Teams").click()
    page.get_by_role("link", name="NLP").click()
    assert chart_traces(page, "team-models") == ["Energy"]
    assert chart_traces(page, "team-energy") == ["NLP"]
    assert page.locator("table.runs").get_by_text("bert").is_visible()
    shoot(page, "team")


def test_a_week_of_minute_windows_is_drawn_downsampled_with_its_peaks(
    page, live_server, busy_week, people
):
    log_in(page, live_server, "alice", people["password"])
    shoot(page, "overview-week")
    page.goto(f"{live_server.url}/hosts/{busy_week}/?range=7d")
    assert len(chart_traces(page, "host-power")) == 2
    # _fullData holds the decoded typed arrays (data keeps the base64 form we sent).
    points = page.evaluate(
        "document.getElementById('host-power')._fullData"
        ".map(t => [t.x.length, Math.max(...Array.from(t.y))])"
    )
    for count, _ in points:
        assert 1_000 < count <= 2_000  # 10,080 windows per GPU, bucketed then LTTB
    assert max(highest for _, highest in points) == pytest.approx(70 + 600 * 0.97, abs=0.01)
    shoot(page, "host-week")


def test_a_vision_viewer_never_sees_nlp_data(page, live_server, fleet, people):
    log_in(page, live_server, "victor", people["password"])
    assert chart_traces(page, "energy-by-team") == ["Vision"]
    page.goto(f"{live_server.url}/fleet/")
    hosts = page.locator("table.fleet tbody th").all_inner_texts()
    assert sorted(hosts) == ["shared-1", "vision-1"]
    # Hidden in the closed account menu or not, the organisation's token settings are not linked.
    assert page.locator("a[href^='/settings/tokens/']").count() == 0
    assert page.locator("header details.account a[href^='/account/api-tokens/']").count() == 1

    nlp = Team.objects.get(slug="nlp")
    for path in (
        f"/hosts/{fleet.hosts['nlp-1'].pk}/",
        f"/teams/{nlp.pk}/",
        f"/teams/{nlp.pk}/models.csv",
        "/charts/energy-by-team.csv?team=nlp",
        "/?org=globex",
        "/settings/tokens/",
    ):
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 404, path
    csv = page.request.get(f"{live_server.url}/charts/energy-by-team.csv?range=7d").text()
    assert "Vision" in csv and "NLP" not in csv


def test_a_new_organisation_is_told_how_to_connect_a_host_and_gets_a_token_once(
    page, live_server, acme, people
):
    log_in(page, live_server, "alice", people["password"])
    commands = page.locator("pre.commands").inner_text()
    assert "greenkpi-collector run --server" in commands
    shoot(page, "empty-overview")
    page.get_by_role("button", name="Create collector token").click()
    token = page.locator("[data-testid=new-token]").inner_text()
    assert token.startswith("gkc_")
    shoot(page, "token-created")
    page.goto(f"{live_server.url}/settings/tokens/")
    assert token not in page.content()
