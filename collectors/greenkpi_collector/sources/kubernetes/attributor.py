"""The collector's Attributor taught Kubernetes: a GPU's holders from the kubelet, a process's pod
from its cgroup, a pod's labels from the API server.

Rules (docs/collector.md, "Kubernetes"):
* A process whose cgroup names a pod the API server knows works for that pod: its share carries
  ``scheduler: {kind: k8s, ...}`` (a ``wrap`` registration or GREENKPI_* variable still sets
  team / model / run first). Processes of several pods on one GPU (time-slicing, MPS) split the
  interval by NVML's per-process utilization (method ``utilization``), equally when NVML has none
  (MPS, MIG: method ``equal``).
* A GPU (or a MIG slice of it) allocated to pods, with no process in the interval: the holders'
  ``allocated-idle`` share, equal per holding pod. MIG slices are separate devices to the kubelet;
  NVML measures the physical GPU, so a slice's pod is a holder of its parent GPU. Shares of a
  slice's pod on that GPU carry the tag ``gpu_sharing=mig`` (the pods page says "MIG slice").
* The kubelet socket missing or refused: attribution is unknown (processes keep their
  registration / environment claims, idle GPUs go to nobody); ``errors`` says why, once.
* Never blocking (``start``): the agent lists the kubelet and the API server from a background
  thread, like Slurm's facts; the sampling thread reads only the last good listings, and a pod
  the cache does not know wakes the thread instead of asking the API server itself. A hung
  kubelet or API server delays nothing; past ``stale_s`` without a good listing, the last known
  holders are kept but every pod goes out ``complete: false``, and after ``forget_s`` the holders
  are dropped (attribution unknown). Without ``start`` (tests, ``check``), ``refresh`` lists
  in the caller's thread as before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from greenkpi_collector.attribution import Claim, JobKey
from greenkpi_collector.identity import Attributor
from greenkpi_collector.sources.kubernetes.apiserver import PodCache, PodMeta
from greenkpi_collector.sources.kubernetes.cgroup import pod_of_pid
from greenkpi_collector.sources.kubernetes.podresources import (
    PodRef,
    PodResourcesClient,
    PodResourcesUnavailable,
)
from greenkpi_schema import K8sPod
from greenkpi_schema.v1 import K8S_TEXT_LIMITS, k8s_run_key


class KubeAttributor(Attributor):
    def __init__(
        self,
        *args: Any,
        pods: PodResourcesClient,
        cache: PodCache,
        cluster: str | None = None,
        mig_parent: dict[str, str] | None = None,
        proc_root: str = "/proc",
        list_s: float = 10.0,
        stale_s: float | None = None,
        forget_s: float | None = None,
        clock: Any = time.monotonic,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.pods = pods
        self.cache = cache
        self.cluster = (cluster or "")[: K8S_TEXT_LIMITS["cluster"]]
        self.mig_parent = mig_parent or {}
        self.proc_root = proc_root
        self.list_s = list_s
        # A listing older than this is stale: pods go out complete:false (3 missed kubelet lists,
        # or the API server not answering for 3 of its TTLs).
        self.stale_s = stale_s if stale_s is not None else 3 * list_s
        self.api_stale_s = 3 * cache.ttl_s
        self.forget_s = forget_s if forget_s is not None else 30 * list_s
        self.clock = clock
        self.holders: dict[str, tuple[PodRef, ...]] = {}
        self.mig_holders: dict[str, frozenset[str]] = {}  # GPU -> pods holding a slice of it
        self.kubelet_error: str | None = None
        self._listed_at = float("-inf")
        self._good_at = float("-inf")  # the last kubelet List that answered
        self._errors: list[str] = []
        self._lock = threading.Lock()  # _errors: appended by the thread, taken by the sender
        self._wanted = threading.Event()  # a pod the cache did not know: list now
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lists = 0
        self._k8s_tick: dict[int, Claim | None] = {}
        self._containers: dict[str, str] = {}

    def start(self) -> None:
        """List from a background thread from now on (the agent; see the module docstring)."""
        self._thread = threading.Thread(target=self._loop, name="k8s-pods", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._wanted.set()
        # A hung gRPC or HTTP call holds the thread until its timeout; it is a daemon.
        if self._thread is not None:
            self._thread.join(timeout=0.5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            forced = self._wanted.is_set()
            self._wanted.clear()
            try:
                self._list(force=forced)
            except Exception as exc:  # never let the thread die: facts just go stale
                self._error(f"Kubernetes listing failed: {exc!r}")
            wait = max(0.05, self._listed_at + self.list_s - self.clock())
            self._wanted.wait(min(wait, self.list_s))

    def refresh(self) -> None:
        super().refresh()
        self._k8s_tick.clear()
        if self._thread is None:
            self._list()  # no background thread: list here, as the caller asked

    def _list(self, force: bool = False) -> None:
        now = self.clock()
        if now - self._listed_at < self.list_s:
            if force:
                self.cache.refresh(force=True)  # at most every retry_s (PodCache)
            return
        self._listed_at = now
        self.lists += 1
        try:
            allocations = self.pods.allocations()
        except PodResourcesUnavailable as exc:
            if str(exc) != self.kubelet_error:
                self._error(f"{exc}; pod attribution unknown")
            self.kubelet_error = str(exc)
            if now - self._good_at > self.forget_s:
                self.holders, self.mig_holders = {}, {}
            return
        self.kubelet_error = None
        self._good_at = now
        holders: dict[str, list[PodRef]] = {}
        mig: dict[str, set[str]] = {}
        for device, refs in allocations.items():
            gpu = self.mig_parent.get(device, device)  # a MIG slice's pod holds its parent GPU
            for ref in refs:
                if gpu != device:
                    mig.setdefault(gpu, set()).add(ref.key)
                if all(r.key != ref.key for r in holders.get(gpu, [])):
                    holders.setdefault(gpu, []).append(ref)
        # each attribute replaced whole: the sampling thread reads one listing or the next
        self.holders = {gpu: tuple(refs) for gpu, refs in holders.items()}
        self.mig_holders = {gpu: frozenset(keys) for gpu, keys in mig.items()}
        self.cache.refresh(force=force)

    def stale(self) -> bool:
        """No good kubelet listing for ``stale_s``, or none from the API server for 3 TTLs."""
        now = self.clock()
        return now - self._good_at > self.stale_s or now - self.cache.listed_at > self.api_stale_s

    def _error(self, message: str) -> None:
        with self._lock:
            self._errors.append(message)

    def _job(self, namespace: str, pod: str, container: str | None) -> JobKey:
        """The pod's key (one share per pod and window); its container is remembered aside."""
        key = f"{namespace}/{pod}"
        if container:
            if len(self._containers) > 4096:
                self._containers.clear()
            self._containers[key] = container
        return (self.cluster, key)

    def resolve(self, pid: int) -> Claim | None:
        if pid in self._k8s_tick:
            return self._k8s_tick[pid]
        base = super().resolve(pid)
        claim = base
        found = pod_of_pid(pid, self.proc_root) if pid >= 0 else None
        meta = self._pod(found[0]) if found is not None else None
        if found is not None and meta is not None:
            container = meta.containers.get(found[1] or "")
            claim = Claim(
                pid=base.pid if base is not None else pid,
                team=base.team if base is not None else None,
                model=base.model if base is not None else None,
                run=base.run if base is not None else None,
                tags=base.tags if base is not None else (),
                job=self._job(meta.namespace, meta.name, container),
            )
        self._k8s_tick[pid] = claim
        return claim

    def resolver(self, uuid: str) -> Callable[[int], Claim | None]:
        slices = self.mig_holders.get(uuid)
        if not slices:
            return self.resolve
        return lambda pid: _mig_tagged(self.resolve(pid), slices)

    def _pod(self, uid: str) -> PodMeta | None:
        if self._thread is None:
            return self.cache.by_pod_uid(uid)  # may list now (no background thread)
        meta = self.cache.by_uid.get(uid)
        if meta is None:
            self._wanted.set()  # the thread lists; this tick goes on without the pod's labels
        return meta

    def allocated(self, uuid: str, t_wall: float) -> Claim | tuple[Claim, ...] | None:
        refs = self.holders.get(uuid)
        if not refs:
            return super().allocated(uuid, t_wall)
        slices = self.mig_holders.get(uuid, frozenset())
        claims = tuple(
            _mig_tagged(
                Claim(pid=None, team=None, model=None, run=None, job=self._job(*_ref(r))), slices
            )
            for r in refs
        )
        return claims[0] if len(claims) == 1 else claims

    def describe(self, job: JobKey) -> tuple[Any, str]:
        if not isinstance(job[1], str):
            return super().describe(job)
        key = job[1]
        container = self._containers.get(key, "")
        namespace, _, name = key.partition("/")
        meta: PodMeta | None = self.cache.by_key.get(key)
        pod = K8sPod(
            namespace=namespace,
            pod=name,
            cluster=job[0] or None,
            container=container[:63] or None,
            uid=(meta.uid[:64] or None) if meta is not None else None,
            labels=dict(meta.labels) if meta is not None else {},
            annotations=dict(meta.annotations) if meta is not None else {},
            start=meta.start if meta is not None else None,
            # labels unknown, or facts that may be out of date (the listings went stale)
            complete=meta is not None and not (self._thread is not None and self.stale()),
        )
        return pod, k8s_run_key(pod)

    def errors(self) -> list[str]:
        with self._lock:
            out, self._errors = self._errors, []
        return super().errors() + out + self.cache.errors()


def _ref(ref: PodRef) -> tuple[str, str, str]:
    return ref.namespace, ref.pod, ref.container


MIG_TAG = ("gpu_sharing", "mig")


def _mig_tagged(claim: Any, slices: frozenset[str]) -> Any:
    """The claim, tagged as a MIG slice's when its pod holds a slice of this GPU."""
    if claim is None or claim.job is None or claim.job[1] not in slices or MIG_TAG in claim.tags:
        return claim
    return replace(claim, tags=tuple(sorted((*claim.tags, MIG_TAG))))
