"""The first things a newcomer touches: the demo organisation and the API docs."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from django.core.management import call_command
from django.db.models import Sum

from greenkpi.ingest.models import Sample, SampleShare
from greenkpi.inventory.models import Host


def test_the_demo_simulates_a_plausible_organisation(db):
    now = datetime(2026, 11, 18, 12, tzinfo=UTC)
    from greenkpi.demo.simulation import load_organisation

    loaded = load_organisation(days=3, now=now)
    org = loaded.organisation
    assert loaded.token.startswith("gkc_")
    assert org.teams.count() == 4
    assert {s.grid_zone for s in org.sites.all()} == {"FR", "DE", "PL"}
    silent = Host.objects.get(hostname="gpu-warsaw-03")
    assert (now - silent.last_seen).days == 2
    assert Host.objects.get(hostname="gpu-frankfurt-03").default_team.slug == "platform"
    gpu = Sample.objects.filter(device__kind="gpu")
    assert gpu.values("device").distinct().count() == 32
    # Power stays within each GPU's idle..limit envelope.
    for sample in gpu.select_related("device")[:500]:
        assert 10 <= sample.power_avg_w <= sample.device.power_limit_w
    # Training hosts run hot, the idle pool stays cold.
    busy = gpu.filter(device__host__hostname="gpu-warsaw-01", util_busy__gt=0.8).count()
    idle_pool = gpu.filter(device__host__hostname="gpu-frankfurt-03", util_busy__lt=0.05).count()
    assert busy > 0
    assert idle_pool > 0.8 * gpu.filter(device__host__hostname="gpu-frankfurt-03").count()
    # Attributed energy never exceeds measured energy.
    assert (
        SampleShare.objects.aggregate(e=Sum("energy_j"))["e"]
        <= gpu.aggregate(e=Sum("energy_j"))["e"]
    )
    assert SampleShare.objects.values("model_key").distinct().count() == 11  # 10 models + pool


def test_every_endpoint_is_in_the_openapi_schema_and_the_docs_page_is_self_hosted(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert "/api/v1/ingest/" in schema["paths"]
    assert "collectorToken" in schema["components"]["securitySchemes"]
    page = client.get("/api/docs/").content.decode()
    assert "swagger-ui" in page
    # Nothing loaded from another host (a bare "cdn" test failed whenever the page's random CSRF
    # token happened to contain those three letters).
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page, re.IGNORECASE)
    assert "cdn." not in page.lower()


def test_the_openapi_schema_is_valid_openapi_3(db, tmp_path):
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml")
    )
    assert "/api/v1/ingest/:" in (tmp_path / "schema.yaml").read_text()
