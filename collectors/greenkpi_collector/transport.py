"""HTTP to the ingest API, and how each answer is classified (reliability-and-ecosystem.md A1).

Standard library only (http.client): one request per batch, bounded timeouts, and at most
``MAX_RESPONSE_BYTES`` of any answer read into memory, however large the server says it is.

    2xx                      ok: delete the batch
    network error, 408, 409, 425, 5xx   retry the same batch (same key) with capped, jittered backoff
    429                      wait Retry-After, then retry
    413                      split the batch in two and send the halves
    401, 403                 the credential, not the batch, is wrong: keep it, retry slowly
    other 4xx                poison: dead-letter (only the samples the server named, if it did)
"""

from __future__ import annotations

import gzip
import http.client
import json
import random
import ssl
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

from greenkpi_collector import __version__

MAX_RESPONSE_BYTES = 64 * 1024
GZIP_ABOVE_BYTES = 1024
DEFAULT_RETRY_AFTER_S = 30.0
MAX_RETRY_AFTER_S = 3600.0
INGEST_PATH = "/api/v1/ingest/"
RETRYABLE = {408, 409, 425}


@dataclass
class Outcome:
    kind: str  # ok | retry | rate_limited | too_large | auth | rejected
    status: int | None
    detail: str
    retry_after_s: float | None = None
    bad_samples: set[int] = field(default_factory=set)
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def backoff_s(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Exponential backoff with "equal jitter": in [d/2, d] where d = min(cap, base * 2^attempt).
    Half is fixed so delays still grow; half is random so a fleet that lost the server together
    does not come back in lockstep."""
    d = min(cap_s, base_s * 2 ** min(attempt, 30))
    return d / 2 + rng.uniform(0, d / 2)


def parse_retry_after(value: str | None, now: float) -> float:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return DEFAULT_RETRY_AFTER_S
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError, IndexError):
            return DEFAULT_RETRY_AFTER_S
    return min(MAX_RETRY_AFTER_S, max(0.0, seconds))


def classify(status: int, headers: dict[str, str], body: dict[str, Any] | None) -> Outcome:
    detail = str((body or {}).get("detail") or (body or {}).get("title") or "")[:500]
    if 200 <= status < 300:
        return Outcome("ok", status, detail, body=body, headers=headers)
    if status == 429:
        after = parse_retry_after(headers.get("retry-after"), time.time())
        return Outcome("rate_limited", status, detail, retry_after_s=after, headers=headers)
    if status == 413:
        return Outcome("too_large", status, detail, headers=headers)
    if status in (401, 403):
        return Outcome("auth", status, detail or "token rejected", headers=headers)
    if status in RETRYABLE or status >= 500:
        return Outcome("retry", status, detail or f"HTTP {status}", headers=headers)
    bad: set[int] = set()
    errors = (body or {}).get("errors") or []
    if status == 400 and errors and all(isinstance(e, dict) for e in errors):
        indices = [e.get("sample_index") for e in errors]
        if all(isinstance(i, int) and i >= 0 for i in indices):
            bad = set(indices)  # only these samples are poison; the rest can still go
        if errors:
            detail = "; ".join(
                f"{e.get('pointer')}: {e.get('code')}: {e.get('detail')}" for e in errors[:5]
            )[:1000]
    return Outcome("rejected", status, detail or f"HTTP {status}", bad_samples=bad, headers=headers)


class Transport:
    def __init__(
        self,
        server: str,
        token: Callable[[], str],
        timeout_s: float = 10.0,
        ca_file: str | None = None,
    ) -> None:
        parsed = urllib.parse.urlsplit(server if "://" in server else f"http://{server}")
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"server must be an http(s) URL, got {server!r}")
        self.scheme, self.host, self.port = parsed.scheme, parsed.hostname, parsed.port
        self.path = parsed.path.rstrip("/") + INGEST_PATH
        self.token = token  # a callable: a rotated token file is picked up on the next send
        self.timeout_s = timeout_s
        self.context = (
            ssl.create_default_context(cafile=ca_file) if self.scheme == "https" else None
        )

    def _connection(self) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout_s, context=self.context
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)

    def request(
        self, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], dict[str, Any] | None]:
        conn = self._connection()
        try:
            conn.request("POST", self.path, body=body, headers=headers)
            response = conn.getresponse()
            raw = response.read(MAX_RESPONSE_BYTES)  # never more, whatever Content-Length says
            names = {k.lower(): v for k, v in response.getheaders()}
            status = response.status
        finally:
            conn.close()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None  # a proxy's HTML error page, or a truncated body
        return status, names, parsed if isinstance(parsed, dict) else None

    def base_headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.token()}",
            "User-Agent": f"greenkpi-collector/{__version__}",
            "Content-Type": "application/json",
            "X-Sent-At": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def post_batch(self, body: bytes, key: str) -> Outcome:
        headers = self.base_headers()
        headers["Idempotency-Key"] = key
        if len(body) > GZIP_ABOVE_BYTES:
            body = gzip.compress(body, compresslevel=6, mtime=0)
            headers["Content-Encoding"] = "gzip"
        try:
            status, names, parsed = self.request(body, headers)
        except (OSError, http.client.HTTPException) as exc:
            return Outcome("retry", None, f"{exc.__class__.__name__}: {exc}"[:500])
        return classify(status, names, parsed)

    def probe(self) -> tuple[str, float | None]:
        """Check the token without storing anything: an ingest POST without an Idempotency-Key
        is authenticated first, then refused with 400. Returns (verdict, clock skew s)."""
        headers = self.base_headers()
        start = time.time()
        try:
            status, names, parsed = self.request(b"{}", headers)
        except (OSError, http.client.HTTPException) as exc:
            return f"unreachable: {exc.__class__.__name__}: {exc}", None
        skew = None
        if "date" in names:
            try:
                server_time = parsedate_to_datetime(names["date"]).timestamp()
                skew = server_time - (start + time.time()) / 2
            except (TypeError, ValueError, IndexError):
                skew = None
        if status in (401, 403):
            return f"token rejected (HTTP {status})", skew
        if status == 400:
            return "ok", skew
        return f"unexpected answer HTTP {status}: {(parsed or {}).get('detail', '')}", skew
