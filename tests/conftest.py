"""Shared fixtures: two organisations and their people, collector tokens, and a poster.

The story: Acme ML (teams vision and nlp) and Globex (team research). Alice is an Acme org admin,
Victor views only vision, Nina manages nlp, Gary belongs to Globex. Nobody sees another tenant.
Under CI=true a skipped test fails the run: every real-service test must run there.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from greenkpi.inventory.models import Role


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if os.environ.get("CI") == "true" and skipped and exitstatus == 0:
        reporter.write_line(
            f"CI=true: {skipped} test(s) skipped; a skip is a failure here", red=True
        )
        session.exitstatus = 1


@pytest.fixture(autouse=True, scope="session")
def _plain_static_files():
    """Tests don't run collectstatic, so serve static files unhashed (production uses the manifest)."""
    from django.test import override_settings

    with override_settings(
        STORAGES={
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        }
    ):
        yield


@pytest.fixture(autouse=True)
def _empty_read_cache():
    """Each test starts with an empty read cache (kpis/read/cache.py): tests reuse primary keys
    (SQLite rolls its sequences back) and frozen clocks give refreshes equal stamps, so one test's
    rows could otherwise match another's key."""
    from django.core.cache import caches

    caches["read"].clear()


@pytest.fixture
def redis_url() -> str:
    """The real-service layer's Redis; this layer also needs PostgreSQL for worker processes."""
    from django.db import connection

    assert connection.vendor == "postgresql", "this layer runs with DATABASE_URL=postgres://..."
    url = os.environ.get("REDIS_URL", "")
    assert url.startswith("redis"), "this layer runs with REDIS_URL=redis://..."
    return url


@pytest.fixture
def acme(db):
    from greenkpi.inventory.services import organisation_create, site_create, team_create

    org = organisation_create(name="Acme ML", slug="acme")
    org.vision = team_create(organisation=org, name="Vision", slug="vision")
    org.nlp = team_create(organisation=org, name="NLP", slug="nlp")
    org.paris = site_create(organisation=org, name="paris-dc", grid_zone="FR", pue=1.3)
    return org


@pytest.fixture
def globex(db):
    from greenkpi.inventory.services import organisation_create, team_create

    org = organisation_create(name="Globex", slug="globex")
    org.research = team_create(organisation=org, name="Research", slug="research")
    return org


@pytest.fixture
def people(acme, globex):
    from greenkpi.inventory.services import user_create

    password = "correct horse battery staple"
    users = {
        "alice": user_create(
            username="alice", password=password, organisation=acme, role=Role.ADMIN
        ),
        "victor": user_create(
            username="victor", password=password, team=acme.vision, role=Role.VIEWER
        ),
        "nina": user_create(username="nina", password=password, team=acme.nlp, role=Role.MANAGER),
        "gary": user_create(
            username="gary", password=password, organisation=globex, role=Role.ADMIN
        ),
    }
    users["password"] = password
    return users


@pytest.fixture
def acme_token(acme):
    """(token row, secret) for Acme, unclaimed energy going to vision."""
    from greenkpi.inventory.services import token_create

    return token_create(organisation=acme, name="acme-collectors", default_team=acme.vision)


@pytest.fixture
def globex_token(globex):
    from greenkpi.inventory.services import token_create

    return token_create(organisation=globex, name="globex-collectors", default_team=globex.research)


def build_batch(
    *,
    hostname: str = "gpu-node-1",
    devices: int = 2,
    windows: int = 3,
    start: datetime | None = None,
    window_s: int = 60,
    energy_j: float = 12_000.0,
    shares: list[dict] | None = None,
) -> dict:
    """A valid v1 batch: ``devices`` GPUs x ``windows`` consecutive windows."""
    # minute-aligned: one-minute windows then never straddle an hour (which stores them as two
    # rows, issue 14 item 7), so row counts do not depend on the minute a test runs at
    start = start or datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    samples = []
    for w in range(windows):
        t0 = start + timedelta(seconds=w * window_s)
        for d in range(devices):
            sample = {
                "device_uuid": f"GPU-{hostname}-{d}",
                "device_kind": "gpu",
                "start": t0.isoformat().replace("+00:00", "Z"),
                "end": (t0 + timedelta(seconds=window_s)).isoformat().replace("+00:00", "Z"),
                "energy_j": energy_j,
                "method": "counter",
                "power_avg_w": energy_j / window_s,
                "power_peak_w": energy_j / window_s * 1.2,
                "util_busy": 0.75,
                "mem_used_bytes": 10 * 2**30,
                "mem_total_bytes": 80 * 2**30,
                "temperature_c": 61.0,
                "idle_s": 5.0,
            }
            if shares is not None:
                sample["shares"] = shares
            samples.append(sample)
    return {
        "schema_version": 1,
        "host": {
            "hostname": hostname,
            "agent_version": "test",
            "clock": datetime.now(UTC).isoformat(),
            "devices": [
                {
                    "uuid": f"GPU-{hostname}-{d}",
                    "kind": "gpu",
                    "model": "NVIDIA H100 80GB HBM3",
                    "power_limit_w": 700,
                }
                for d in range(devices)
            ],
        },
        "samples": samples,
    }


@pytest.fixture
def make_batch():
    """The batch builder (tests run in importlib mode, so helpers are handed out as fixtures)."""
    return build_batch


@pytest.fixture
def post_batch(client):
    """post_batch(secret, body_dict_or_bytes, key=None, **headers) -> response (Django test client)."""

    def post(secret: str, body, key: str | None = None, **headers):
        payload = body if isinstance(body, bytes) else orjson.dumps(body)
        extra = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
        if key is not False:
            extra["HTTP_IDEMPOTENCY_KEY"] = key or str(uuid.uuid4())
        extra.update(headers)
        return client.post("/api/v1/ingest/", payload, content_type="application/json", **extra)

    return post
