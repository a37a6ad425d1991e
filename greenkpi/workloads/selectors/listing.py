"""Reads behind the models list and the team page's links: many models at once, in a fixed number
of queries whatever the number of models or runs (the dashboard's query-count tests hold it)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from typing import NamedTuple

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

from greenkpi.lib.periods import HOUR, hour_floor, naive_utc_stamp
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


class ModelRow(NamedTuple):
    """What the list shows of one model (plain values: model instances with their team and
    assessment cost ~80 ms for 500 models, a third of the page)."""

    pk: int
    team_id: int
    key: str
    name: str
    team_name: str
    verdict: str | None
    need: float | None
    deployed_version: str | None
    last_training_id: int | None
    last_training_key: str | None
    last_training_started: datetime | None
    last_training_ended: datetime | None
    last_training_status: str | None


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
    """Every run of these models: kinds (phases), inference counts (SCI), the latest training."""
    rows = Run.objects.filter(model_id__in=model_ids).values_list(
        "model_id",
        "pk",
        "key",
        "kind",
        "status",
        "started_at",
        "ended_at",
        "functional_unit",
        "functional_units",
    )
    return pd.DataFrame.from_records(list(rows.order_by()), columns=RUN_COLUMNS)


def models_with_latest(
    *, organisation_id: int, team_ids: Iterable[int], runs: pd.DataFrame | None = None
) -> list[ModelRow]:
    """Visible models with their assessment and deployed version (one query) and their latest
    training run, taken from ``runs`` (their runs, ``runs_of``; read when not given). Five
    correlated subqueries per model for the latest run cost ~40 ms at 500 models."""
    deployed = ModelVersion.objects.filter(model=OuterRef("pk"), status=VersionStatus.DEPLOYED)
    rows = list(
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
    if runs is None:
        runs = runs_of([r[0] for r in rows])
    training = runs[runs["kind"].isin(TRAINING_KINDS)].sort_values(
        ["started_at", "run_id"], ascending=False, kind="stable"
    )
    latest = {
        int(r.model_id): (r.run_id, r.run_key, r.started_at, r.ended_at, r.status)
        for r in training.drop_duplicates("model_id").itertuples(index=False)
    }
    none = (None, None, None, None, None)
    return [ModelRow(*row, *(_plain(v) for v in latest.get(row[0], none))) for row in rows]


def _plain(value: object) -> object:
    """NaN / NaT (pandas' empty cells) as None, numpy ints as ints, times as aware datetimes."""
    if value is None or value is pd.NaT or (isinstance(value, float) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if hasattr(value, "item"):
        return value.item()
    return value


# Tuples, not dicts: building a dict per grouped row was ~70 ms of the 500-model list.
IN_RANGE_COLUMNS = [
    "team_id",
    "model_key",
    "run_key",
    "energy_kwh",
    "operational_kgco2e",
    "embodied_kgco2e",
]
SCI_COLUMNS = ["team_id", "model_key", "run_key", "operational_kgco2e", "embodied_kgco2e"]


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
    that ended in the range (their whole totals: (O + M) x 1000 / inferences). Five queries."""
    if sort not in SORTS:
        raise BadSort(f"sort must be one of {', '.join(SORTS)}")
    team_ids = list(team_ids)
    # Every run of the visible models: kinds (phases), inference counts (SCI), latest training.
    runs = runs_of(
        Run.objects.filter(
            model__team__organisation_id=organisation_id, model__team_id__in=team_ids
        ).values("model_id")
    )
    models = models_with_latest(organisation_id=organisation_id, team_ids=team_ids, runs=runs)
    if not models:
        return pd.DataFrame(columns=MODEL_LIST_COLUMNS)
    model_ids = {(m.team_id, m.key): m.pk for m in models}
    # Filtered on the teams only: (team, key) pairs of no registered model are dropped below, and
    # an IN list of 500 model keys cost more than the rows it removes (bench/dashboard.py).
    in_range = model_sums(
        organisation_id=organisation_id,
        start=start,
        end=end,
        by=["team_id", "model_key", "run_key"],
        where={"team_id": list(team_ids)},
    )[IN_RANGE_COLUMNS]
    # Plain lists: iterating pandas' Int64 / string arrays element by element is ~10x slower.
    in_range["model_id"] = [
        model_ids.get((t, k))
        for t, k in zip(in_range["team_id"].tolist(), in_range["model_key"].tolist(), strict=True)
    ]
    in_range = in_range[in_range["model_id"].notna()].astype({"model_id": "int64"})
    kinds = runs[["model_id", "run_key", "kind"]]
    in_range = in_range.merge(kinds, on=["model_id", "run_key"], how="left")
    in_range["phase"] = [
        lifecycle.phase_of(k if isinstance(k, str) else None) for k in in_range["kind"].tolist()
    ]
    in_range["kgco2e"] = in_range["operational_kgco2e"] + in_range["embodied_kgco2e"]
    pivot = in_range.pivot_table(
        index="model_id", columns="phase", values=["energy_kwh", "kgco2e"], aggfunc="sum"
    )

    # Plain dicts: pivot.at per model and phase cost ~0.3 ms a look-up (150 ms for 500 models).
    cells = {key: pivot[key].to_dict() for key in pivot.columns}

    def part(measure: str, model_id: int, phases: tuple[str, ...]) -> float:
        total = 0.0
        for phase in phases:
            value = cells.get((measure, phase), {}).get(model_id)
            if value is not None and not pd.isna(value):
                total += float(value)
        return total

    sci = _sci_by_model(organisation_id, runs, models, start, end, in_range)
    others = ("evaluation", lifecycle.UNREGISTERED)
    records = []
    for m in models:
        training_e, inference_e = (
            part("energy_kwh", m.pk, (p,)) for p in ("training", "inference")
        )
        other_e = part("energy_kwh", m.pk, others)
        training_c, inference_c = (part("kgco2e", m.pk, (p,)) for p in ("training", "inference"))
        other_c = part("kgco2e", m.pk, others)
        units, per_1000 = sci.get(m.pk, (0.0, float("nan")))
        records.append(
            {
                "model_id": m.pk,
                "team_id": m.team_id,
                "team": m.team_name,
                "model": m.key,
                "name": m.name or m.key,
                "deployed_version": m.deployed_version or "",
                "training_energy_kwh": training_e,
                "inference_energy_kwh": inference_e,
                "other_energy_kwh": other_e,
                "energy_kwh": training_e + inference_e + other_e,
                "training_kgco2e": training_c,
                "inference_kgco2e": inference_c,
                "other_kgco2e": other_c,
                "kgco2e": training_c + inference_c + other_c,
                "last_training_run_id": m.last_training_id,
                "last_training_run": m.last_training_key or "",
                "last_training_started_utc": naive_utc_stamp(m.last_training_started),
                "last_training_ended_utc": naive_utc_stamp(m.last_training_ended),
                "last_training_status": m.last_training_status or "",
                "verdict": m.verdict or "",
                "verdict_label": VERDICT_LABELS.get(m.verdict, "") if m.verdict else "",
                "need": m.need if m.need is not None else float("nan"),
                "inferences": units,
                "sci_kgco2e_per_1000_inferences": per_1000,
            }
        )
    frame = pd.DataFrame.from_records(records, columns=MODEL_LIST_COLUMNS)
    # Ids stay ints (or None) for the page's links; pandas would make the column float with NaN.
    frame["last_training_run_id"] = pd.Series(
        [m.last_training_id for m in models],
        dtype=object,
    )
    by, ascending = SORTS[sort]
    return frame.sort_values(by, ascending=ascending, kind="stable").reset_index(drop=True)


def _sci_by_model(
    organisation_id: int,
    runs: pd.DataFrame,
    models: list[ModelRow],
    start: datetime,
    end: datetime,
    in_range: pd.DataFrame,
) -> dict[int, tuple[float, float]]:
    """{model id: (inferences, kgCO2e per 1,000 inferences)} over the inference runs that ended in
    [start, end) with a count of inferences: Σ(O + M) x 1000 / Σ R, each run's whole totals.
    ``in_range``: the range's sums per (team, model key, run key), already read."""
    if runs.empty:
        return {}
    ended = pd.to_datetime(runs["ended_at"], utc=True)
    served = runs[
        (runs["kind"] == RunKind.INFERENCE)
        & runs["functional_unit"].isin(lifecycle.INFERENCE_UNITS)
        & (runs["functional_units"].astype("float64") > 0)
        & (ended >= pd.Timestamp(start))
        & (ended < pd.Timestamp(end))
    ]
    if served.empty:
        return {}
    keys = {m.pk: (m.team_id, m.key) for m in models}
    # Only the hours around these runs are read (a day either side for late registration and
    # clock skew), in the table the range itself reads: whole days -> DailyRollup.
    first = pd.to_datetime(served["started_at"], utc=True).min().to_pydatetime() - RUN_MARGIN
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
