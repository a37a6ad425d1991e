"""SCI for AI per model version (issue 14, item 9; docs/kpis.md "SCI for AI"), worked by hand.

Model "ranker" (accuracy, higher is better), provider unit per training run, consumer unit per
1,000 inferences. kgCO2e per run (all Scope 2 location-based, no embodied, one hourly row each):

    v1  trained by t1 (training) 10 kg, d1 (data-prep) 2 kg, e1 (evaluation) 1 kg   baseline 0.80
        s1 (inference) 5 kg serving 5,000 inferences
        provider 13 kg / 1 training run = 13 kg per run; consumer 5 kg / 5 = 1.0 kg per 1,000
        lifecycle 18 kg
    v2  trained by t2 6 kg                                                           baseline 0.85
        s2 (inference) 2 kg, 2,000 inferences; s2b (inference, never counted) 1 kg
        provider 6 kg per run; consumer 2 kg / 2 = 1.0 kg per 1,000 (C and R over the counted
        runs); lifecycle 6 + 2 + 1 = 9 kg
    v3  trained by t3 8 kg, t3a (a failed training attempt of v3) 4 kg               baseline 0.84
        provider 12 kg / 2 training runs = 6 kg per run; no consumer; lifecycle 12 kg
    v4  trained by t4 30 kg                                                          baseline 0.90
        lifecycle 30 kg

Pareto front (less kg, more accuracy): v2 (9 kg, 0.85) and v4 (30 kg, 0.90). v1 (18 kg, 0.80)
and v3 (12 kg, 0.84) are dominated by v2: those retrains bought nothing.
"""

from __future__ import annotations

import csv
import io
import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from django.test import Client
from testsupport.rollup_rows import hourly_row

from greenkpi.inventory.models import Device, Host
from greenkpi.workloads import lifecycle
from greenkpi.workloads import services as registry
from greenkpi.workloads.models import RunStatus
from greenkpi.workloads.selectors import sci_ai

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
H = timedelta(hours=1)

# (run key, kind, version it belongs to, produced it?, kg, functional units)
RUNS = [
    ("t1", "training", "v1", True, 10.0, None),
    ("d1", "data-prep", "v1", False, 2.0, None),
    ("e1", "evaluation", "v1", False, 1.0, None),
    ("s1", "inference", "v1", False, 5.0, 5_000.0),
    ("t2", "training", "v2", True, 6.0, None),
    ("s2", "inference", "v2", False, 2.0, 2_000.0),
    ("s2b", "inference", "v2", False, 1.0, None),
    ("t3", "training", "v3", True, 8.0, None),
    ("t3a", "training", "v3", False, 4.0, None),
    ("t4", "training", "v4", True, 30.0, None),
]
BASELINES = {"v1": 0.80, "v2": 0.85, "v3": 0.84, "v4": 0.90}


def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    versions = pd.DataFrame(
        {
            "version": list(BASELINES),
            "status": ["retired", "retired", "retired", "deployed"],
            "parameters": [float("nan")] * 4,
            "training_tokens": [float("nan")] * 4,
            "metric_value": list(BASELINES.values()),
        }
    )
    runs = pd.DataFrame(
        {
            "version": [r[2] for r in RUNS],
            "kind": [r[1] for r in RUNS],
            "functional_unit": ["inference" if r[5] else "" for r in RUNS],
            "functional_units": [r[5] or 0.0 for r in RUNS],
            "kgco2e": [r[4] for r in RUNS],
        }
    )
    return versions, runs


def by_version(frame: pd.DataFrame) -> dict[str, dict]:
    return frame.set_index("version").to_dict("index")


def test_provider_and_consumer_scores_and_the_front_by_hand():
    versions, runs = frames()
    out = by_version(
        lifecycle.sci_for_ai(
            versions,
            runs,
            provider_unit="training-run",
            consumer_unit="1k-inferences",
            higher_is_better=True,
        )
    )
    assert out["v1"]["provider_kgco2e"] == pytest.approx(13.0)
    assert out["v1"]["provider_sci_kgco2e"] == pytest.approx(13.0)
    assert out["v1"]["consumer_sci_kgco2e"] == pytest.approx(1.0)
    assert out["v1"]["lifecycle_kgco2e"] == pytest.approx(18.0)
    assert out["v2"]["consumer_kgco2e"] == pytest.approx(3.0)  # every inference run
    assert out["v2"]["consumer_sci_kgco2e"] == pytest.approx(1.0)  # counted runs only
    assert out["v2"]["lifecycle_kgco2e"] == pytest.approx(9.0)
    assert out["v3"]["provider_sci_kgco2e"] == pytest.approx(6.0)  # 12 kg / 2 training runs
    assert math.isnan(out["v3"]["consumer_sci_kgco2e"])
    assert {v for v, row in out.items() if row["on_front"]} == {"v2", "v4"}
    assert out["v1"]["dominated_by"] == "v2" and out["v3"]["dominated_by"] == "v2"


