"""The MLflow tracking server's REST API, spoken from the backend with the standard library (the
backend image needs no MLflow package): ``runs/log-batch`` writes metrics and tags in one call.

Addresses are checked like webhooks (alerts.ssrf: public only unless the link allows private
networks, the resolved address pinned for the connection).
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from dataclasses import dataclass

from greenkpi.alerts import ssrf

TIMEOUT_S = 10.0
MAX_RESPONSE_BYTES = 64 * 1024
LOG_BATCH = "/api/2.0/mlflow/runs/log-batch"
USER_AGENT = "GreenKPI-MLflow/1"


class MlflowUnavailable(Exception):
    """MLflow did not answer, or answered an error; a later attempt may succeed."""


class MlflowRefused(Exception):
    """The address may not be called (retrying cannot help)."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: str


def _connection(target: ssrf.Target, address: str) -> http.client.HTTPConnection:
    if target.scheme == "https":
        context = ssl.create_default_context()
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            target.host, target.port, timeout=TIMEOUT_S, context=context
        )
        raw = socket.create_connection((address, target.port), TIMEOUT_S)
        conn.sock = context.wrap_socket(raw, server_hostname=target.host)
        return conn
    conn = http.client.HTTPConnection(target.host, target.port, timeout=TIMEOUT_S)
    conn.sock = socket.create_connection((address, target.port), TIMEOUT_S)
    return conn


def post_json(
    base_uri: str, path: str, body: dict, *, token: str = "", allow_private: bool
) -> Answer:
    """POST ``body`` as JSON to ``base_uri`` + ``path``; the status and (bounded) body."""
    url = base_uri.rstrip("/") + path
    try:
        target = ssrf.check_url(url, allow_private=allow_private)
    except ssrf.UnsafeURL as exc:
        raise MlflowRefused(str(exc)) from exc
    headers = {"content-type": "application/json", "user-agent": USER_AGENT}
    if token:
        headers["authorization"] = f"Bearer {token}"
    payload = json.dumps(body).encode()
    last: OSError | None = None
    for address in target.addresses:
        try:
            conn = _connection(target, str(address))
        except OSError as exc:
            last = exc
            continue
        try:
            conn.request("POST", target.path, body=payload, headers=headers)
            response = conn.getresponse()
            text = response.read(MAX_RESPONSE_BYTES).decode("utf-8", "replace")
            return Answer(response.status, text)
        except OSError as exc:
            last = exc
        finally:
            conn.close()
    raise MlflowUnavailable(f"{type(last).__name__}: {last}" if last else "no address")


def log_batch(
    base_uri: str,
    *,
    run_id: str,
    metrics: dict[str, float],
    tags: dict[str, str],
    timestamp_ms: int,
    token: str = "",
    allow_private: bool = False,
) -> None:
    """Write ``metrics`` (step 0 at ``timestamp_ms``) and ``tags`` into the MLflow run ``run_id``.

    Idempotent: MLflow keeps one history entry per (key, value, timestamp, step), so a resend of
    the same batch after a lost answer adds nothing; tags are overwritten with the same values.
    """
    body = {
        "run_id": run_id,
        "metrics": [
            {"key": k, "value": v, "timestamp": timestamp_ms, "step": 0}
            for k, v in sorted(metrics.items())
        ],
        "tags": [{"key": k, "value": v} for k, v in sorted(tags.items())],
    }
    answer = post_json(base_uri, LOG_BATCH, body, token=token, allow_private=allow_private)
    if not 200 <= answer.status < 300:
        detail = answer.body[:300].strip()
        raise MlflowUnavailable(
            f"HTTP {answer.status}: {detail}" if detail else f"HTTP {answer.status}"
        )
