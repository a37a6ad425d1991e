"""The registry client against the real API (live_server), and its never-fail-the-job rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from greenkpi_collector.client import RegistryClient, RegistryError, tracked_run

from greenkpi.workloads.models import Evaluation, ModelVersion, Run

pytestmark = [pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


def test_a_training_script_opens_evaluates_and_closes_its_run(live_server, acme_token, tmp_path):
    _, secret = acme_token
    client = RegistryClient(live_server.url, secret)
    handle = client.open_run(team="nlp", model="bert", run="r-1", kind="training")
    again = client.open_run(team="nlp", model="bert", run="r-1", kind="training")
    assert again == handle  # idempotent: a restarted script gets the same run
    client.post_evaluation(team="nlp", model="bert", metric="f1", value=0.9)
    client.post_drift(
        team="nlp",
        model="bert",
        features=[
            {
                "feature": "len",
                "statistic": "psi",
                "reference_counts": [50, 50],
                "current_counts": [80, 20],
            }
        ],
    )
    closed = client.close_run(
        handle, functional_units=1, produced_version="2", baseline_value=0.9, deploy=True
    )
    assert closed["produced_version"] == "2"
    run = Run.objects.get(key="r-1")
    assert (run.status, run.functional_units, run.model.team.slug) == ("succeeded", 1.0, "nlp")
    assert ModelVersion.objects.get(version="2").status == "deployed"
    assert Evaluation.objects.get().value == 0.9


def test_the_client_surfaces_refusals_and_cannot_read(live_server, acme_token):
    _, secret = acme_token
    client = RegistryClient(live_server.url, secret)
    with pytest.raises(RegistryError) as refused:
        client.register_model(team="research", model="x")  # not a team of Acme
    assert refused.value.status == 404
    with pytest.raises(RegistryError) as bad:
        RegistryClient(live_server.url, "gkc_wrong").register_model(team="nlp", model="x")
    assert bad.value.status == 401


def test_tracked_run_closes_failed_when_the_block_raises(live_server, acme_token, tmp_path):
    _, secret = acme_token
    client = RegistryClient(live_server.url, secret)
    with (  # noqa: PT012 (the block is the job)
        pytest.raises(ZeroDivisionError),
        tracked_run(client, team="nlp", model="bert", run="r-2", directory=tmp_path) as h,
    ):
        assert h is not None
        assert list(tmp_path.iterdir())  # registered with the local agent too
        _ = 1 / 0
    assert Run.objects.get(key="r-2").status == "failed"
    with tracked_run(client, team="nlp", model="bert", run="r-3", directory=tmp_path) as h:
        client.close_run(h, functional_units=5)  # closing inside the block is fine
    run = Run.objects.get(key="r-3")
    assert (run.status, run.functional_units) == ("succeeded", 5.0)
    assert not list(tmp_path.iterdir())


def test_an_unreachable_registry_only_warns(tmp_path):
    client = RegistryClient("http://127.0.0.1:9", "gkc_x", timeout_s=1)
    ran = []
    with (
        pytest.warns(RuntimeWarning, match="cannot open run"),
        tracked_run(client, team="nlp", model="bert", run="r", directory=tmp_path) as handle,
    ):
        ran.append(handle)
    assert ran == [None]


def test_the_client_never_imports_django():
    code = (
        "import sys, greenkpi_collector.client; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('django', 'greenkpi')]; "
        "assert not bad, bad"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_tracked_run_links_the_mlflow_run_it_runs_in(
    live_server, acme_token, tmp_path, monkeypatch
):
    """Inside an MLflow run (MLFLOW_RUN_ID set), the run is linked to it: the backend writes the
    run's energy and CO2e into that MLflow run when it closes (docs/integrations.md)."""
    monkeypatch.setenv("MLFLOW_RUN_ID", "0123456789abcdef0123456789abcdef")
    client = RegistryClient(live_server.url, acme_token[1])
    with tracked_run(client, team="nlp", model="bert", run="r-ml", directory=tmp_path):
        pass
    assert Run.objects.get(key="r-ml").mlflow_run_id == "0123456789abcdef0123456789abcdef"
