"""Receivers of the workloads' signals: a run closed -> its MLflow write-back row, written in
the same transaction (workloads cannot import this app: it sits above workloads)."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from greenkpi.integrations import mlflow_outbox
from greenkpi.workloads.models import Run
from greenkpi.workloads.signals import run_closed


@receiver(run_closed, dispatch_uid="integrations-mlflow-export")
def queue_mlflow_export(sender: Any, run: Run, **kwargs: Any) -> None:
    mlflow_outbox.export_write(run=run)
