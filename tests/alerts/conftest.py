"""Alerts fixtures: rollup rows written directly (the rollup itself is tested in tests/kpis), a
local webhook receiver (http.server in a thread), and a recorder in place of the broker dispatch."""

from __future__ import annotations

import http.server
import threading
from datetime import UTC, datetime
from itertools import count

import pytest
from testsupport.rollup_rows import hourly_row

from greenkpi.alerts.models import Channel, new_webhook_secret
from greenkpi.inventory.models import Device, Host
from greenkpi.kpis.models import HourlyRollup

_uuids = count(1)


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """The people fixture hashes four passwords per test; PBKDF2 made that most of our run time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def dispatched(request, monkeypatch):
    """Send-task dispatches recorded instead of sent to a broker (the worker test uses the real one)."""
    calls: list[tuple[str, str | None]] = []
    if not getattr(request.module, "REAL_DISPATCH", False):
        from greenkpi.alerts import outbox

        monkeypatch.setattr(outbox, "dispatch", lambda pk, queue=None: calls.append((pk, queue)))
    return calls


def make_host(org, hostname: str, *, team=None, last_seen: datetime | None = None) -> Host:
    return Host.objects.create(
        organisation=org, hostname=hostname, default_team=team, site=None, last_seen=last_seen
    )


def make_gpu(host: Host) -> Device:
    return Device.objects.create(host=host, kind="gpu", uuid=f"GPU-{host.hostname}-{next(_uuids)}")


def add_rollup(
    org,
    hour: datetime,
    *,
    device: Device,
    team=None,
    model_key: str = "",
    energy_kwh: float = 0.0,
    co2e_kg: float = 0.0,
    allocated_gpu_h: float = 0.0,
    busy_gpu_h: float = 0.0,
    idle_gpu_h: float = 0.0,
    cost: float | None = None,
    currency: str = "",
    market_kg: float | None = None,
    embodied_kg: float = 0.0,
) -> HourlyRollup:
    return hourly_row(
        org,
        hour,
        device=device,
        team=team,
        model_key=model_key,
        energy_kwh=energy_kwh,
        allocated_gpu_h=allocated_gpu_h,
        busy_gpu_h=busy_gpu_h,
        idle_gpu_h=idle_gpu_h,
        location_kg=co2e_kg,
        market_kg=market_kg,
        embodied_kgco2e=embodied_kg,
        cost=cost,
        currency=currency,
    )


@pytest.fixture
def rollups():
    """Helpers handed out as a fixture (tests run in importlib mode)."""

    class Helpers:
        host = staticmethod(make_host)
        gpu = staticmethod(make_gpu)
        add = staticmethod(add_rollup)

    return Helpers


class Receiver:
    """A webhook receiver on 127.0.0.1: records every request, answers from ``statuses`` (then 200)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        self.location = ""
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.requests.append(
                    (self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/greenkpi"

    def channel(self, organisation, *, name: str = "hook", **options) -> Channel:
        """A webhook channel of ``organisation`` that posts here (loopback, so private addresses
        allowed); ``options`` set any other Channel field (group_wait_s, ...)."""
        return Channel.objects.create(
            organisation=organisation,
            name=name,
            kind="webhook",
            url=self.url,
            secret=new_webhook_secret(),
            allow_private_network=True,
            **options,
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def second_receiver():
    r = Receiver()
    yield r
    r.close()


T0 = datetime(2026, 5, 11, 0, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def flushes(request, monkeypatch):
    """Group flushes scheduled at group_wait, recorded instead of sent to a broker."""
    calls: list[tuple[int, float, str | None]] = []
    if not getattr(request.module, "REAL_DISPATCH", False):
        from greenkpi.alerts import grouping

        monkeypatch.setattr(
            grouping,
            "dispatch_flush",
            lambda pk, countdown, queue=None: calls.append((pk, countdown, queue)),
        )
    return calls
