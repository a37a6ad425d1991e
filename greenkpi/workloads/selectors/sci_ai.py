"""SCI for AI per model version (the model page's "SCI for AI" chart and table, its CSV and the
API): which runs fall in each version's provider and consumer boundary, their carbon through the
read layer (``run_sums``), and the version's primary metric. The arithmetic and the Pareto front
are ``lifecycle.sci_for_ai`` (pure). Four queries, whatever the number of versions."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pandas as pd
from django.db.models import Q

from greenkpi.kpis.read import sums as read
from greenkpi.workloads import lifecycle
from greenkpi.workloads.models import Evaluation, MLModel, Run
from greenkpi.workloads.selectors.source import run_sums

COLUMNS = lifecycle.SCI_AI_COLUMNS
# Methodology versions whose SCI meaning differs from the current one's (docs/kpis.md,
# "Methodology changes"): before gk-2026.2 SCI's O was Scope 2 on lifecycle grid factors.
OPERATIONAL_DIRECT_SINCE = "gk-2026.2"


def _metric_by_version(model: MLModel, versions: list) -> dict[int, float]:
    """The version's value of the primary metric: its baseline (at deployment) when set, else its
    latest labelled evaluation."""
    found = {v.pk: v.baseline_value for v in versions if v.baseline_value is not None}
    if model.primary_metric:
        rows = (
            Evaluation.objects.filter(
                model=model,
                metric=model.primary_metric,
                labelled=True,
                version_id__in=[v.pk for v in versions if v.pk not in found],
            )
            .order_by("version_id", "window_end", "pk")
            .values_list("version_id", "value")
        )
        for version_id, value in rows:  # ordered: the last one per version wins
            found[version_id] = value
    return found


def sci_ai_frame(*, model: MLModel) -> pd.DataFrame:
    """One row per registered version (oldest first), over the versions' whole history."""
    versions = list(model.versions.order_by("created_at", "pk"))
    if not versions:
        return pd.DataFrame(columns=COLUMNS)
    name_of = {v.pk: v.version for v in versions}
    produced = {v.trained_by_id: v.pk for v in versions if v.trained_by_id is not None}
    runs = list(
        Run.objects.filter(model=model)
        .filter(Q(version_id__in=name_of) | Q(pk__in=produced))
        .values("pk", "key", "kind", "version_id", "functional_unit", "functional_units")
    )
    sums = run_sums(
        organisation_id=model.team.organisation_id,
        team_id=model.team_id,
        model_key=model.key,
        run_keys=[r["key"] for r in runs],
    )
    kg = dict(
        zip(sums["run_key"], sums["operational_kgco2e"] + sums["embodied_kgco2e"], strict=True)
    )
    run_rows = pd.DataFrame(
        {
            # A training run belongs to the version it produced, whatever its own version says.
            "version": [name_of[produced.get(r["pk"], r["version_id"])] for r in runs],
            "kind": [r["kind"] for r in runs],
            "functional_unit": [r["functional_unit"] for r in runs],
            "functional_units": [float(r["functional_units"] or 0.0) for r in runs],
            "kgco2e": [float(kg.get(r["key"], 0.0)) for r in runs],
        },
        columns=["version", "kind", "functional_unit", "functional_units", "kgco2e"],
    )
    metric = _metric_by_version(model, versions)
    version_rows = pd.DataFrame(
        {
            "version": [v.version for v in versions],
            "status": [v.status for v in versions],
            "parameters": [v.parameters for v in versions],
            "training_tokens": [v.training_tokens for v in versions],
            "metric_value": [metric.get(v.pk) for v in versions],
        }
    ).astype({"parameters": "float64", "training_tokens": "float64", "metric_value": "float64"})
    return lifecycle.sci_for_ai(
        version_rows,
        run_rows,
        provider_unit=model.sci_provider_unit,
        consumer_unit=model.sci_consumer_unit,
        higher_is_better=model.higher_is_better,
    )


def methodology_versions(*, model: MLModel, now: datetime | None = None) -> list[str]:
    """Every methodology version the model's rollups (whole history) were computed under, so the
    page can say when its SCI figures mix methods (one read through kpis.read)."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    end = datetime.combine(today + timedelta(days=1), time.min, tzinfo=UTC)
    frame = read.sums(
        organisation_id=model.team.organisation_id,
        start=read.BEGINNING,
        end=end,
        columns=["methodology_version_min", "methodology_version_max"],
        where={"team_id": [model.team_id], "model_key": [model.key]},
    )
    if frame.empty:
        return []
    return sorted(
        {v for c in ("methodology_version_min", "methodology_version_max") for v in frame[c] if v}
    )
