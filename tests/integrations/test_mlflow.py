"""MLflow write-back against a real tracking server (``mlflow server``, SQLite, localhost): a run
closed through the registry API gets its energy, CO2e and GPU-hours written into its MLflow run,
once; MLflow down or refusing is retried with backoff and shown on the run page; a run whose
hours await a recompute waits for them. The run is read back with the MLflow client.

One server for the module (it takes ~10-60 s to start on a loaded 2-core box)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from testsupport.gunicorn import free_port
from testsupport.mlflow_server import mlflow_server

from greenkpi.integrations import mlflow_outbox, tasks
from greenkpi.integrations.models import MlflowExport, MlflowLink
from greenkpi.kpis.models import RollupWindow
from greenkpi.workloads import services

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

START = datetime(2026, 11, 16, 8, tzinfo=UTC)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as running:
        yield running


@pytest.fixture
def sent(monkeypatch):
    """Dispatches recorded (the test sends them itself, as the worker would)."""
    calls: list[int] = []
    monkeypatch.setattr(mlflow_outbox, "dispatch", calls.append)
    return calls


@pytest.fixture
def trained(acme, rollups, server, sent):
    """A vision run linked to a new MLflow run, with 3 hours of rollups on two GPUs."""
    mlflow_run_id = server.new_run(f"exp-{free_port()}")
    MlflowLink.objects.create(
        organisation=acme, tracking_uri=server.url, token="s3cret", allow_private_network=True
    )
    model, _ = services.model_register(team=acme.vision, key="resnet")
    run, _ = services.run_open(
        model=model, key="r1", kind="training", started_at=START, mlflow_run_id=mlflow_run_id
    )
    gpus = [rollups.gpu(acme, "gpu-a"), rollups.gpu(acme, "gpu-a")]
    for h in range(3):
        for gpu in gpus:
            rollups.add(
                acme,
                START + timedelta(hours=h),
                device=gpu,
                team=acme.vision,
                model_key="resnet",
                run_key="r1",
                energy_kwh=1.5,
                location_kg=0.06,
                market_kg=0.02,
                embodied_kg=0.01,
                allocated_gpu_h=1.0,
            )
    rollups.add(acme, START, device=gpus[0], team=acme.vision, model_key="resnet", run_key="r0")
    return run, mlflow_run_id


def close(client, people, run) -> None:
    client.force_login(people["alice"])
    response = client.post(
        f"/api/v1/models/{run.model_id}/runs/{run.pk}/close/",
        {"status": "succeeded", "ended_at": (START + timedelta(hours=3)).isoformat()},
        "application/json",
    )
    assert response.status_code == 200, response.content


def test_a_closed_run_is_written_into_its_mlflow_run_once(
    client, people, trained, server, sent, django_capture_on_commit_callbacks
):
    run, mlflow_run_id = trained
    with django_capture_on_commit_callbacks(execute=True):
        close(client, people, run)
    export = MlflowExport.objects.get(run=run)
    assert sent == [export.pk]  # dispatched after commit
    assert tasks.send_mlflow_export.apply(args=[export.pk]).get() == "sent"
    back = server.read_run(mlflow_run_id)
    # 3 h x 2 GPUs x 1.5 kWh; location 6 x 0.06 + embodied 6 x 0.01 (run r0 not counted)
    assert back["metrics"]["greenkpi.energy_kwh"] == pytest.approx(9.0)
    assert back["metrics"]["greenkpi.co2e_kg"] == pytest.approx(0.42)
    assert back["metrics"]["greenkpi.co2e_scope2_location_kg"] == pytest.approx(0.36)
    assert back["metrics"]["greenkpi.co2e_scope2_market_kg"] == pytest.approx(0.12)
    assert back["metrics"]["greenkpi.co2e_embodied_kg"] == pytest.approx(0.06)
    assert back["metrics"]["greenkpi.gpu_hours"] == pytest.approx(6.0)
    assert back["tags"]["greenkpi.run_key"] == "r1"
    assert back["tags"]["greenkpi.energy"] == "measured"
    assert back["tags"]["greenkpi.url"].endswith(f"/models/{run.model_id}/runs/{run.pk}/")
    # Exactly once: the same message again sends nothing; a resend after a lost answer (the
    # claim lapsed) adds no second history entry.
    assert mlflow_outbox.export_send(export_id=export.pk).status == "skipped"
    MlflowExport.objects.filter(pk=export.pk).update(status="pending")
    assert mlflow_outbox.export_send(export_id=export.pk).status == "sent"
    again = server.read_run(mlflow_run_id)
    assert all(len(h) == 1 for h in again["history"].values()), again["history"]
    # Closing again (a client retry) writes no second row.
    close(client, people, run)
    assert MlflowExport.objects.filter(run=run).count() == 1
    page = client.get(f"/models/{run.model_id}/runs/{run.pk}/")
    assert b"Written to MLflow" in page.content


def test_mlflow_down_or_refusing_is_retried_with_backoff_and_shown(
    client, people, trained, server, acme
):
    run, mlflow_run_id = trained
    MlflowLink.objects.filter(organisation=acme).update(
        tracking_uri=f"http://127.0.0.1:{free_port()}"  # nothing listens there
    )
    close(client, people, run)
    export = MlflowExport.objects.get(run=run)
    first = mlflow_outbox.export_send(export_id=export.pk)
    assert first.status == "retry" and first.retry_in_s == 30.0
    export.refresh_from_db()
    assert export.status == "pending" and export.attempts == 1
    assert export.next_attempt_at > datetime.now(UTC) + timedelta(seconds=20)
    assert "Connection" in export.last_error or "refused" in export.last_error
    page = client.get(f"/models/{run.model_id}/runs/{run.pk}/")
    assert export.last_error.encode() in page.content
    # MLflow answers 4xx (an unknown run id): retried too, with a longer wait, and shown.
    MlflowLink.objects.filter(organisation=acme).update(tracking_uri=server.url)
    MlflowExport.objects.filter(pk=export.pk).update(
        mlflow_run_id="0" * 32, next_attempt_at=datetime.now(UTC)
    )
    second = mlflow_outbox.export_send(export_id=export.pk)
    assert second.status == "retry" and second.retry_in_s == 60.0
    export.refresh_from_db()
    assert export.last_error.startswith("HTTP 404")
    # Once MLflow takes it (the right id again), it is written.
    MlflowExport.objects.filter(pk=export.pk).update(
        mlflow_run_id=mlflow_run_id, next_attempt_at=datetime.now(UTC)
    )
    assert mlflow_outbox.export_send(export_id=export.pk).status == "sent"
    assert server.read_run(mlflow_run_id)["metrics"]["greenkpi.energy_kwh"] == pytest.approx(9.0)


def test_it_waits_for_the_runs_hours_to_be_rolled_up(client, people, trained, acme):
    run, _ = trained
    RollupWindow.objects.filter(organisation=acme, hour=START + timedelta(hours=1)).update(
        version=2
    )
    close(client, people, run)
    export = MlflowExport.objects.get(run=run)
    waiting = mlflow_outbox.export_send(export_id=export.pk)
    assert waiting.status == "waiting"
    export.refresh_from_db()
    assert export.status == "waiting" and export.attempts == 0


def test_no_row_without_a_link_or_an_mlflow_run_id(client, people, acme, sent):
    model, _ = services.model_register(team=acme.vision, key="m")
    run, _ = services.run_open(model=model, key="x", kind="training", started_at=START)
    close(client, people, run)
    assert not MlflowExport.objects.exists()


def test_the_sweep_writes_rows_for_runs_that_closed_by_themselves(acme, sent):
    MlflowLink.objects.create(organisation=acme, tracking_uri="http://127.0.0.1:1")
    model, _ = services.model_register(team=acme.vision, key="slurm-jobs")
    run, _ = services.run_open(
        model=model, key="slurm:c:1", kind="training", started_at=START, mlflow_run_id="abc"
    )
    type(run).objects.filter(pk=run.pk).update(status="succeeded", ended_at=START)
    assert mlflow_outbox.exports_sweep() == 1
    assert MlflowExport.objects.get().run_id == run.pk
    assert mlflow_outbox.exports_sweep() == 0  # written once


def test_track_with_mlflow_logs_the_blocks_gpu_energy_from_the_client(server, tmp_path):
    """The collector-side option (teams without a backend link): two simulated GPUs (the real
    NVML code path over SimulatedNvml) for one hour of a fake clock, written into the MLflow run
    and read back with the MLflow client."""
    from greenkpi_collector.mlflow_log import MlflowLogger
    from greenkpi_collector.sources.sim import SIM_EPOCH, SimGpu, SimulatedNvml
    from greenkpi_collector.tracking import track

    now = [SIM_EPOCH + 1000.0]
    gpus = [SimGpu("GPU-a"), SimGpu("GPU-b", base_w=60.0, amp_w=200.0)]
    nvml = SimulatedNvml(gpus, clock=lambda: now[0])
    mlflow_run_id = server.new_run(f"client-{free_port()}")
    logger = MlflowLogger(
        run_id=mlflow_run_id,
        tracking_uri=server.url,
        intensity_g_per_kwh=50.0,
        pue=1.2,
        nvml=nvml,
        clock=lambda: now[0],
    )
    with track(team="vision", model="resnet", run="r9", directory=tmp_path, mlflow=logger):
        now[0] += 3600.0
    joules = sum(g.energy_j(now[0]) - g.energy_j(now[0] - 3600.0) for g in gpus)
    back = server.read_run(mlflow_run_id)
    assert back["metrics"]["greenkpi.energy_kwh"] == pytest.approx(joules / 3.6e6, abs=1e-9)
    assert back["metrics"]["greenkpi.gpu_hours"] == pytest.approx(2.0)
    kg = joules / 3.6e6 * 1.2 * 50.0 / 1000.0
    assert back["metrics"]["greenkpi.co2e_scope2_location_kg"] == pytest.approx(kg, rel=1e-6)
    assert back["tags"]["greenkpi.energy"].startswith("measured: NVML")


def test_track_with_mlflow_never_fails_the_job(tmp_path, monkeypatch):
    from greenkpi_collector.mlflow_log import MlflowLogger
    from greenkpi_collector.sources.sim import SimGpu, SimulatedNvml
    from greenkpi_collector.tracking import track

    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    with (
        pytest.warns(RuntimeWarning, match="no MLflow run"),
        track(team="vision", directory=tmp_path, mlflow=True),
    ):
        pass
    down = MlflowLogger(
        run_id="abc",
        tracking_uri=f"http://127.0.0.1:{free_port()}",
        nvml=SimulatedNvml([SimGpu("GPU-a")]),
    )
    with (
        pytest.warns(RuntimeWarning, match="cannot log to MLflow"),
        track(team="vision", directory=tmp_path, mlflow=down),
    ):
        ran = True
    assert ran
