"""Reads behind the models list and the team page's links: many models at once, in a fixed number
of queries whatever the number of models or runs (the dashboard's query-count tests hold it)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta

import pandas as pd
from django.db.models import (
    CharField,
    FilteredRelation,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)

from greenkpi.kpis.read.sql import EpochSeconds
from greenkpi.lib.periods import HOUR, hour_floor
from greenkpi.workloads import lifecycle
from greenkpi.workloads.models import (
    TRAINING_KINDS,
    MLModel,
    ModelVersion,
    Run,
    RunKind,
    Verdict,
    VersionStatus,
)
from greenkpi.workloads.selectors.source import model_sums, whole_days

MODEL_LIST_COLUMNS = [
    "model_id",
    "team_id",
    "team",
    "model",
    "name",
    "deployed_version",
    "training_energy_kwh",
    "inference_energy_kwh",
    "other_energy_kwh",
    "energy_kwh",
    "training_kgco2e",
    "inference_kgco2e",
    "other_kgco2e",
    "kgco2e",
    "last_training_run_id",
    "last_training_run",
    "last_training_started_utc",
    "last_training_ended_utc",
    "last_training_status",
    "verdict",
    "verdict_label",
    "need",
    "inferences",
    "sci_kgco2e_per_1000_inferences",
]
SORTS = {
    "energy": (["energy_kwh", "team", "model"], [True, True, True]),
    "-energy": (["energy_kwh", "team", "model"], [False, True, True]),
    "co2e": (["kgco2e", "team", "model"], [True, True, True]),
    "-co2e": (["kgco2e", "team", "model"], [False, True, True]),
    "name": (["team", "model"], [True, True]),
}
DEFAULT_SORT = "-energy"
RUN_MARGIN = timedelta(days=1)
VERDICT_LABELS = dict(Verdict.choices)


class BadSort(ValueError):
    """An unknown ``?sort=`` (a 400 with the accepted values)."""


# The registered models as the list shows them, in the list's tie order (team slug, key).
MODEL_COLUMNS = [
    "model_id",
    "team_id",
    "model",
    "name",
    "team",
    "verdict",
    "need",
    "deployed_version",
]
RUN_COLUMNS = [
    "model_id",
    "run_id",
    "run_key",
    "kind",
    "status",
    "started_at",
    "ended_at",
    "functional_unit",
    "functional_units",
]


def runs_of(model_ids: Iterable[int] | QuerySet) -> pd.DataFrame:
    """Every run of these models: kinds (phases), inference counts (SCI), the latest training.
    Times come as epoch microseconds (aware UTC datetime64 here): Django's per-value timestamp
    loader was ~40 % of the read for 2,000 runs."""
    rows = (
        Run.objects.filter(model_id__in=model_ids)
        .annotate(started_s=EpochSeconds("started_at"), ended_s=EpochSeconds("ended_at"))
        .values_list(
            "model_id",
            "pk",
            "key",
            "kind",
            "status",
            "started_s",
            "ended_s",
            "functional_unit",
            "functional_units",
        )
    )
    frame = pd.DataFrame.from_records(list(rows.order_by()), columns=RUN_COLUMNS)
    for column in ("started_at", "ended_at"):
        micros = (frame[column].astype("float64") * 1e6).round()
        frame[column] = pd.to_datetime(micros.astype("Int64"), unit="us", utc=True)
    return frame


def models_frame(*, organisation_id: int, team_ids: Iterable[int]) -> pd.DataFrame:
    """Visible models with their assessment and deployed version, one query (MODEL_COLUMNS)."""
    deployed = ModelVersion.objects.filter(model=OuterRef("pk"), status=VersionStatus.DEPLOYED)
    rows = (
        MLModel.objects.filter(team__organisation_id=organisation_id, team_id__in=list(team_ids))
        .annotate(deployed_version=Subquery(deployed.values("version")[:1]))
        .order_by("team__slug", "key")
        .values_list(
            "pk",
            "team_id",
            "key",
            "name",
            "team__name",
            "assessment__verdict",
            "assessment__need",
            "deployed_version",
        )
    )
    return pd.DataFrame.from_records(list(rows), columns=MODEL_COLUMNS)


def latest_training(runs: pd.DataFrame) -> pd.DataFrame:
    """Each model's latest training run (by start, then id), indexed by model id."""
    training = runs[runs["kind"].isin(TRAINING_KINDS)].sort_values(
        ["started_at", "run_id"], ascending=False, kind="stable"
    )
    return training.drop_duplicates("model_id").set_index("model_id")


