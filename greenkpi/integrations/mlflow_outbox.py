"""MLflow write-back of closed runs, through an outbox like the alerts' (alerts/outbox.py).

* ``export_write`` runs in the transaction that closes a run (or, for runs that close by
  themselves such as Slurm jobs, in the periodic sweep): one row per run (OneToOne), dispatched
  after commit. Only runs linked to an MLflow run (``mlflow_run_id``: given when the run was
  opened, or the ``MLFLOW_RUN_ID`` the collector tags a process's shares with) of an organisation
  with an enabled MLflow link get one.
* ``export_send`` claims the row with one conditional UPDATE (lib/outbox.py), so of two workers holding the same
  message one sends. While the run's hours still wait for a rollup recompute it waits (not an
  attempt; at most ``MAX_WAIT``), so the figures written are the final ones. MLflow down, or
  answering an error, is retried with exponential backoff; ``last_error`` says why on the run
  page; after ``MAX_ATTEMPTS`` the row is failed. Rollups never wait for MLflow.
* ``exports_sweep`` writes missing rows and re-dispatches rows a lost message left behind.

Exactly once: the claim makes one worker send; a worker killed between MLflow's answer and the
row's update re-sends once the claim lapses, and MLflow keeps one history entry per identical
(key, value, timestamp, step), so the resend adds nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from greenkpi.integrations import mlflow_rest
from greenkpi.integrations.models import MlflowExport, MlflowLink
from greenkpi.kpis import labels
from greenkpi.kpis.models import RollupWindow
from greenkpi.kpis.read import sums as read
from greenkpi.lib.outbox import claim, finish, overdue, retry_later
from greenkpi.lib.periods import hour_floor
from greenkpi.workloads.models import Run, RunStatus

log = logging.getLogger(__name__)

SEND_TASK = "greenkpi.integrations.tasks.send_mlflow_export"
SEND_LEASE_S = 120
MAX_ATTEMPTS = 8
ROLLUP_WAIT_S = 60.0  # how often a row waiting for the run's rollups looks again
MAX_WAIT = timedelta(hours=6)  # then the figures go as they are (the tag says as of when)
SWEEP_GRACE = timedelta(seconds=60)
WAITING = (MlflowExport.Status.PENDING, MlflowExport.Status.WAITING)
# Run keys the scheduler gives are one per organisation (workloads.selectors).
SCHEDULER_RUN_PREFIXES = ("slurm:", "k8s:")


@dataclass(frozen=True, slots=True)
class SendResult:
    status: str  # sent, waiting, retry, failed, skipped
    retry_in_s: float = 0.0
    error: str = ""


def dispatch(export_id: int) -> None:
    current_app.tasks[SEND_TASK].apply_async(args=[export_id])


def export_write(*, run: Run, now: datetime | None = None) -> MlflowExport | None:
    """The run's outbox row (None: not closed, not linked, or no enabled MLflow link). Must run
    inside a transaction; a second call for the same run writes nothing."""
    if run.status == RunStatus.RUNNING or not run.mlflow_run_id:
        return None
    organisation_id = run.model.team.organisation_id
    if not MlflowLink.objects.filter(organisation_id=organisation_id, enabled=True).exists():
        return None
    now = now or timezone.now()
    row, created = MlflowExport.objects.get_or_create(
        run=run,
        defaults={
            "organisation_id": organisation_id,
            "mlflow_run_id": run.mlflow_run_id,
            "created_at": now,
            "next_attempt_at": now,
        },
    )
    if created:
        transaction.on_commit(partial(dispatch, row.pk))
    return row if created else None


def run_figures(run: Run, *, now: datetime) -> dict[str, float]:
    """The run's whole-life totals, through the read layer (the run page's figures)."""
    team = run.model.team
    where: dict[str, list[object]] = {"run_key": [run.key]}
    if not run.key.startswith(SCHEDULER_RUN_PREFIXES):
        where.update(team_id=[team.pk], model_key=[run.model.key])
    frame = read.sums(
        organisation_id=team.organisation_id,
        start=read.BEGINNING,
        end=hour_floor(now) + timedelta(hours=1),
        columns=(
            "energy_kwh",
            "estimated_energy_kwh",
            "facility_energy_kwh",
            labels.SCOPE2_LOCATION.column,
            labels.SCOPE2_MARKET.column,
            labels.EMBODIED.column,
            "allocated_gpu_h",
        ),
        where=where,
    )
    sums = {c: float(frame[c].sum()) if len(frame) else 0.0 for c in frame.columns}
    location, embodied = sums[labels.SCOPE2_LOCATION.column], sums[labels.EMBODIED.column]
    return {
        "greenkpi.energy_kwh": sums["energy_kwh"],
        "greenkpi.estimated_energy_kwh": sums["estimated_energy_kwh"],
        "greenkpi.facility_energy_kwh": sums["facility_energy_kwh"],
        "greenkpi.co2e_kg": location + embodied,
        "greenkpi.co2e_scope2_location_kg": location,
        "greenkpi.co2e_scope2_market_kg": sums[labels.SCOPE2_MARKET.column],
        "greenkpi.co2e_embodied_kg": embodied,
        "greenkpi.gpu_hours": sums["allocated_gpu_h"],
    }


def _rollups_pending(run: Run) -> bool:
    """Whether an hour of the run still awaits its recompute (its figures would be too low)."""
    ended = run.ended_at or timezone.now()
    return RollupWindow.objects.filter(
        organisation_id=run.model.team.organisation_id,
        hour__gte=hour_floor(run.started_at),
        hour__lte=hour_floor(ended),
        version__gt=F("computed_version"),
    ).exists()


def _tags(run: Run, figures: dict[str, float], now: datetime) -> dict[str, str]:
    estimated = figures["greenkpi.estimated_energy_kwh"]
    site = getattr(settings, "SITE_URL", "").rstrip("/")
    tags = {
        "greenkpi.run_key": run.key,
        "greenkpi.model": run.model.key,
        "greenkpi.team": run.model.team.slug,
        "greenkpi.as_of": now.isoformat(),
        "greenkpi.energy": "partly estimated" if estimated > 0 else "measured",
        "greenkpi.co2e": f"{labels.TOTAL.name}: {labels.TOTAL.definition}",
    }
    if site:
        tags["greenkpi.url"] = f"{site}/models/{run.model_id}/runs/{run.pk}/"
    return tags


def export_send(*, export_id: int, now: datetime | None = None) -> SendResult:
    """Claim, send, record. Returns without sending when the row is not ours to send."""
    now = now or timezone.now()
    mine = claim(
        MlflowExport.objects.all(), export_id, now=now, lease_s=SEND_LEASE_S, waiting=WAITING
    )
    if mine is None:
        return SendResult("skipped")
    row = MlflowExport.objects.select_related("run__model__team").get(pk=export_id)
    run = row.run
    if _rollups_pending(run) and now - row.created_at < MAX_WAIT:
        mine.update(
            status=MlflowExport.Status.WAITING,
            next_attempt_at=now + timedelta(seconds=ROLLUP_WAIT_S),
            claimed_until=None,
            claimed_by="",
        )
        return SendResult("waiting", retry_in_s=ROLLUP_WAIT_S)
    link = MlflowLink.objects.filter(organisation_id=row.organisation_id).first()
    attempts = row.attempts + 1
    if link is None or not link.enabled:
        return _finish(mine, MlflowExport.Status.SKIPPED, attempts, "no enabled MLflow link")
    figures = run_figures(run, now=now)
    tags = _tags(run, figures, now)
    stamp = int((run.ended_at or now).timestamp() * 1000)
    try:
        mlflow_rest.log_batch(
            link.tracking_uri,
            run_id=row.mlflow_run_id,
            metrics=figures,
            tags=tags,
            timestamp_ms=stamp,
            token=link.token,
            allow_private=link.allow_private_network,
        )
    except mlflow_rest.MlflowRefused as exc:
        return _finish(mine, MlflowExport.Status.FAILED, attempts, f"refused address: {exc}")
    except mlflow_rest.MlflowUnavailable as exc:
        if attempts >= MAX_ATTEMPTS:
            error = f"gave up after {attempts} attempts: {exc}"
            return _finish(mine, MlflowExport.Status.FAILED, attempts, error)
        status = MlflowExport.Status.PENDING
        delay = retry_later(mine, status=status, attempts=attempts, error=str(exc))
        return SendResult("retry", retry_in_s=delay, error=str(exc))
    finish(
        mine,
        status=MlflowExport.Status.SENT,
        attempts=attempts,
        sent_at=timezone.now(),
        written={"metrics": figures, "tags": tags, "timestamp_ms": stamp},
    )
    return SendResult("sent")


def _finish(mine, status: str, attempts: int, error: str) -> SendResult:
    finish(mine, status=status, attempts=attempts, error=error)
    return SendResult(str(status), error=error)


def exports_sweep(*, now: datetime | None = None, limit: int = 500) -> int:
    """Rows for closed, linked runs that have none (runs that closed by themselves), and rows a
    lost message left pending; dispatches each. Returns how many were dispatched."""
    now = now or timezone.now()
    linked = MlflowLink.objects.filter(enabled=True).values("organisation_id")
    missing = (
        Run.objects.filter(
            model__team__organisation_id__in=linked,
            mlflow_export__isnull=True,
            ended_at__isnull=False,
        )
        .exclude(status=RunStatus.RUNNING)
        .exclude(mlflow_run_id="")
        .select_related("model__team")[:limit]
    )
    for run in missing:
        with transaction.atomic():
            export_write(run=run, now=now)
    rows = MlflowExport.objects.all()
    due = overdue(rows, now=now, grace=SWEEP_GRACE, waiting=WAITING, limit=limit)
    for pk in due:
        dispatch(pk)
    return len(missing) + len(due)