def test_lower_is_better_flips_the_front():
    versions, runs = frames()
    out = by_version(
        lifecycle.sci_for_ai(
            versions,
            runs,
            provider_unit="training-run",
            consumer_unit="1k-inferences",
            higher_is_better=False,  # e.g. an error rate: v1's 0.80 is now the best
        )
    )
    # v2 (9 kg, 0.85) is the cheapest; v3 (12 kg, 0.84) and v1 (18 kg, 0.80) each buy a lower
    # value for more kg; v4 (30 kg, 0.90) is worse than all of them for the most kg
    assert {v for v, row in out.items() if row["on_front"]} == {"v1", "v2", "v3"}
    assert out["v4"]["dominated_by"] == "v2"


def test_per_training_tokens_and_per_parameter_units():
    versions, runs = frames()
    versions["training_tokens"] = [2e9, float("nan"), 0.0, 1e6]
    versions["parameters"] = [3e8, 1e9, float("nan"), float("nan")]
    tokens = by_version(
        lifecycle.sci_for_ai(
            versions,
            runs,
            provider_unit="1m-training-tokens",
            consumer_unit="1k-inferences",
            higher_is_better=True,
        )
    )
    assert tokens["v1"]["provider_sci_kgco2e"] == pytest.approx(13.0 / 2_000)  # per 1M tokens
    assert math.isnan(tokens["v2"]["provider_sci_kgco2e"])  # not declared
    assert math.isnan(tokens["v3"]["provider_sci_kgco2e"])  # 0 tokens: no score, not infinity
    assert tokens["v4"]["provider_sci_kgco2e"] == pytest.approx(30.0)
    params = by_version(
        lifecycle.sci_for_ai(
            versions,
            runs,
            provider_unit="1b-parameters",
            consumer_unit="1k-inferences",
            higher_is_better=True,
        )
    )
    assert params["v1"]["provider_sci_kgco2e"] == pytest.approx(13.0 / 0.3)  # per 1B parameters
    assert params["v2"]["provider_sci_kgco2e"] == pytest.approx(6.0)


def test_per_million_tokens_counts_only_token_runs():
    versions, runs = frames()
    runs.loc[runs["version"] == "v1", "functional_unit"] = "tokens"
    runs.loc[(runs["version"] == "v1") & (runs["kind"] == "inference"), "functional_units"] = 2.5e6
    out = by_version(
        lifecycle.sci_for_ai(
            versions,
            runs,
            provider_unit="training-run",
            consumer_unit="1m-tokens",
            higher_is_better=True,
        )
    )
    assert out["v1"]["consumer_sci_kgco2e"] == pytest.approx(5.0 / 2.5)  # 2 kg per 1M tokens
    assert math.isnan(out["v2"]["consumer_sci_kgco2e"])  # its runs counted inferences


# --- through the database, the read layer and the pages ---


@pytest.fixture
def ranker(acme):
    model, _ = registry.model_register(
        team=acme.nlp, key="ranker", policy={"primary_metric": "accuracy"}
    )
    host = Host.objects.create(organisation=acme, hostname="sci-node", default_team=acme.nlp)
    gpu = Device.objects.create(host=host, kind="gpu", uuid="GPU-sci-0")
    made = {}
    for i, (key, kind, version, produced, kg, units) in enumerate(RUNS):
        start = T0 + i * H
        run, _ = registry.run_open(model=model, key=key, kind=kind, started_at=start)
        registry.run_close(
            run=run,
            status=RunStatus.FAILED if key == "t3a" else RunStatus.SUCCEEDED,
            ended_at=start + H,
            functional_units=units,
            functional_unit="inference" if units else "",
        )
        made[key] = (run, version, produced)
        hourly_row(
            acme,
            start,
            device=gpu,
            team=acme.nlp,
            model_key=model.key,
            run_key=key,
            energy_kwh=kg * 2,
            intensity_g_per_kwh=500.0,
            market_g_per_kwh=500.0,
            location_kg=kg,
        )
    for name, baseline in BASELINES.items():
        trained_by = next(run for run, v, produced in made.values() if v == name and produced)
        version, _ = registry.version_register(
            model=model, version=name, baseline_value=baseline, trained_by=trained_by
        )
        for run, v, produced in made.values():
            if v == name and not produced:
                run.version = version
                run.save(update_fields=["version"])
    return model


