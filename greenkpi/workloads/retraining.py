"""Recompute the retraining need of models and the efficiency of their retrains (writes).

Each recompute reads everything afresh and *replaces* the model's assessment and outcomes, so
reruns and overlapping workers converge (the model row is locked while one is written). The maths
is in ``need`` (pure); this module only gathers its inputs.
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from greenkpi.kpis import services as kpi_services
from greenkpi.kpis.models import RecomputeRun
from greenkpi.lib.retry import TRANSIENT_ERRORS
from greenkpi.workloads import need, selectors
from greenkpi.workloads.models import (
    TRAINING_KINDS,
    Evaluation,
    MLModel,
    ModelVersion,
    RetrainingAssessment,
    RetrainOutcome,
    Run,
    RunStatus,
    Verdict,
    VerdictChange,
)
from greenkpi.workloads.signals import verdict_changed

log = logging.getLogger(__name__)
DAY_S = 86_400.0


def policy_of(model: MLModel) -> need.Policy:
    return need.Policy(
        higher_is_better=model.higher_is_better,
        floor=model.metric_floor,
        max_age_days=model.max_age_days,
        min_interval_days=model.min_retrain_interval_days,
        persistence=model.persistence_evaluations,
        watch=model.need_watch,
        enter=model.need_enter,
        exit=model.need_exit,
        min_gain_per_kgco2e=model.min_gain_per_kgco2e,
    )


def _days(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds() / DAY_S


@dataclass(frozen=True, slots=True)
class Components:
    perf: float
    drift: float
    age: float
    need: float
    past_floor: bool
    metric_value: float | None
    age_days: float


def baseline_of(version: ModelVersion, evaluations: list[Evaluation]) -> float | None:
    """The version's declared baseline, else its first labelled evaluation, else its first."""
    if version.baseline_value is not None:
        return version.baseline_value
    labelled = [e for e in evaluations if e.labelled]
    first = (labelled or evaluations or [None])[0]
    return first.value if first is not None else None


@dataclass(frozen=True, slots=True)
class Evidence:
    """The deployed version's evaluations and drift scores, oldest first."""

    version: ModelVersion
    values: list[float]
    value_times: list[datetime]
    drift_scores: list[float]
    drift_times: list[datetime]
    baseline: float | None

    @property
    def moments(self) -> list[datetime]:
        return sorted(set(self.value_times) | set(self.drift_times))


def components_at(moment: datetime, evidence: Evidence, policy: need.Policy) -> Components:
    """The three scores with the latest evidence at ``moment``."""
    i = bisect.bisect_right(evidence.value_times, moment)
    current = evidence.values[i - 1] if i else None
    j = bisect.bisect_right(evidence.drift_times, moment)
    s_drift = evidence.drift_scores[j - 1] if j else 0.0
    age_days = max(0.0, _days(moment, evidence.version.trained_at))
    baseline = evidence.baseline
    s_perf, past = 0.0, False
    if current is not None and baseline is not None:
        floor = need.effective_floor(baseline, policy.floor, policy.higher_is_better)
        s_perf = need.perf_score(
            current=current,
            baseline=baseline,
            floor=floor,
            higher_is_better=policy.higher_is_better,
        )
        past = need.below_floor(current, floor, policy.higher_is_better)
    s_age = need.age_score(age_days=age_days, max_age_days=policy.max_age_days)
    return Components(
        perf=s_perf,
        drift=s_drift,
        age=s_age,
        need=need.need_score(perf=s_perf, drift=s_drift, age=s_age),
        past_floor=past,
        metric_value=current,
        age_days=age_days,
    )


