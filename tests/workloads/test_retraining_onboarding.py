"""Issue 14 item 10: a model onboarded with history. Drift reports from before the first
registered version's deployment count for it; a later version starts afresh at its deployment.
The expected gain is shown with its unit, points of the primary metric per kgCO2e.

One feature, Jensen-Shannon 0.05 against a threshold of 0.1, importance 1: score 0.05 / 0.1 = 0.5.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from greenkpi.workloads import retraining
from greenkpi.workloads import services as registry
from greenkpi.workloads.models import RetrainingAssessment

T0 = datetime(2026, 5, 11, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def report(model, at):
    feature = registry.FeatureInput(feature="age", statistic="js", value=0.05, threshold=0.1)
    return registry.drift_report_create(model=model, window_end=at, features=[feature])


def test_drift_before_the_first_deployment_counts_for_the_onboarded_version(acme):
    model, _ = registry.model_register(team=acme.nlp, key="bert")
    report(model, T0 - 10 * DAY)  # sent while the model had no version yet
    first, _ = registry.version_register(model=model, version="1", baseline_value=0.9)
    registry.version_deploy(version=first, at=T0 - DAY)
    assessment = retraining.assessment_recompute(model=model, now=T0)
    assert assessment.drift_score == pytest.approx(0.5)

    second, _ = registry.version_register(model=model, version="2", baseline_value=0.9)
    registry.version_deploy(version=second, at=T0 + timedelta(hours=1))
    later = retraining.assessment_recompute(model=model, now=T0 + timedelta(hours=2))
    assert later.version == second
    assert later.drift_score == 0.0  # the report was about version 1's time


def test_the_expected_gain_has_its_unit():
    row = RetrainingAssessment(expected_gain=0.04, expected_kgco2e=8.0)
    assert row.gain_per_kgco2e == pytest.approx(0.005)  # 0.04 points / 8 kgCO2e
    assert RetrainingAssessment(expected_gain=0.04, expected_kgco2e=None).gain_per_kgco2e is None
