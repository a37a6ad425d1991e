"""What a retraining-need alert says: its labels, summary and annotations, from a model's stored
assessment (``workloads.RetrainingAssessment``). No queries: the evaluator hands in rows it loaded.

The verdict itself is decided in greenkpi/workloads (docs/retraining.md); an alert only reports it,
with every component, so the reader sees *why* without opening the page.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import reverse

from greenkpi.workloads.models import RetrainingAssessment, Verdict
from greenkpi.workloads.need import effective_floor

# Overdue means performance is at or past the floor: never wait, page someone.
SEVERITY = {Verdict.RECOMMENDED: "warning", Verdict.OVERDUE: "critical"}
VERDICT_TEXT = {Verdict.RECOMMENDED: "retrain recommended", Verdict.OVERDUE: "retrain overdue"}


def model_url(model_id: int) -> str:
    """Where a person sees the model's assessment, verdict history and retrains: its dashboard page
    (the API's /api/v1/models/<id>/retraining/ is for scripts, not for someone reading an email)."""
    return f"{settings.SITE_URL}{reverse('dashboard:model-detail', args=[model_id])}"


def _r(x: float | None, digits: int = 6) -> float | None:
    return None if x is None else round(float(x), digits)


def cost_test(row: RetrainingAssessment) -> dict[str, Any]:
    """The carbon cost test as the verdict saw it: expected gain per expected kgCO2e vs the
    model's minimum (``not set``: the policy has none; ``cost unknown``: no measured past run)."""
    minimum = row.model.min_gain_per_kgco2e
    gain, kg = row.expected_gain, row.expected_kgco2e
    per_kg = gain / kg if gain is not None and kg else None
    if minimum is None:
        result = "not set"
    elif per_kg is None:
        result = "cost unknown"
    else:
        result = "passed" if per_kg >= minimum else "failed"
    return {
        "expected_gain": _r(gain),
        "expected_energy_kwh": _r(row.expected_energy_kwh),
        "expected_kgco2e": _r(kg),
        "gain_per_kgco2e": _r(per_kg),
        "min_gain_per_kgco2e": minimum,
        "result": result,
    }


def annotations(row: RetrainingAssessment) -> dict[str, Any]:
    model = row.model
    floor = (
        effective_floor(row.baseline_value, model.metric_floor, model.higher_is_better)
        if row.baseline_value is not None
        else None
    )
    return {
        "severity": SEVERITY[Verdict(row.verdict)],
        "verdict": row.verdict,
        "verdict_since": row.verdict_since.isoformat(),
        "assessed_at": row.computed_at.isoformat(),
        "model": {"id": model.pk, "team": model.team.slug, "key": model.key, "name": model.name},
        "version": row.version.version if row.version_id else None,
        "model_url": model_url(model.pk),
        "components": {
            "need": _r(row.need),
            "performance": _r(row.perf_score),
            "drift": _r(row.drift_score),
            "staleness": _r(row.age_score),
        },
        "metric": {
            "name": model.primary_metric,
            "value": row.metric_value,
            "baseline": row.baseline_value,
            "floor": _r(floor),
            "higher_is_better": model.higher_is_better,
        },
        "age_days": _r(row.age_days, 2),
        "max_age_days": model.max_age_days,
        "cost_test": cost_test(row),
        "reasons": list(row.reasons),
    }


def summary(row: RetrainingAssessment) -> str:
    """One line (Slack, plain-text lists): verdict, R and its components, metric, cost test."""
    model = row.model
    text = (
        f"Model {model.team.slug}/{model.key}: {VERDICT_TEXT[Verdict(row.verdict)]}, need "
        f"{row.need:.2f} (performance {row.perf_score:.2f}, drift {row.drift_score:.2f}, "
        f"staleness {row.age_score:.2f})"
    )
    if row.metric_value is not None and row.baseline_value is not None:
        text += (
            f"; {model.primary_metric} {row.metric_value:.4g} vs baseline {row.baseline_value:.4g}"
        )
    test = cost_test(row)
    if test["gain_per_kgco2e"] is not None:
        text += (
            f"; cost test {test['gain_per_kgco2e']:.4g} points/kgCO2e for an expected "
            f"{test['expected_kgco2e']:.4g} kgCO2e ({test['result']})"
        )
    return f"{text} - {model_url(model.pk)}"