@pytest.mark.django_db
def test_the_selector_reads_the_runs_of_each_version_through_the_read_layer(ranker):
    out = by_version(sci_ai.sci_ai_frame(model=ranker))
    assert list(out) == ["v1", "v2", "v3", "v4"]
    assert out["v1"]["provider_sci_kgco2e"] == pytest.approx(13.0)
    assert out["v1"]["consumer_sci_kgco2e"] == pytest.approx(1.0)
    assert out["v2"]["lifecycle_kgco2e"] == pytest.approx(9.0)
    assert out["v3"]["provider_sci_kgco2e"] == pytest.approx(6.0)
    assert {v for v, row in out.items() if row["on_front"]} == {"v2", "v4"}


@pytest.mark.django_db
def test_the_model_page_table_chart_and_csv(ranker, people):
    client = Client()
    client.force_login(people["nina"])  # manager of nlp
    page = client.get(f"/models/{ranker.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="sci-ai"' in html
    row_v1 = html[html.index('data-version="v1"') :].split("</tr>")[0]
    assert "13.0 kgCO2e per training run" in row_v1 and "dominated by v2" in row_v1
    row_v2 = html[html.index('data-version="v2"') :].split("</tr>")[0]
    assert "on the front" in row_v2 and "1.00 kgCO2e per 1,000 inferences" in row_v2
    figure = client.get(f"/models/{ranker.pk}/sci-ai.json")
    assert figure.status_code == 200
    names = [t["name"] for t in figure.json()["data"]]
    assert names == ["Pareto front", "On the front", "Dominated (bought nothing)"]
    rows = list(csv.DictReader(io.StringIO(client.get(f"/models/{ranker.pk}/sci-ai.csv").text)))
    assert [r["version"] for r in rows] == ["v1", "v2", "v3", "v4"]


@pytest.mark.django_db
def test_units_are_declared_through_the_registry_api(acme, people):
    import orjson

    client = Client()
    client.force_login(people["nina"])
    body = {
        "team": "nlp",
        "key": "llm",
        "policy": {"sci_provider_unit": "1m-training-tokens", "sci_consumer_unit": "1m-tokens"},
    }
    made = client.post("/api/v1/models/", orjson.dumps(body), content_type="application/json")
    assert made.status_code == 201, made.content
    model_id = made.json()["id"]
    bad = client.post(
        "/api/v1/models/",
        orjson.dumps({**body, "policy": {"sci_provider_unit": "per-gpu"}}),
        content_type="application/json",
    )
    assert bad.status_code == 400 and "sci_provider_unit" in bad.content.decode()
    version = client.post(
        f"/api/v1/models/{model_id}/versions/",
        orjson.dumps({"version": "1", "training_tokens": 2_000_000_000, "parameters": 7 * 10**9}),
        content_type="application/json",
    )
    assert version.status_code == 201, version.content
    from greenkpi.workloads.models import MLModel

    model = MLModel.objects.get(pk=model_id)
    assert model.sci_provider_unit == "1m-training-tokens"
    stored = model.versions.get()
    assert (stored.training_tokens, stored.parameters) == (2_000_000_000, 7 * 10**9)


@pytest.mark.django_db
def test_the_model_page_says_when_sci_figures_were_computed_under_an_older_method(ranker, people):
    """Issue 14: SCI's O became Scope 2 on direct factors in gk-2026.2. Rows still under gk-2026.1
    (not yet recomputed) make the page say so and what it means; current rows make it silent."""
    from greenkpi.carbon.methodology import METHODOLOGY_VERSION
    from greenkpi.kpis.models import HourlyRollup

    client = Client()
    client.force_login(people["nina"])
    assert sci_ai.methodology_versions(model=ranker) == [METHODOLOGY_VERSION]
    html = client.get(f"/models/{ranker.pk}/").content.decode()
    assert 'data-testid="sci-method-change"' not in html
    assert "on direct grid factors" in html

    HourlyRollup.objects.filter(run_key="t1").update(methodology_version="gk-2026.1")
    assert sci_ai.methodology_versions(model=ranker) == ["gk-2026.1", METHODOLOGY_VERSION]
    html = client.get(f"/models/{ranker.pk}/").content.decode()
    note = html[html.index('data-testid="sci-method-change"') :].split("</p>")[0]
    assert "methodology gk-2026.1" in note and f"current {METHODOLOGY_VERSION}" in note
    assert "lifecycle grid factors" in note and "Methodology changes" in note
