"""The per-organisation OpenMetrics export, parsed by prometheus_client's OpenMetrics parser (the
format is valid), against hand-computed figures; its cardinality bound; the Grafana dashboard in
deploy/grafana/ references only what the export serves."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from greenkpi.alerts import services as alert_services
from greenkpi.integrations import openmetrics
from greenkpi.workloads.models import MLModel

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 17, 12, 20, tzinfo=UTC)
URL = "/api/v1/export/openmetrics/"
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "greenkpi-kpis.json"


@pytest.fixture
def world(acme, globex, people, rollups):
    MLModel.objects.create(team=acme.vision, key="resnet")
    a, b = rollups.gpu(acme, "gpu-a"), rollups.gpu(acme, "gpu-b")
    hour = datetime(2026, 11, 17, 9, tzinfo=UTC)
    for h in range(2):  # 2 x 2 kWh of the registered resnet; half busy, a quarter idle
        rollups.add(
            acme,
            hour + timedelta(hours=h),
            device=a,
            team=acme.vision,
            model_key="resnet",
            energy_kwh=2.0,
            location_kg=0.1,
            market_kg=0.04,
            embodied_kg=0.02,
            cost=0.5,
            currency="EUR",
        )
    # Fifty unregistered model keys of nlp: one series (model=""), not fifty.
    for i in range(50):
        rollups.add(acme, hour, device=b, team=acme.nlp, model_key=f"adhoc-{i}", energy_kwh=0.1)
    rollups.add(globex, hour, device=rollups.gpu(globex, "g-1"), team=globex.research)
    alert_services.budget_create(
        organisation=acme,
        user=people["alice"],
        name="vision month",
        metric="energy_kwh",
        period="month",
        amount=8.0,
        team=acme.vision,
    )


def scrape(client, headers) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with time_machine.travel(NOW, tick=False):
        response = client.get(URL, **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    text = response.content.decode()
    assert text.endswith("# EOF\n")
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_the_export_serves_the_figures_in_base_units(client, world, people, pat, auth, acme):
    found = scrape(client, auth(pat(people["alice"], acme)))
    resnet = (("model", "resnet"), ("team", "vision"))
    assert found[("greenkpi_energy_joules_total", resnet)] == pytest.approx(4.0 * 3.6e6)
    assert found[("greenkpi_scope2_location_co2e_grams_total", resnet)] == pytest.approx(200.0)
    assert found[("greenkpi_scope2_market_co2e_grams_total", resnet)] == pytest.approx(80.0)
    assert found[("greenkpi_embodied_co2e_grams_total", resnet)] == pytest.approx(40.0)
    assert found[("greenkpi_gpu_busy_seconds_total", resnet)] == pytest.approx(3600.0)
    assert found[("greenkpi_gpu_idle_seconds_total", resnet)] == pytest.approx(1800.0)
    assert found[("greenkpi_gpu_utilization_ratio", resnet)] == pytest.approx(0.5)
    cost = (("currency", "EUR"), ("model", "resnet"), ("team", "vision"))
    assert found[("greenkpi_energy_cost_total", cost)] == pytest.approx(1.0)
    nlp = (("model", ""), ("team", "nlp"))
    assert found[("greenkpi_energy_joules_total", nlp)] == pytest.approx(50 * 0.1 * 3.6e6)
    budget = next(k for k in found if k[0] == "greenkpi_budget_used_ratio")
    assert dict(budget[1])["budget"] == "vision month"
    assert found[budget] == pytest.approx(4.0 / 8.0)
    assert found[("greenkpi_budget_forecast_ratio", budget[1])] >= found[budget]
    # The bound: 2 teams with work, resnet + "" for vision, "" for nlp: 2 energy series.
    assert len([k for k in found if k[0] == "greenkpi_energy_joules_total"]) == 2
    assert all(dict(k[1]).get("team") != "research" for k in found)  # Globex never


def test_who_may_scrape(client, world, people, pat, auth, acme, acme_token):
    narrowed = scrape(client, auth(pat(people["alice"], acme, teams=[acme.nlp])))
    assert {dict(k[1])["team"] for k in narrowed} == {"nlp"}
    with time_machine.travel(NOW, tick=False):
        assert client.get(URL, **auth(acme_token[1])).status_code == 401  # a collector token
        assert client.get(URL).status_code in (401, 403)
        other = client.get(URL, {"org": "globex"}, **auth(pat(people["alice"], acme)))
    assert other.status_code == 404


def test_the_grafana_dashboard_uses_only_served_metrics():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["panels"]
    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    expressions += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    used = {name for expr in expressions for name in re.findall(r"\bgreenkpi_\w+", expr)}
    assert used and used <= openmetrics.SERVED_NAMES, used - openmetrics.SERVED_NAMES
    # Every family the export serves has a panel (a new family needs one, or a reason).
    assert used == openmetrics.SERVED_NAMES


def test_the_check_catches_a_metric_the_export_does_not_serve():
    expr = "sum(rate(greenkpi_energy_joule_total[5m]))"  # a typo: joule
    assert set(re.findall(r"\bgreenkpi_\w+", expr)) - openmetrics.SERVED_NAMES