IN_RANGE_COLUMNS = [
    "team_id",
    "model_key",
    "run_key",
    "energy_kwh",
    "operational_kgco2e",
    "embodied_kgco2e",
]
SCI_COLUMNS = ["team_id", "model_key", "run_key", "operational_kgco2e", "embodied_kgco2e"]
OTHER_PHASES = ("evaluation", lifecycle.UNREGISTERED)


def model_summaries(
    *,
    organisation_id: int,
    team_ids: Iterable[int],
    start: datetime,
    end: datetime,
    sort: str = DEFAULT_SORT,
) -> pd.DataFrame:
    """One row per visible model: energy and kgCO2e (O + M) in [start, end) split training /
    inference / other (evaluation runs and rollups whose run key no registered run has), the
    latest training run, the current verdict, and SCI per 1,000 inferences of the inference runs
    that ended in the range (their whole totals: (O + M) x 1000 / inferences). Five queries;
    column-wise over the models (a loop over 500 models' dicts was a third of the page)."""
    if sort not in SORTS:
        raise BadSort(f"sort must be one of {', '.join(SORTS)}")
    team_ids = list(team_ids)
    models = models_frame(organisation_id=organisation_id, team_ids=team_ids)
    if models.empty:
        return pd.DataFrame(columns=MODEL_LIST_COLUMNS)
    # Every run of the visible models: kinds (phases), inference counts (SCI), latest training.
    runs = runs_of(
        Run.objects.filter(
            model__team__organisation_id=organisation_id, model__team_id__in=team_ids
        ).values("model_id")
    )
    # Filtered on the teams only: (team, key) pairs of no registered model are dropped by the
    # merge, and an IN list of 500 model keys cost more than the rows it removes.
    in_range = model_sums(
        organisation_id=organisation_id,
        start=start,
        end=end,
        by=["team_id", "model_key", "run_key"],
        where={"team_id": list(team_ids)},
    )[IN_RANGE_COLUMNS].astype({"team_id": "int64"})
    ids = models[["team_id", "model", "model_id"]].rename(columns={"model": "model_key"})
    in_range = in_range.merge(ids, on=["team_id", "model_key"], how="inner")
    in_range = in_range.merge(
        runs[["model_id", "run_key", "kind"]], on=["model_id", "run_key"], how="left"
    )
    kinds = in_range["kind"].fillna("")
    in_range["phase"] = kinds.map({k: lifecycle.phase_of(k) for k in kinds.unique()})
    in_range["kgco2e"] = in_range["operational_kgco2e"] + in_range["embodied_kgco2e"]
    by_phase = in_range.groupby(["model_id", "phase"])[["energy_kwh", "kgco2e"]].sum()
    # Per measure, one column per phase in the models' order (0 where a model has none), pivoted
    # once and shared by the training, inference and other columns below.
    tables = {
        measure: by_phase[measure]
        .unstack("phase")
        .reindex(models["model_id"])
        .fillna(0.0)
        .reset_index(drop=True)
        for measure in ("energy_kwh", "kgco2e")
        if not by_phase.empty
    }

    def part(measure: str, phases: tuple[str, ...]) -> pd.Series:
        total = pd.Series(0.0, index=models.index)
        table = tables.get(measure)
        for phase in phases:
            if table is not None and phase in table:
                total = total + table[phase]
        return total

    frame = pd.DataFrame(
        {
            "model_id": models["model_id"],
            "team_id": models["team_id"],
            "team": models["team"],
            "model": models["model"],
            "name": [n or k for n, k in zip(models["name"], models["model"], strict=True)],
            "deployed_version": models["deployed_version"].fillna(""),
        }
    )
    for column in ("energy_kwh", "kgco2e"):
        for phase in ("training", "inference"):
            frame[f"{phase}_{column}"] = part(column, (phase,))
        frame[f"other_{column}"] = part(column, OTHER_PHASES)
        frame[column] = (
            frame[f"training_{column}"] + frame[f"inference_{column}"] + frame[f"other_{column}"]
        )
    latest = latest_training(runs).reindex(models["model_id"]).reset_index(drop=True)
    frame["last_training_run_id"] = pd.Series(
        [None if pd.isna(i) else int(i) for i in latest["run_id"]], dtype=object
    )
    frame["last_training_run"] = latest["run_key"].fillna("")
    for when in ("started", "ended"):
        frame[f"last_training_{when}_utc"] = latest[f"{when}_at"].dt.tz_localize(None)
    frame["last_training_status"] = latest["status"].fillna("")
    frame["verdict"] = models["verdict"].fillna("")
    frame["verdict_label"] = [VERDICT_LABELS.get(v, "") if v else "" for v in frame["verdict"]]
    frame["need"] = models["need"].astype("float64")
    sci = _sci_by_model(organisation_id, runs, models, start, end, in_range)
    frame["inferences"] = [sci.get(i, (0.0, 0.0))[0] for i in frame["model_id"]]
    frame["sci_kgco2e_per_1000_inferences"] = [
        sci.get(i, (0.0, float("nan")))[1] for i in frame["model_id"]
    ]
    text = ["team", "model", "name", "deployed_version", "last_training_run"]
    text += ["last_training_status", "verdict", "verdict_label"]
    frame = frame[MODEL_LIST_COLUMNS].astype(dict.fromkeys(text, "str"))
    by, ascending = SORTS[sort]
    return frame.sort_values(by, ascending=ascending, kind="stable").reset_index(drop=True)


