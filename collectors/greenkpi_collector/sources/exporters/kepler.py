"""Kepler 0.10 and newer (``--source kepler=http://NODE:28282/metrics``).

From Kepler's docs/user/metrics.md (sustainable-computing-io/kepler, 2026-08): per GPU
``kepler_node_gpu_joules_total`` (counter, J; labels ``gpu``, ``gpu_uuid``, ``gpu_name``,
``vendor``) and ``kepler_node_gpu_watts``; per pod ``kepler_pod_gpu_joules_total`` (labels
``pod_id``, ``pod_name``, ``pod_namespace``, ``state``). Kepler reads the GPU's energy from NVML's
total-energy counter, so the node series is a relayed counter like dcgm-exporter's; its unit is
still confirmed against the power gauge.

Pod energy carries no GPU label, so pods are split by their own energy growth (share method
utilization) only on a node with one GPU; with several GPUs the energy stays the node's
(unattributed) and a note says why. Kepler before 0.10 (``mode`` labels, no ``gpu_uuid``) is not
supported: a note says so and nothing is measured from it.
"""

from __future__ import annotations

from greenkpi_collector.sources.exporters.scrape import ExporterSource, Family, Snapshot, label

NODE_J, NODE_W, POD_J = (
    "kepler_node_gpu_joules_total",
    "kepler_node_gpu_watts",
    "kepler_pod_gpu_joules_total",
)


class KeplerSource(ExporterSource):
    name = "kepler"
    wanted = ("kepler_node_gpu_", "kepler_pod_gpu_")

    def __init__(self, url: str, **kwargs: object) -> None:
        self._pod_last: dict[tuple[tuple[str, str], ...], float] = {}
        super().__init__(url, **kwargs)  # type: ignore[arg-type]

    def snapshots(self, families: dict[str, Family]) -> list[Snapshot]:
        energy = families.get(NODE_J)
        if energy is None:
            self.notes = [f"kepler {self.url}: no {NODE_J} (GPU support off, or no GPU)"]
            return []
        if energy.series and not any("gpu_uuid" in s.labels for s in energy.series):
            self.notes = [f"kepler {self.url}: Kepler before 0.10 (no gpu_uuid label): unsupported"]
            return []
        snaps: dict[str, Snapshot] = {}
        for series in energy.series:
            uuid = label(series.labels, "gpu_uuid")
            snap = snaps.setdefault(
                uuid, Snapshot(uuid=uuid, name=label(series.labels, "gpu_name"))
            )
            snap.energy_j = (snap.energy_j or 0.0) + series.value
        for series in families.get(NODE_W, Family(NODE_W, "gauge", "")).series:
            uuid = label(series.labels, "gpu_uuid")
            if uuid in snaps:
                snaps[uuid].power_w = (snaps[uuid].power_w or 0.0) + series.value
        self.notes = [f"kepler {self.url}: Kepler 0.10+ GPU metrics ({len(snaps)} GPU)"]
        growth = self._pod_growth(families.get(POD_J))
        if len(snaps) == 1:
            only = next(iter(snaps.values()))
            only.pods = [(tags, joules) for tags, joules in sorted(growth.items()) if joules > 0]
        elif growth:
            self.notes.append(
                f"kepler {self.url}: pod GPU energy has no GPU label; with {len(snaps)} GPUs "
                "it stays unattributed"
            )
        return list(snaps.values())

    def _pod_growth(self, family: Family | None) -> dict[tuple[tuple[str, str], ...], float]:
        """Joules each pod's GPU counter grew since the last scrape (0 after a reset)."""
        totals: dict[tuple[tuple[str, str], ...], float] = {}
        for series in family.series if family else []:
            pod = label(series.labels, "pod_name")
            if not pod:
                continue
            pairs = (("k8s_namespace", label(series.labels, "pod_namespace")), ("k8s_pod", pod))
            tags = tuple((k, v) for k, v in pairs if v)
            totals[tags] = totals.get(tags, 0.0) + series.value  # summed over states
        growth = {
            tags: max(0.0, value - self._pod_last[tags])
            for tags, value in totals.items()
            if tags in self._pod_last
        }
        self._pod_last = totals
        return growth
