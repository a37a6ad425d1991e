"""The retraining task's Celery contract and its beat entry."""

from __future__ import annotations

from django.db import InterfaceError, OperationalError

from greenkpi.kpis.models import RecomputeRun
from greenkpi.lib.retry import TRANSIENT_ERRORS
from greenkpi.schedule import BEAT_SCHEDULE
from greenkpi.workloads import retraining, tasks


def test_the_task_acks_late_and_retries_only_transient_database_errors():
    task = tasks.recompute_retraining
    assert task.acks_late is True
    assert set(task.autoretry_for) == set(TRANSIENT_ERRORS) >= {OperationalError, InterfaceError}


def test_the_beat_entry_has_an_expiry_shorter_than_its_hour():
    entry = BEAT_SCHEDULE["workloads-recompute-retraining"]
    assert entry["task"] == tasks.recompute_retraining.name
    assert 0 < entry["options"]["expires"] < 3600


def test_one_broken_model_is_recorded_and_the_others_still_run(acme_models, monkeypatch):
    real = retraining.assessment_recompute

    def flaky(*, model, now=None):
        if model.key == "bert":
            raise ValueError("a bad row")
        return real(model=model, now=now)

    monkeypatch.setattr(retraining, "assessment_recompute", flaky)
    assert tasks.recompute_retraining.apply().successful()
    run = RecomputeRun.objects.get(kind="retraining")
    assert (run.status, run.windows_done, run.windows_failed) == ("partial", 1, 1)
    assert "a bad row" in run.error
    assert acme_models["vision"].__class__.objects.get(key="resnet50").assessment.verdict == (
        "healthy"
    )