def assessment_recompute(*, model: MLModel, now: datetime | None = None) -> RetrainingAssessment:
    """Fold the deployed version's evidence through the hysteresis and decide the verdict now."""
    now = now or timezone.now()
    policy = policy_of(model)
    version = selectors.deployed_version(model=model)
    fields: dict[str, object]
    if version is None:
        fields = {
            "version": None,
            "verdict": Verdict.HEALTHY,
            "need": 0.0,
            "perf_score": 0.0,
            "drift_score": 0.0,
            "age_score": 0.0,
            "reasons": ["no deployed version"],
        }
    else:
        evaluations = [
            e
            for e in selectors.primary_evaluations(model=model, version=version)
            if e.window_end <= now
        ]
        # A model onboarded today brings its history: drift reports from before the first
        # registered version's deployment count for it (issue 14 item 10). A later version starts
        # afresh at its deployment (the earlier reports were about its predecessor).
        onboarding = selectors.is_first_version(model=model, version=version)
        reports = [
            r
            for r in selectors.drift_reports_since(
                model=model, version=version, since=None if onboarding else version.deployed_at
            )
            if r.window_end <= now
        ]
        baseline = baseline_of(version, evaluations)
        evidence = Evidence(
            version=version,
            values=[e.value for e in evaluations],
            value_times=[e.window_end for e in evaluations],
            drift_scores=[r.score for r in reports],
            drift_times=[r.window_end for r in reports],
            baseline=baseline,
        )
        # Every evaluation and drift report is one evidence point of the persistence count.
        points = [components_at(m, evidence, policy) for m in evidence.moments]
        state = need.fold(((p.need, p.past_floor) for p in points), policy)
        now_c = components_at(now, evidence, policy)
        last_end = selectors.last_retrain_end(model=model, before=now)
        since_retrain = _days(now, last_end) if last_end else None
        cost = need.expected_retrain_cost(selectors.past_training_costs(model=model, before=now))
        gain = None
        if baseline is not None:
            floor = need.effective_floor(baseline, policy.floor, policy.higher_is_better)
            gain = need.expected_gain(
                need=now_c.need,
                baseline=baseline,
                floor=floor,
                higher_is_better=policy.higher_is_better,
            )
        decision = need.decide(
            state=state,
            need=now_c.need,
            past_floor=now_c.past_floor,
            age_days=now_c.age_days,
            days_since_retrain=since_retrain,
            gain=gain,
            cost=cost,
            policy=policy,
        )
        if cost.runs == 0:
            decision.reasons.append("no past training run measured: retrain cost unknown")
        fields = {
            "version": version,
            "verdict": decision.verdict.value,
            "need": now_c.need,
            "perf_score": now_c.perf,
            "drift_score": now_c.drift,
            "age_score": now_c.age,
            "metric_value": now_c.metric_value,
            "baseline_value": baseline,
            "age_days": now_c.age_days,
            "need_active": state.active,
            "streak": state.streak,
            "days_since_retrain": since_retrain,
            "expected_energy_kwh": cost.energy_kwh,
            "expected_kgco2e": cost.kgco2e,
            "expected_gain": gain,
            "reasons": decision.reasons,
        }
    return _store(model=model, fields=fields, now=now)


def _store(*, model: MLModel, fields: dict[str, object], now: datetime) -> RetrainingAssessment:
    blank = {
        "metric_value": None,
        "baseline_value": None,
        "age_days": None,
        "need_active": False,
        "streak": 0,
        "days_since_retrain": None,
        "expected_energy_kwh": None,
        "expected_kgco2e": None,
        "expected_gain": None,
    }
    with transaction.atomic():
        # The model row is the lock: two workers recomputing one model write one after the other.
        MLModel.objects.select_for_update().filter(pk=model.pk).first()
        current = RetrainingAssessment.objects.filter(model=model).first()
        previous = current.verdict if current else ""
        row = current or RetrainingAssessment(model=model)
        for name, value in {**blank, **fields}.items():
            setattr(row, name, value)
        row.computed_at = now
        if row.verdict != previous:
            row.verdict_since = now
        row.save()
        if row.verdict != previous:
            VerdictChange.objects.create(
                model=model, previous=previous, verdict=row.verdict, need=row.need, changed_at=now
            )
            transaction.on_commit(
                lambda: verdict_changed.send(
                    sender=MLModel,
                    model=model,
                    previous=previous,
                    verdict=row.verdict,
                    assessment=row,
                )
            )
    return row


