"""The attributor, taught the exporter sources' pods: a negative id is a pod an exporter labelled
(``scrape.PodTable``), every other id a real process resolved as before. A labelled pod is sent
as a Kubernetes pod (``scheduler: {kind: k8s}``) with the cluster of ``kube_cluster``; exporters
show no pod labels or annotations, so it goes out ``complete: false`` (the backend keeps any
labels it learnt elsewhere; ``k8s-namespace`` mappings apply, ``k8s-label`` ones need labels)."""

from __future__ import annotations

from typing import Any

from greenkpi_collector.attribution import Claim, JobKey
from greenkpi_collector.identity import Attributor
from greenkpi_collector.sources.exporters.scrape import ExporterSource
from greenkpi_schema import K8sPod
from greenkpi_schema.v1 import K8S_TEXT_LIMITS, k8s_run_key


class PodAttributor(Attributor):
    def __init__(
        self, *args: Any, exporters: list[ExporterSource], cluster: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.exporters = exporters
        self.cluster = (cluster or "")[: K8S_TEXT_LIMITS["cluster"]]
        self._clustered: dict[int, Claim] = {}

    def resolve(self, pid: int) -> Claim | None:
        if pid < 0:
            known = self._clustered.get(pid)
            if known is not None:
                return known
            for source in self.exporters:
                claim = source.pods.claim(pid)
                if claim is not None:
                    if claim.job is not None:
                        claim = Claim(
                            pid=None,
                            team=None,
                            model=None,
                            run=None,
                            tags=claim.tags,
                            job=(self.cluster, claim.job[1]),
                        )
                        if len(self._clustered) > 10_000:
                            self._clustered.clear()
                        self._clustered[pid] = claim
                    return claim
            return None
        return super().resolve(pid)

    def describe(self, job: JobKey) -> tuple[Any, str]:
        if not isinstance(job[1], str):
            return super().describe(job)
        namespace, _, name = job[1].partition("/")
        container = next(
            (s.pods.containers[job[1]] for s in self.exporters if s.pods.containers.get(job[1])),
            "",
        )
        pod = K8sPod(
            namespace=namespace,
            pod=name,
            cluster=job[0] or None,
            container=container or None,
            complete=False,  # exporters serve no labels or annotations
        )
        return pod, k8s_run_key(pod)
