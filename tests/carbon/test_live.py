"""The live Electricity Maps provider against a local HTTP server speaking the v3 responses
(``carbon-intensity/history`` and ``/latest``, ``auth-token`` header)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from django.core.cache import cache

from greenkpi.carbon import live, tasks
from greenkpi.carbon.models import GridIntensityHourly
from greenkpi.kpis import services as kpi_services
from greenkpi.kpis.models import HourlyRollup, RollupWindow

pytestmark = pytest.mark.django_db
KEY = "test-token"
H0 = datetime(2026, 3, 1, 10, tzinfo=UTC)


def point(zone: str, moment: datetime, value: float, **extra: Any) -> dict[str, Any]:
    return {
        "zone": zone,
        "carbonIntensity": value,
        "datetime": moment.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "updatedAt": "2026-03-01T12:45:00.000Z",
        "createdAt": "2026-02-26T13:00:00.000Z",
        "emissionFactorType": "lifecycle",
        "isEstimated": False,
        "estimationMethod": None,
        **extra,
    }


class Api:
    """What the fake server answers: a queue of (status, body) per path, else the default."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, list[str]], str | None]] = []
        self.queued: dict[str, list[tuple[int, bytes]]] = {}
        self.base = H0

    def answer(self, path: str, zone: str) -> tuple[int, bytes]:
        if self.queued.get(path):
            return self.queued[path].pop(0)
        if path.endswith("/history"):
            history = [point(zone, self.base + timedelta(hours=h), 50.0 + h) for h in range(3)]
            return 200, json.dumps({"zone": zone, "history": history}).encode()
        latest = point(zone, self.base + timedelta(hours=3), 60.0, isEstimated=True)
        return 200, json.dumps(latest).encode()


@pytest.fixture
def api(settings) -> Iterator[Api]:
    state = Api()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = parse_qs(url.query)
            state.requests.append((url.path, query, self.headers.get("auth-token")))
            status, body = state.answer(url.path, query.get("zone", [""])[0])
            if self.headers.get("auth-token") != KEY:
                status, body = 401, b'{"message": "bad token"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            if status == 429:
                self.send_header("Retry-After", "1")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.ELECTRICITYMAPS_API_KEY = KEY
    settings.ELECTRICITYMAPS_URL = f"http://127.0.0.1:{server.server_port}/v3"
    cache.clear()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        cache.clear()


def test_history_and_latest_are_stored_hourly_with_their_source(api):
    slept: list[float] = []
    result = live.fetch_live(zones=["fr"], sleep=slept.append)
    assert (result.zones, result.hours_written, result.errors) == ({"FR"}, 4, [])
    assert [(p, q["zone"], t) for p, q, t in api.requests] == [
        ("/v3/carbon-intensity/history", ["FR"], KEY),
        ("/v3/carbon-intensity/latest", ["FR"], KEY),
    ]
    rows = list(GridIntensityHourly.objects.filter(zone="FR").order_by("hour"))
    assert [r.intensity_lifecycle_g_per_kwh for r in rows] == [50.0, 51.0, 52.0, 60.0]
    assert [r.hour for r in rows] == [H0 + timedelta(hours=h) for h in range(4)]
    assert rows[-1].estimated and not rows[0].estimated
    assert all(r.source == "Electricity Maps API v3 (live, lifecycle only)" for r in rows)
    assert all(r.intensity_direct_g_per_kwh is None for r in rows)
    assert slept == []


def test_a_second_run_is_served_from_the_cache_and_upserts(api):
    live.fetch_live(zones=["FR"])
    GridIntensityHourly.objects.filter(zone="FR").update(intensity_lifecycle_g_per_kwh=1.0)
    result = live.fetch_live(zones=["FR"])
    assert len(api.requests) == 2  # nothing fetched the second time
    assert result.hours_written == 4
    assert GridIntensityHourly.objects.count() == 4
    assert not GridIntensityHourly.objects.filter(intensity_lifecycle_g_per_kwh=1.0).exists()


def test_429_and_5xx_are_retried_with_backoff_and_retry_after(api):
    path = "/v3/carbon-intensity/history"
    api.queued[path] = [(429, b"{}"), (503, b"{}")]
    slept: list[float] = []
    result = live.fetch_live(zones=["DE"], sleep=slept.append)
    assert result.errors == [] and result.hours_written == 4
    assert slept == [1.0, live.BACKOFF_S * 2]  # Retry-After first, then the doubled backoff
    assert [p for p, _, _ in api.requests].count(path) == 3


def test_a_zone_that_keeps_failing_is_reported_and_the_others_still_go_through(api):
    api.queued["/v3/carbon-intensity/history"] = [(500, b"{}")] * live.ATTEMPTS
    result = live.fetch_live(zones=["DE", "FR"], sleep=lambda s: None)
    assert result.errors == ["carbon-intensity/history DE: HTTP 500"]
    assert result.zones == {"FR"}
    assert not GridIntensityHourly.objects.filter(zone="DE").exists()


