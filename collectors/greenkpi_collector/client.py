"""A small client of the model registry (``/api/v1/models/``): open and close runs, post
evaluations and drift reports from a training or serving script.

Standard library only (http.client via the collector's ``Transport``); never imports Django. It
uses the collector token, which the server lets *write* to the registry of its organisation and
read nothing (docs/retraining.md, section 7). Keys are the same strings ``track()`` attributes
energy to, so a run's energy and carbon come from the collector's measurements.
"""

from __future__ import annotations

import http.client
import json
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from greenkpi_collector.tracking import track
from greenkpi_collector.transport import INGEST_PATH, Transport

MODELS_PATH = "/api/v1/models/"


class RegistryError(Exception):
    """The registry refused a request or could not be reached (``status`` None)."""

    def __init__(self, status: int | None, detail: str):
        super().__init__(f"HTTP {status}: {detail}" if status else detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True, slots=True)
class RunHandle:
    """What ``close_run`` needs: the server's ids of the model and the run."""

    model_id: int
    run_id: int
    key: str


def _iso(moment: datetime | None) -> str:
    return (moment or datetime.now(UTC)).astimezone(UTC).isoformat().replace("+00:00", "Z")


class RegistryClient:
    def __init__(
        self,
        server: str,
        token: str | Callable[[], str],
        timeout_s: float = 10.0,
        ca_file: str | None = None,
        org: str | None = None,
    ) -> None:
        secret = token
        self.transport = Transport(
            server, secret if callable(secret) else (lambda: secret), timeout_s, ca_file
        )
        self.base = self.transport.path[: -len(INGEST_PATH)]  # the server's path prefix, if any
        self.org = org
        self._models: dict[tuple[str, str], int] = {}

    @classmethod
    def from_env(cls) -> RegistryClient:
        """``GREENKPI_SERVER`` and ``GREENKPI_TOKEN``, as the agent reads them."""
        server, token = os.environ.get("GREENKPI_SERVER"), os.environ.get("GREENKPI_TOKEN")
        if not server or not token:
            raise RegistryError(None, "set GREENKPI_SERVER and GREENKPI_TOKEN")
        return cls(server, token)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST JSON to ``/api/v1/models/<path>``; the answer's JSON, or RegistryError."""
        headers = self.transport.base_headers()
        # One Transport per client, pointed at the registry path for this request.
        self.transport.path = self.base + MODELS_PATH + path
        try:
            status, _, parsed = self.transport.request(json.dumps(body).encode(), headers)
        except (OSError, http.client.HTTPException) as exc:
            raise RegistryError(None, f"{exc.__class__.__name__}: {exc}") from None
        if not 200 <= status < 300:
            detail = str((parsed or {}).get("detail") or (parsed or {}).get("title") or "")
            raise RegistryError(status, detail[:500])
        return parsed or {}

    def register_model(
        self, *, team: str, model: str, name: str = "", policy: dict[str, Any] | None = None
    ) -> int:
        """The server's id of ``model`` in ``team`` (registered if new; cached per client)."""
        cached = self._models.get((team, model))
        if cached is not None and policy is None:
            return cached
        body: dict[str, Any] = {"team": team, "key": model, "name": name}
        if policy:
            body["policy"] = policy
        if self.org:
            body["org"] = self.org
        model_id = int(self.post("", body)["id"])
        self._models[(team, model)] = model_id
        return model_id

    def open_run(
        self,
        *,
        team: str,
        model: str,
        run: str,
        kind: str = "training",
        started_at: datetime | None = None,
        version: str | None = None,
        functional_unit: str = "",
        recurrence: str = "",
        mlflow_run_id: str = "",
    ) -> RunHandle:
        """Open run ``run`` (idempotent: a retry or a restarted script gets the same run)."""
        model_id = self.register_model(team=team, model=model)
        body: dict[str, Any] = {
            "key": run,
            "kind": kind,
            "started_at": _iso(started_at),
            "functional_unit": functional_unit,
            "recurrence": recurrence,
            "mlflow_run_id": mlflow_run_id,
        }
        if version:
            body["version"] = version
        answer = self.post(f"{model_id}/runs/", body)
        return RunHandle(model_id, int(answer["id"]), run)

    def close_run(
        self,
        handle: RunHandle,
        *,
        status: str = "succeeded",
        ended_at: datetime | None = None,
        functional_units: float | None = None,
        functional_unit: str = "",
        produced_version: str | None = None,
        baseline_value: float | None = None,
        deploy: bool = False,
    ) -> dict[str, Any]:
        """Close the run with its outcome, its SCI functional-unit count and the version it made."""
        body: dict[str, Any] = {"status": status, "ended_at": _iso(ended_at)}
        if functional_units is not None:
            body["functional_units"] = functional_units
        if functional_unit:
            body["functional_unit"] = functional_unit
        if produced_version:
            body["produced_version"] = {
                "version": produced_version,
                "baseline_value": baseline_value,
                "deploy": deploy,
            }
        return self.post(f"{handle.model_id}/runs/{handle.run_id}/close/", body)

    def post_evaluation(
        self,
        *,
        team: str,
        model: str,
        metric: str,
        value: float,
        window_end: datetime | None = None,
        window_start: datetime | None = None,
        higher_is_better: bool = True,
        labelled: bool = True,
        version: str | None = None,
        samples: int | None = None,
    ) -> dict[str, Any]:
        model_id = self.register_model(team=team, model=model)
        body: dict[str, Any] = {
            "metric": metric,
            "value": value,
            "window_end": _iso(window_end),
            "higher_is_better": higher_is_better,
            "labelled": labelled,
        }
        if window_start is not None:
            body["window_start"] = _iso(window_start)
        if version:
            body["version"] = version
        if samples is not None:
            body["samples"] = samples
        return self.post(f"{model_id}/evaluations/", body)

    def post_drift(
        self,
        *,
        team: str,
        model: str,
        features: Sequence[dict[str, Any]],
        window_end: datetime | None = None,
        version: str | None = None,
    ) -> dict[str, Any]:
        """Per feature ``{"feature", "statistic", "value"}`` or ``{"feature", "statistic",
        "reference_counts", "current_counts", "bin_edges"?}`` (the server computes it)."""
        model_id = self.register_model(team=team, model=model)
        body: dict[str, Any] = {"window_end": _iso(window_end), "features": list(features)}
        if version:
            body["version"] = version
        return self.post(f"{model_id}/drift-reports/", body)


