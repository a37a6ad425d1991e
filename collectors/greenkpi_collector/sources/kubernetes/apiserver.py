"""Pods' namespace, labels and GreenKPI annotations from the Kubernetes API server.

One ``list`` of this node's pods (``fieldSelector=spec.nodeName=<node>``) per ``ttl_s`` with the
DaemonSet's service account (RBAC: get/list/watch pods, nothing else). The cache is bounded
(``max_pods``, least recently listed dropped first) and outlives failures: a 403, a timeout or a
refused connection keeps the pods already known (their labels keep attributing), records one
error, and retries after ``retry_s``; nothing here raises into the sampling loop.
"""

from __future__ import annotations

import json
import os
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
# Annotations worth sending: GreenKPI's own (greenkpi.io/run, ...), never a pod's whole set.
ANNOTATION_PREFIX = "greenkpi.io/"
MAX_LABELS = 64  # greenkpi_schema.v1.K8S_MAX_LABELS
MAX_ANNOTATIONS = 16


@dataclass(frozen=True, slots=True)
class PodMeta:
    namespace: str
    name: str
    uid: str
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    containers: dict[str, str] = field(default_factory=dict)  # container id -> name
    start: datetime | None = None


def in_cluster_url() -> str | None:
    host, port = (
        os.environ.get("KUBERNETES_SERVICE_HOST"),
        os.environ.get("KUBERNETES_SERVICE_PORT"),
    )
    if not host or not port:
        return None
    host = f"[{host}]" if ":" in host else host
    return f"https://{host}:{port}"


def _valid_label(key: str, value: str) -> bool:
    return 0 < len(key) <= 317 and len(value) <= 63


def pod_meta(item: dict[str, Any]) -> PodMeta | None:
    """A PodMeta from one Kubernetes Pod object (JSON), None if it lacks a name."""
    meta = item.get("metadata") or {}
    status = item.get("status") or {}
    if not meta.get("name") or not meta.get("namespace"):
        return None
    labels = {
        k: v
        for k, v in sorted((meta.get("labels") or {}).items())
        if isinstance(v, str) and _valid_label(k, v)
    }
    annotations = {
        k: v[:200]
        for k, v in sorted((meta.get("annotations") or {}).items())
        if k.startswith(ANNOTATION_PREFIX) and isinstance(v, str) and v
    }
    containers = {}
    for c in status.get("containerStatuses") or []:
        cid = str(c.get("containerID") or "").split("://", 1)[-1]
        if cid and c.get("name"):
            containers[cid] = c["name"]
    start = None
    if status.get("startTime"):
        try:
            start = datetime.fromisoformat(status["startTime"].replace("Z", "+00:00"))
        except ValueError:
            start = None
    return PodMeta(
        namespace=meta["namespace"],
        name=meta["name"],
        uid=str(meta.get("uid") or ""),
        labels=dict(list(labels.items())[:MAX_LABELS]),
        annotations=dict(list(annotations.items())[:MAX_ANNOTATIONS]),
        containers=containers,
        start=start,
    )


class PodCache:
    """This node's pods by UID and by ``namespace/name``, refreshed at most every ``ttl_s``."""

    def __init__(
        self,
        node: str,
        *,
        url: str | None = None,
        token_file: str = f"{SERVICE_ACCOUNT}/token",
        ca_file: str | None = f"{SERVICE_ACCOUNT}/ca.crt",
        ttl_s: float = 30.0,
        retry_s: float = 10.0,
        timeout_s: float = 2.0,
        max_pods: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node = node
        self.url = url or in_cluster_url()
        self.token_file = token_file
        self.ca_file = ca_file
        self.ttl_s, self.retry_s, self.timeout_s = ttl_s, retry_s, timeout_s
        self.max_pods = max_pods
        self.clock = clock
        self.by_uid: OrderedDict[str, PodMeta] = OrderedDict()
        self.by_key: dict[str, PodMeta] = {}
        self._next = 0.0
        self._tried = float("-inf")
        self._errors: list[str] = []
        self.last_error: str | None = None
        self.lists = 0
        self.listed_at = float("-inf")  # clock() of the last list that answered

    def refresh(self, *, force: bool = False) -> None:
        """List the node's pods when the TTL ran out (or ``force`` and the retry delay passed)."""
        now = self.clock()
        if now < self._next and not (force and now - self._tried >= self.retry_s):
            return  # a miss asks again before the TTL, but not more often than retry_s
        self._tried = now
        try:
            items = self._list()
        except Exception as exc:  # any failure keeps the cache; the loop must go on
            self._next = now + self.retry_s
            message = (
                f"Kubernetes API: {_why(exc)}; pod labels from cache ({len(self.by_uid)} pods)"
            )
            if message != self.last_error:
                self._errors.append(message)
            self.last_error = message
            return
        self._next = now + self.ttl_s
        self.last_error = None
        self.lists += 1
        self.listed_at = now
        for item in items:
            meta = pod_meta(item)
            if meta is None or not meta.uid:
                continue
            self.by_uid.pop(meta.uid, None)
            self.by_uid[meta.uid] = meta  # most recently listed last
        while len(self.by_uid) > self.max_pods:
            self.by_uid.popitem(last=False)
        self.by_key = {f"{m.namespace}/{m.name}": m for m in self.by_uid.values()}

    def _list(self) -> list[dict[str, Any]]:
        if not self.url:
            raise RuntimeError("no API server (KUBERNETES_SERVICE_HOST unset, kube_api_url empty)")
        query = urllib.parse.urlencode({"fieldSelector": f"spec.nodeName={self.node}"})
        request = urllib.request.Request(f"{self.url.rstrip('/')}/api/v1/pods?{query}")
        request.add_header("Accept", "application/json")
        try:
            token = Path(self.token_file).read_text().strip()
        except OSError:
            token = ""
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        context = None
        if self.url.startswith("https:"):
            ca = self.ca_file if self.ca_file and os.path.exists(self.ca_file) else None
            context = ssl.create_default_context(cafile=ca)
        with urllib.request.urlopen(request, timeout=self.timeout_s, context=context) as response:
            body = json.loads(response.read(32 * 2**20))
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise ValueError("the pod list has no items")
        return items

    def by_pod_uid(self, uid: str) -> PodMeta | None:
        meta = self.by_uid.get(uid)
        if meta is None:
            self.refresh(force=True)
            meta = self.by_uid.get(uid)
        return meta

    def by_name(self, key: str) -> PodMeta | None:
        meta = self.by_key.get(key)
        if meta is None:
            self.refresh(force=True)
            meta = self.by_key.get(key)
        return meta

    def errors(self) -> list[str]:
        # taken by the sender's thread while the attributor's thread may append: copy, then
        # delete what was copied (each step atomic), so a message appended between is kept
        out = self._errors[:]
        del self._errors[: len(out)]
        return out


def _why(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} listing pods" + (
            " (the service account may not list pods: RBAC)" if exc.code == 403 else ""
        )
    if isinstance(exc, urllib.error.URLError):
        return f"unreachable ({exc.reason})"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
