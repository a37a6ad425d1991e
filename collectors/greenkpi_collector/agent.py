"""Wiring: build the sources a config asks for, then run sampler and sender until SIGTERM.

The sampler runs in a thread, the sender in the main thread, each with its own SQLite
connection to the spool. SIGTERM/SIGINT set ``stop``: the sender finishes the send in flight,
the sampler spools the last partial window, and the sender gets ``shutdown_grace_s`` to send it.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from greenkpi_collector.attribution import Registry
from greenkpi_collector.config import Config, ConfigError
from greenkpi_collector.identity import Attributor
from greenkpi_collector.sampler import Sampler
from greenkpi_collector.sender import Sender
from greenkpi_collector.sources.base import Source, SourceUnavailable
from greenkpi_collector.sources.exporters import KINDS as EXPORTER_KINDS
from greenkpi_collector.sources.host import EstimateSource, HostLoad, cpu_model
from greenkpi_collector.sources.slurm import SlurmJobs
from greenkpi_collector.spool import Spool
from greenkpi_collector.transport import Transport
from greenkpi_schema import DeviceInfo, HostFacts

log = logging.getLogger("greenkpi_collector")


def build_sources(config: Config) -> tuple[list[Source], list[str], bool]:
    """(sources, plain-words notes on what is not measured and why, whether RAPL is used)."""
    sources: list[Source] = []
    notes: list[str] = []
    exporters = [spec for spec in (config.source or "").split(",") if spec.strip()]
    if exporters and config.gpu == "auto":
        notes.append("GPU energy from exporter source(s); NVML is not read (no double count)")
    if config.gpu != "off" and not (exporters and config.gpu == "auto"):
        try:
            from greenkpi_collector.sources.nvml import NvmlSource, load_pynvml

            if config.gpu == "sim":
                from greenkpi_collector.sources.sim import from_environment

                sources.append(NvmlSource(from_environment(config.sim_gpus, config.sim_scenario)))
            else:
                sources.append(NvmlSource(load_pynvml()))
        except SourceUnavailable as exc:
            if config.gpu != "auto":
                raise
            notes.append(f"no GPU energy: {exc}")
    if exporters:
        from greenkpi_collector.sources.exporters import build

        # A scrape happens inside a sampling tick: never let a hung exporter stall it for long.
        timeout_s = min(config.timeout_s, 2.0)
        interval_s = config.source_interval_s
        sources.extend(build(spec, timeout_s, interval_s) for spec in exporters)
    rapl = False
    if config.cpu in ("auto", "rapl"):
        try:
            from greenkpi_collector.sources.rapl import RaplSource

            sources.append(RaplSource(Path(config.rapl_root), cpu_model()))
            rapl = True
        except SourceUnavailable as exc:
            if config.cpu == "rapl":
                raise
            notes.append(f"no RAPL: {exc}; CPU/DRAM energy is estimated")
    if config.cpu == "estimate" or (config.cpu == "auto" and not rapl):
        sources.append(EstimateSource(config.cpu_tdp_w))
    return sources, notes, rapl


def attributor(
    registry: Registry,
    slurm: SlurmJobs | None,
    sources: list[Source],
    kube: Any = None,
    kube_cluster: str | None = None,
) -> Attributor:
    """Who used each GPU; pods labelled by exporter sources resolve to their labels, pods the
    kubelet allocated GPUs to (``kube``: build_kubernetes's answer) through sources.kubernetes."""
    gpu_index = gpu_indices(sources)
    # By name, not isinstance: importing the exporter module (and prometheus_client) costs
    # start-up time on every host that does not use it.
    exporters = [s for s in sources if s.name in EXPORTER_KINDS]
    if kube is not None and not exporters:
        from greenkpi_collector.sources.kubernetes.attributor import KubeAttributor

        client, cache, config = kube
        mig_parent = {
            mig: g.uuid
            for s in sources
            for g in getattr(s, "gpus", ())
            for mig in getattr(g, "mig_uuids", ())
        }
        return KubeAttributor(
            registry,
            slurm=slurm,
            gpu_index=gpu_index,
            pods=client,
            cache=cache,
            cluster=config.kube_cluster,
            mig_parent=mig_parent,
            proc_root=config.proc_root,
        )
    if not exporters:
        return Attributor(registry, slurm=slurm, gpu_index=gpu_index)
    from greenkpi_collector.sources.exporters.pods import PodAttributor

    return PodAttributor(
        registry,
        slurm=slurm,
        gpu_index=gpu_index,
        exporters=exporters,  # type: ignore[arg-type]  # ExporterSource, by their names
        cluster=kube_cluster,
    )


def build_kubernetes(config: Config, notes: list[str]) -> Any:
    """(pod-resources client, pod cache, config) when Kubernetes attribution is on, else None.

    ``auto`` turns it on when the kubelet socket exists. A socket that exists but refuses us is
    not fatal: the agent measures on with attribution unknown (``check`` and the host's source
    errors say why)."""
    if config.kubernetes == "off":
        return None
    if config.kubernetes == "auto" and not os.path.exists(config.kubelet_socket):
        return None
    try:
        from greenkpi_collector.sources.kubernetes.apiserver import PodCache
        from greenkpi_collector.sources.kubernetes.podresources import (
            PODRESOURCES_GRPC,
            PodResourcesClient,
        )

        # the generated modules import grpc and check the protobuf runtime's version: fail here,
        # at start-up, not in the sampling loop
        importlib.import_module(PODRESOURCES_GRPC)
    except Exception as exc:  # grpcio missing: pip install 'greenkpi[collector,kubernetes]'
        if config.kubernetes == "on":
            raise SourceUnavailable(f"kubernetes = on, but {exc}") from None
        notes.append(f"no Kubernetes attribution: {exc}")
        return None
    client = PodResourcesClient(config.kubelet_socket)
    cache = PodCache(config.kube_node, url=config.kube_api_url)
    return client, cache, config


def build_slurm(config: Config, notes: list[str]) -> SlurmJobs | None:
    """The Slurm job source when enabled and reachable (auto), else None (with a note why)."""
    if config.slurm == "off":
        return None
    from greenkpi_collector.sources.slurm import discover

    cluster, why = discover(timeout_s=config.slurm_timeout_s)
    if cluster is None:
        if config.slurm == "on":
            raise SourceUnavailable(f"slurm = on, but {why}")
        if why != "scontrol is not on PATH":
            notes.append(f"no Slurm attribution: {why}")
        return None
    return SlurmJobs(
        cluster,
        config.slurm_node,
        refresh_s=config.slurm_refresh_s,
        timeout_s=config.slurm_timeout_s,
    )


def gpu_indices(sources: list[Source]) -> dict[str, int]:
    """GPU UUID -> NVML index, which Slurm's GRES IDX follows (gres.conf / AutoDetect=nvml)."""
    return {g.uuid: g.index for s in sources for g in getattr(s, "gpus", ())}


class Agent:
    def __init__(self, config: Config, sources: list[Source] | None = None) -> None:
        if not config.server:
            raise ConfigError("no server: set --server, GREENKPI_SERVER or server in the TOML")
        config.token()  # fail at start-up, in plain words, rather than at the first send
        self.config = config
        self.stop = threading.Event()
        if sources is None:
            sources, notes, rapl = build_sources(config)
        else:
            notes, rapl = [], False
        if not sources:
            raise SourceUnavailable("nothing to measure: every source is off or unavailable")
        self.sources = sources
        self.devices: list[DeviceInfo] = [d for s in sources for d in s.devices()]
        registry_dir = Path(config.registry_dir)
        try:
            registry_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(registry_dir, 0o1777)  # like /tmp: any job may register, only as itself
        except OSError as exc:
            notes.append(f"registry {registry_dir} not writable by jobs ({exc.strerror})")
        quota = int(config.spool_max_mb * 2**20)
        registry = Registry(registry_dir)
        self.slurm = build_slurm(config, notes)
        self.sampler = Sampler(
            sources=sources,
            spool=Spool(config.spool_path, quota),
            registry=registry,
            host_load=HostLoad() if rapl else None,
            interval_s=config.sample_interval_s,
            window_s=config.window_s,
            max_resume_gap_s=config.max_resume_gap_s,
            notes=notes,
            attributor=attributor(
                registry,
                self.slurm,
                sources,
                build_kubernetes(config, notes),
                kube_cluster=config.kube_cluster,
            ),
        )
        self.sender = Sender(
            spool=Spool(config.spool_path, quota),
            transport=Transport(config.server, config.token, config.timeout_s, config.ca_file),
            facts=self.facts,
            max_samples=config.batch_max_samples,
            backoff_base_s=config.backoff_base_s,
            backoff_cap_s=config.backoff_cap_s,
            wake=self.sampler.wake,
        )

    def facts(self) -> HostFacts:
        from datetime import UTC, datetime

        return HostFacts(
            hostname=self.config.hostname,
            site=self.config.site,
            clock=datetime.now(UTC),
            source_errors=self.sampler.take_errors(),
            devices=list(self.devices),
        )

    def request_stop(self, signum: int = 0, frame: FrameType | None = None) -> None:
        self.stop.set()
        self.sampler.wake.set()  # the sender may be idling on the wake event

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.request_stop)
        log.info(
            "collecting %d device(s) every %.2f s into %.0f s windows; spool %s",
            len(self.devices),
            self.config.sample_interval_s,
            self.config.window_s,
            self.config.spool_path,
        )
        for note in self.sampler.notes:
            log.warning("%s", note)
        if self.slurm is not None:
            log.info("Slurm: cluster %s, node %s", self.slurm.cluster, self.slurm.node)
            self.slurm.start()
        # Kubernetes pods: kubelet and API-server listings off the sampling thread, like Slurm's
        start = getattr(self.sampler.attributor, "start", None)
        if start is not None:
            start()
        thread = threading.Thread(target=self.sampler.run, args=(self.stop,), name="sampler")
        thread.start()
        try:
            self.sender.run(self.stop)
        finally:
            self.stop.set()
            thread.join(timeout=max(5.0, 3 * self.config.sample_interval_s))
            deadline = time.monotonic() + self.config.shutdown_grace_s
            try:
                self.sender.drain(deadline)
            except Exception:
                log.exception("final send failed; the spool keeps it for next time")
            stats = self.sender.spool.stats()
            log.info("stopped; %d sample(s) wait in the spool", stats.depth)
            self.sampler.spool.close()
            self.sender.spool.close()
            for source in self.sources:
                source.close()
            if self.slurm is not None:
                self.slurm.close()
            close = getattr(self.sampler.attributor, "close", None)
            if close is not None:
                close()
        return 0