def outcomes_recompute(*, model: MLModel) -> list[RetrainOutcome]:
    """Replace the efficiency record of every finished retrain of ``model``.

    A retrain is a succeeded training / fine-tuning run that produced a version while an earlier
    version had been deployed. Before = the earlier version's last primary-metric value up to the
    run's end; after = the new version's baseline (declared, else its first labelled evaluation).
    """
    policy = policy_of(model)
    runs = list(
        Run.objects.filter(model=model, kind__in=TRAINING_KINDS, status=RunStatus.SUCCEEDED)
        .exclude(ended_at=None)
        .prefetch_related("produced_versions")
    )
    totals = selectors.run_totals(model=model, run_keys=[r.key for r in runs])
    kept: list[RetrainOutcome] = []
    with transaction.atomic():
        for run in runs:
            new = next(iter(run.produced_versions.all()), None)
            previous = (
                ModelVersion.objects.filter(model=model, deployed_at__lte=run.ended_at)
                .exclude(pk=new.pk if new else None)
                .order_by("-deployed_at")
                .first()
            )
            if new is None or previous is None:
                continue
            before = (
                Evaluation.objects.filter(
                    model=model,
                    version=previous,
                    metric=model.primary_metric,
                    window_end__lte=run.ended_at,
                )
                .order_by("-window_end", "-pk")
                .first()
            )
            after = baseline_of(new, selectors.primary_evaluations(model=model, version=new))
            if before is None or after is None:
                continue
            spent = totals.get(run.key, selectors.RunTotals())
            eff = need.retrain_efficiency(
                before=before.value,
                after=after,
                higher_is_better=policy.higher_is_better,
                energy_kwh=spent.energy_kwh,
                kgco2e=spent.kgco2e,
                min_gain=model.min_gain,
                min_gain_per_kgco2e=model.min_gain_per_kgco2e,
            )
            row, _ = RetrainOutcome.objects.update_or_create(
                run=run,
                defaults={
                    "previous_version": previous,
                    "new_version": new,
                    "metric": model.primary_metric,
                    "value_before": before.value,
                    "value_after": after,
                    "gain": eff.gain,
                    "energy_kwh": spent.energy_kwh,
                    "kgco2e": spent.kgco2e,
                    "gain_per_kwh": eff.gain_per_kwh,
                    "gain_per_kgco2e": eff.gain_per_kgco2e,
                    "flagged": eff.flagged,
                    "reason": eff.reason,
                    "computed_at": timezone.now(),
                },
            )
            kept.append(row)
        RetrainOutcome.objects.filter(run__model=model).exclude(
            pk__in=[r.pk for r in kept]
        ).delete()
    return kept


def models_recompute(
    *, organisation_id: int | None = None, now: datetime | None = None
) -> RecomputeRun:
    """The periodic job: every model's outcomes and assessment, recorded as a "retraining" run.
    One model failing is recorded and does not stop the others."""
    run = kpi_services.run_start(kind="retraining")
    done = failed = 0
    errors: list[str] = []
    models = MLModel.objects.select_related("team")
    if organisation_id is not None:
        models = models.filter(team__organisation_id=organisation_id)
    try:
        for model in models.order_by("pk").iterator():
            try:
                outcomes_recompute(model=model)
                assessment_recompute(model=model, now=now)
                done += 1
            except TRANSIENT_ERRORS:
                raise
            except Exception as exc:  # a bad row must not block every other model
                log.exception("retraining recompute failed for model %s", model.pk)
                failed += 1
                errors.append(f"model {model.pk}: {exc!r}")
    except Exception as exc:
        kpi_services.run_finish(
            run, done=done, failed=failed, rows=done, error=repr(exc), crashed=True
        )
        raise
    return kpi_services.run_finish(
        run, done=done, failed=failed, rows=done, error="\n".join(errors[:20])
    )