@contextmanager
def tracked_run(
    client: RegistryClient,
    *,
    team: str,
    model: str,
    run: str,
    kind: str = "training",
    directory: str | os.PathLike[str] | None = None,
    **open_kwargs: Any,
) -> Iterator[RunHandle | None]:
    """``track()`` that also opens the run in the registry on entry and closes it on exit
    (``failed`` if the block raised). Like ``track()``, it never fails the job: a registry that
    cannot be reached or refuses only warns, and the handle is None.

    The caller may close the run itself inside the block (e.g. with its unit count or the version
    it produced); the closing here then changes nothing (the server accepts a repeated close).
    """
    handle: RunHandle | None = None
    # Inside an MLflow run (MLflow sets MLFLOW_RUN_ID for `mlflow run` and its children), link
    # it: the backend writes the run's energy and CO2e into it when it closes.
    if os.environ.get("MLFLOW_RUN_ID") and not open_kwargs.get("mlflow_run_id"):
        open_kwargs["mlflow_run_id"] = os.environ["MLFLOW_RUN_ID"][:100]
    try:
        handle = client.open_run(team=team, model=model, run=run, kind=kind, **open_kwargs)
    except RegistryError as exc:
        warnings.warn(f"greenkpi: cannot open run {run!r}: {exc}", RuntimeWarning, stacklevel=3)
    failed = False
    try:
        with track(team=team, model=model, run=run, directory=directory):
            yield handle
    except BaseException:
        failed = True
        raise
    finally:
        if handle is not None:
            try:
                client.close_run(handle, status="failed" if failed else "succeeded")
            except RegistryError as exc:
                if exc.status != 400:  # 400 = already closed by the caller: fine
                    warnings.warn(
                        f"greenkpi: cannot close run {run!r}: {exc}", RuntimeWarning, stacklevel=3
                    )
