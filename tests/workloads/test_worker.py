"""The retraining recompute on a real Celery worker through real Redis and PostgreSQL: a model whose
accuracy decayed is assessed *retrain recommended* by the worker, and the run is recorded."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from testsupport.celery_workers import start_worker, stop, wait_for

from greenkpi.celery import app
from greenkpi.kpis.models import RecomputeRun
from greenkpi.workloads import services, tasks
from greenkpi.workloads.models import RetrainingAssessment

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]
ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 60


@pytest.fixture
def queue(redis_url):
    """A queue of this test's own, so no other worker takes its task and none of ours leak."""
    import redis

    name = f"workloads-test-{uuid.uuid4().hex[:12]}"
    yield name
    redis.Redis.from_url(redis_url).delete(name)


def test_the_retraining_recompute_runs_on_a_real_worker(
    acme, acme_models, tmp_path, redis_url, queue
):
    model = acme_models["nlp"]
    version = model.versions.get()
    now = datetime.now(UTC)
    # 0.84 three times against a 0.90 baseline (floor 0.81): s_perf 0.667 >= 0.6, k = 3.
    for i in range(3):
        services.evaluation_create(
            model=model,
            version=version,
            metric="accuracy",
            value=0.84,
            window_end=now - timedelta(hours=3 - i),
        )
    assert not RetrainingAssessment.objects.exists()
    worker = start_worker(tmp_path, redis_url, queue)
    try:
        app.send_task(tasks.recompute_retraining.name, args=[acme.pk], queue=queue)
        wait_for(
            lambda: RecomputeRun.objects.filter(kind="retraining", status="ok").exists(),
            "the worker to finish the retraining recompute",
            tmp_path,
        )
    finally:
        stop(worker)
    verdicts = dict(RetrainingAssessment.objects.values_list("model__key", "verdict"))
    assert verdicts == {"bert": "recommended", "resnet50": "healthy"}
    run = RecomputeRun.objects.get(kind="retraining")
    assert (run.windows_done, run.windows_failed) == (2, 0)
    assert model.verdict_changes.get().verdict == "recommended"