def _sci_by_model(
    organisation_id: int,
    runs: pd.DataFrame,
    models: pd.DataFrame,
    start: datetime,
    end: datetime,
    in_range: pd.DataFrame,
) -> dict[int, tuple[float, float]]:
    """{model id: (inferences, kgCO2e per 1,000 inferences)} over the inference runs that ended in
    [start, end) with a count of inferences: Σ(O + M) x 1000 / Σ R, each run's whole totals.
    ``in_range``: the range's sums per (team, model key, run key), already read."""
    if runs.empty:
        return {}
    ended = runs["ended_at"]
    served = runs[
        (runs["kind"] == RunKind.INFERENCE)
        & runs["functional_unit"].isin(lifecycle.INFERENCE_UNITS)
        & (runs["functional_units"].astype("float64") > 0)
        & (ended >= pd.Timestamp(start))
        & (ended < pd.Timestamp(end))
    ]
    if served.empty:
        return {}
    keys = dict(
        zip(
            models["model_id"].tolist(),
            zip(models["team_id"].tolist(), models["model"].tolist(), strict=True),
            strict=True,
        )
    )
    # Only the hours around these runs are read (a day either side for late registration and
    # clock skew), in the table the range itself reads: whole days -> DailyRollup.
    first = served["started_at"].min().to_pydatetime() - RUN_MARGIN
    last = ended[served.index].max().to_pydatetime() + RUN_MARGIN
    if whole_days(start, end):
        first = datetime.combine(first.date(), time.min, tzinfo=UTC)
        last = datetime.combine(last.date() + timedelta(days=1), time.min, tzinfo=UTC)
    wanted = {
        "team_id": sorted({keys[i][0] for i in served["model_id"]}),
        "model_key": sorted({keys[i][1] for i in served["model_id"]}),
        "run_key": sorted(set(served["run_key"])),
    }

    def read(a: datetime, b: datetime) -> pd.DataFrame:
        return model_sums(
            organisation_id=organisation_id,
            start=a,
            end=b,
            by=["team_id", "model_key", "run_key"],
            where=wanted,
            columns=("operational_location_kgco2e", "embodied_kgco2e"),
        )[SCI_COLUMNS]

    # The range's sums are already read (in_range): only what [first, last) holds outside the
    # range is read here, usually a few days or nothing (one read instead of two). A run's rows
    # of the range outside [first, last) count too: they are the run's, and SCI wants its whole
    # totals (the margin only bounds the read).
    # No rollup is later than the current hour: a range ending today needs no read after it.
    last = min(last, hour_floor(datetime.now(UTC)) + HOUR)
    outside = [(first, min(last, start)), (max(first, end), last)]
    parts = [in_range[SCI_COLUMNS]] + [read(a, b) for a, b in outside if a < b]
    totals = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    totals = totals[totals["run_key"].isin(wanted["run_key"])]  # the served runs' rows only
    totals = totals.groupby(["team_id", "model_key", "run_key"], as_index=False)[
        ["operational_kgco2e", "embodied_kgco2e"]
    ].sum()
    kg = {
        (t, m, r): o + e
        for t, m, r, o, e in zip(
            *(
                totals[c].tolist()
                for c in (
                    "team_id",
                    "model_key",
                    "run_key",
                    "operational_kgco2e",
                    "embodied_kgco2e",
                )
            ),
            strict=True,
        )
    }
    work = served.assign(
        kgco2e=[
            kg.get((*keys[i], r), 0.0)
            for i, r in zip(served["model_id"].tolist(), served["run_key"].tolist(), strict=True)
        ],
        functional_units=served["functional_units"].astype("float64"),
    )
    sums = work.groupby("model_id")[["kgco2e", "functional_units"]].sum()
    per_1000 = lifecycle.sci_per_thousand(sums["kgco2e"], sums["functional_units"])
    return {
        int(i): (float(units), float(kg_per_1000))
        for i, units, kg_per_1000 in zip(
            sums.index.tolist(),
            sums["functional_units"].tolist(),
            per_1000.reindex(sums.index).tolist(),
            strict=True,
        )
    }


