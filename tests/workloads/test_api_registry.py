"""The registry API end to end: register, open and close runs, evaluations, drift reports, and
the answers to bad input; the schema documents every operation."""

from __future__ import annotations

import pytest

from greenkpi.workloads.models import DriftReport, ModelVersion, Run, VersionStatus


@pytest.fixture
def nina(as_person):
    return as_person("nina")


@pytest.fixture
def bert(nina, acme):
    response = nina.post(
        "models/",
        {
            "team": "nlp",
            "key": "bert",
            "name": "BERT intent",
            "policy": {"primary_metric": "f1", "metric_floor": 0.8, "persistence_evaluations": 2},
        },
    )
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_a_run_opens_idempotently_and_closes_with_its_units_and_version(nina, bert):
    body = {
        "key": "train-7",
        "kind": "training",
        "started_at": "2026-03-01T08:00:00Z",
        "mlflow_run_id": "abc123",
    }
    opened = nina.post(f"models/{bert}/runs/", body)
    assert opened.status_code == 201
    again = nina.post(f"models/{bert}/runs/", body)
    assert (again.status_code, again.json()["id"]) == (200, opened.json()["id"])
    run_id = opened.json()["id"]

    closed = nina.post(
        f"models/{bert}/runs/{run_id}/close/",
        {
            "ended_at": "2026-03-01T10:00:00Z",
            "functional_units": 1,
            "functional_unit": "training run",
            "produced_version": {"version": "2", "baseline_value": 0.91, "deploy": True},
        },
    )
    assert closed.status_code == 200, closed.content
    assert closed.json() == {
        "id": run_id,
        "key": "train-7",
        "status": "succeeded",
        "produced_version": "2",
    }
    version = ModelVersion.objects.get(model_id=bert, version="2")
    assert version.status == VersionStatus.DEPLOYED
    assert version.trained_by_id == run_id
    assert version.trained_at.isoformat() == "2026-03-01T10:00:00+00:00"
    run = Run.objects.get(pk=run_id)
    assert (run.functional_units, run.mlflow_run_id) == (1.0, "abc123")
    # A retried close is harmless; a contradicting one is refused.
    assert nina.post(f"models/{bert}/runs/{run_id}/close/", {}).status_code == 200
    refused = nina.post(f"models/{bert}/runs/{run_id}/close/", {"status": "failed"})
    assert refused.status_code == 400
    assert "already closed" in refused.json()["detail"]


def test_deploying_a_version_retires_the_previous_one(nina, bert):
    nina.post(f"models/{bert}/versions/", {"version": "1", "deploy": True})
    nina.post(f"models/{bert}/versions/", {"version": "2", "deploy": True})
    statuses = dict(ModelVersion.objects.filter(model_id=bert).values_list("version", "status"))
    assert statuses == {"1": "retired", "2": "deployed"}


def test_evaluations_default_to_the_deployed_version(nina, bert):
    nina.post(f"models/{bert}/versions/", {"version": "1", "deploy": True})
    body = {"metric": "f1", "value": 0.9, "window_end": "2026-03-02T00:00:00Z", "labelled": False}
    created = nina.post(f"models/{bert}/evaluations/", body)
    assert created.status_code == 201, created.content
    assert created.json()["version"] == "1"
    assert created.json()["labelled"] is False
    unknown = nina.post(f"models/{bert}/evaluations/", {**body, "version": "9"})
    assert unknown.status_code == 400
    backwards = {**body, "window_start": "2026-03-03T00:00:00Z"}
    assert nina.post(f"models/{bert}/evaluations/", backwards).status_code == 400


def test_the_server_scores_histograms_and_takes_client_statistics(nina, bert):
    response = nina.post(
        f"models/{bert}/drift-reports/",
        {
            "window_end": "2026-03-02T00:00:00Z",
            "features": [
                {
                    "feature": "length",
                    "statistic": "wasserstein",
                    "reference_counts": [50, 50],
                    "current_counts": [80, 20],
                    "bin_edges": [0, 64, 128],
                    "importance": 3,
                },
                {"feature": "lang", "statistic": "psi", "value": 0.5, "importance": 1},
            ],
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    by_name = {f["feature"]: f for f in body["features"]}
    assert by_name["length"]["value"] == pytest.approx(0.6)  # hand-worked in test_drift
    assert by_name["length"]["computed_by_server"] is True
    assert by_name["lang"]["threshold"] == 0.25
    # 0.75 x min(0.6 / 0.1, 1) + 0.25 x min(0.5 / 0.25, 1) = 1.0
    assert body["score"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "feature",
    [
        {"feature": "x", "reference_counts": [1, 2]},  # current missing
        {"feature": "x", "reference_counts": [1, 2], "current_counts": [1, 2, 3]},
        {"feature": "x", "reference_counts": [0, 0], "current_counts": [1, 1]},
        {
            "feature": "x",
            "statistic": "wasserstein",
            "reference_counts": [1],
            "current_counts": [1],
        },
        {"feature": "x"},  # neither value nor histograms
        {"feature": "x", "statistic": "ks", "value": 0.3},  # unknown statistic, no threshold
        {"feature": "x", "value": "high"},
    ],
)
def test_bad_drift_features_are_refused_with_400(nina, bert, feature):
    body = {"window_end": "2026-03-02T00:00:00Z", "features": [feature]}
    response = nina.post(f"models/{bert}/drift-reports/", body)
    assert response.status_code == 400, response.content
    assert DriftReport.objects.count() == 0


def test_a_policy_without_hysteresis_is_refused(nina, bert):
    body = {"team": "nlp", "key": "bert", "policy": {"need_enter": 0.4, "need_exit": 0.5}}
    assert nina.post("models/", body).status_code == 400


def test_the_schema_documents_the_registry(client):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in (
        "/api/v1/models/",
        "/api/v1/models/{model_id}/",
        "/api/v1/models/{model_id}/versions/",
        "/api/v1/models/{model_id}/runs/",
        "/api/v1/models/{model_id}/runs/{run_id}/close/",
        "/api/v1/models/{model_id}/evaluations/",
        "/api/v1/models/{model_id}/drift-reports/",
        "/api/v1/models/{model_id}/retraining/",
        "/api/v1/models/{model_id}/carbon/",
    ):
        assert path in paths, path