def test_client_errors_are_not_retried_and_bad_bodies_are_refused(api, settings):
    settings.ELECTRICITYMAPS_API_KEY = "wrong"
    slept: list[float] = []
    assert live.fetch_live(zones=["FR"], sleep=slept.append).errors == [
        "carbon-intensity/history FR: HTTP 401"
    ]
    assert slept == []
    settings.ELECTRICITYMAPS_API_KEY = KEY
    api.queued["/v3/carbon-intensity/history"] = [(200, b"not json")]
    assert live.fetch_live(zones=["FR"]).errors == ["carbon-intensity/history FR: invalid JSON"]


def test_a_response_over_the_size_bound_is_refused(api, monkeypatch):
    monkeypatch.setattr(live, "MAX_RESPONSE_BYTES", 100)
    assert "over 100 bytes" in live.fetch_live(zones=["FR"]).errors[0]


def test_direct_or_missing_values_are_not_stored_as_lifecycle():
    pts = [
        point("FR", H0, 40.0, emissionFactorType="direct"),
        point("FR", H0, None),  # type: ignore[arg-type]
        point("FR", H0 + timedelta(minutes=30), 30.0),
        point("FR", H0 + timedelta(minutes=45), 50.0),
    ]
    rows = live.hourly_rows("FR", pts, H0)
    assert [(r.hour, r.intensity_lifecycle_g_per_kwh) for r in rows] == [(H0, 40.0)]


def test_new_hours_mark_the_rollup_windows_of_their_zone_dirty(
    api, acme, acme_token, post_batch, make_batch
):
    _, secret = acme_token
    hour = kpi_services.hour_floor(datetime.now(UTC) - timedelta(hours=2))
    body = make_batch(devices=1, start=hour)
    body["host"]["site"] = "paris-dc"
    assert post_batch(secret, body).status_code == 201
    kpi_services.windows_recompute_dirty()
    assert HourlyRollup.objects.filter(hour=hour).exists()
    api.base = hour - timedelta(hours=1)

    result = live.fetch_live()  # the zones of the sites: FR

    assert "FR" in result.zones and result.windows_marked == 1
    window = RollupWindow.objects.get(organisation=acme, hour=hour)
    assert window.version > window.computed_version


def test_the_task_does_nothing_without_a_key(settings):
    settings.ELECTRICITYMAPS_API_KEY = ""
    assert tasks.fetch_live_intensity() == 0
    assert not GridIntensityHourly.objects.exists()


def test_the_beat_entry_exists_with_an_expiry():
    from greenkpi.schedule import BEAT_SCHEDULE

    entry = BEAT_SCHEDULE["carbon-fetch-live-intensity"]
    assert entry["task"] == "greenkpi.carbon.tasks.fetch_live_intensity"
    assert entry["options"]["expires"] > 0


@pytest.mark.django_db
def test_live_hours_keep_the_providers_basis_and_say_which_method_priced_scope_2():
    """Issue 14 item 1: a point the provider states as direct prices Scope 2 (hr-dir, cat. 3 the
    difference + 6.87 % T&D); an hour with only a lifecycle figure prices Scope 2 with it and says
    so (hr-lca, cat. 3 only the T&D losses); a live fetch never leaves an older direct figure
    beside its own lifecycle one."""
    from greenkpi.carbon.selectors import intensity_for

    GridIntensityHourly.objects.create(
        zone="FR",
        hour=H0 + timedelta(hours=1),
        intensity_lifecycle_g_per_kwh=99.0,
        intensity_direct_g_per_kwh=80.0,
        source="CSV import",
    )
    at = (H0 + timedelta(minutes=20)).isoformat()
    later = (H0 + timedelta(hours=1, minutes=20)).isoformat()
    pts = [
        {"datetime": at, "carbonIntensity": 60.0, "emissionFactorType": "lifecycle"},
        {"datetime": at, "carbonIntensity": 40.0, "emissionFactorType": "direct"},
        {"datetime": later, "carbonIntensity": 70.0},  # no basis: the API's default, lifecycle
        {"datetime": later, "carbonIntensity": 5.0, "emissionFactorType": "other"},  # left out
    ]
    rows = live.hourly_rows("FR", pts, H0)
    live.hourly_store(rows)
    both = intensity_for(zone="FR", hour=H0)
    assert (both.intensity_g_per_kwh, both.method) == (40.0, "hr-dir")
    assert both.upstream_g_per_kwh == pytest.approx(20.0 + 0.0687 * 60.0)
    assert both.detail == "Electricity Maps API v3 (live, lifecycle + direct)"
    only = intensity_for(zone="FR", hour=H0 + timedelta(hours=1))
    assert (only.intensity_g_per_kwh, only.method) == (70.0, "hr-lca")  # not the CSV's 80
    assert only.upstream_g_per_kwh == pytest.approx(0.0687 * 70.0)
    assert only.detail == "Electricity Maps API v3 (live, lifecycle only)"