def registered_ids(
    *, team_id: int, pairs: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int, int | None]]:
    """{(model key, run key): (model id, run id or None)} for the pairs whose model is registered
    in ``team_id``; run id None when the run key is not registered (or empty). One query: the
    models LEFT JOIN only the runs whose key was asked for."""
    pairs = list(pairs)
    model_keys = sorted({m for m, _ in pairs if m})
    run_keys = sorted({r for _, r in pairs if r})
    if not model_keys:
        return {}
    models_asked = MLModel.objects.filter(team_id=team_id, key__in=model_keys)
    if run_keys:
        rows = models_asked.annotate(
            asked=FilteredRelation("runs", condition=Q(runs__key__in=run_keys))
        ).values_list("key", "pk", "asked__key", "asked__pk")
    else:  # an empty IN in the join condition would empty the whole result
        rows = models_asked.annotate(
            none=Value(None, output_field=CharField()),
            none_id=Value(None, output_field=IntegerField()),
        ).values_list("key", "pk", "none", "none_id")
    models: dict[str, int] = {}
    runs: dict[tuple[str, str], int] = {}
    for model_key, model_id, run_key, run_id in rows:
        models[model_key] = model_id
        if run_key is not None:
            runs[(model_key, run_key)] = run_id
    return {(m, r): (models[m], runs.get((m, r))) for m, r in pairs if m in models}


def records(frame: pd.DataFrame) -> list[dict[str, object]]:
    """The summary rows as JSON-ready dicts: NaN -> None, times as ISO 8601 UTC."""
    out = []
    for row in frame.to_dict(orient="records"):
        clean: dict[str, object] = {}
        for key, value in row.items():
            if isinstance(value, pd.Timestamp):
                clean[key] = value.isoformat() + "Z"
            elif value is pd.NaT or (isinstance(value, float) and pd.isna(value)):
                clean[key] = None
            else:
                clean[key] = value
        out.append(clean)
    return out
