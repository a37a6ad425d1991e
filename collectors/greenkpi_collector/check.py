"""``greenkpi-collector check``: what this host can measure, and why not where it cannot.

A diagnosis writes nothing: the spool is read through a read-only connection, the registry only
listed, and a missing one is reported "missing" (the agent's first run creates it), never created.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path

from greenkpi_collector.config import Config, ConfigError
from greenkpi_collector.sources.base import SourceUnavailable
from greenkpi_collector.spool import Spool
from greenkpi_collector.transport import Transport

SKEW_WARN_S = 60.0


def run_check(config: Config, say: Callable[[str], None] = print) -> int:
    """Print one line per capability; exit status 0 when something is measured and the server
    accepts our token, 1 otherwise."""
    measured = False
    problems = 0
    say(f"host: {config.hostname}")
    exporters = [spec for spec in (config.source or "").split(",") if spec.strip()]
    if exporters:
        from greenkpi_collector.sources.exporters import describe

        for spec in exporters:
            lines, seen = describe(spec)
            for line in lines:
                say(line)
            measured = measured or seen
    if config.gpu == "off":
        say("GPU: off (gpu = off)")
    elif exporters and config.gpu == "auto":
        say("GPU: NVML not read (an exporter source measures the GPUs)")
    else:
        try:
            from greenkpi_collector.sources.nvml import NvmlSource, load_pynvml

            if config.gpu == "sim":
                from greenkpi_collector.sources.sim import from_environment

                nvml = NvmlSource(from_environment(config.sim_gpus, config.sim_scenario))
            else:
                nvml = NvmlSource(load_pynvml())
            for gpu in nvml.gpus:
                how = "energy counter" if gpu.has_counter else "power readings (no energy counter)"
                mig = f", MIG with {gpu.mig_instances} instances" if gpu.mig else ""
                nvml.read()
                clock = f", SM clock {gpu.sm_clock_mhz:.0f} MHz" if gpu.sm_clock_mhz else ""
                limit = f", limit {gpu.power_limit_w:.0f} W" if gpu.power_limit_w else ""
                say(f"GPU: {gpu.uuid} {gpu.name}: {how}{mig}{limit}{clock}")
            for error in nvml.errors():
                say(f"GPU note: {error}")
            nvml.close()
            measured = True
        except SourceUnavailable as exc:
            say(f"GPU: not measured: {exc}")
    if config.cpu == "off":
        say("CPU/DRAM: off (cpu = off)")
    elif config.cpu == "estimate":
        say("CPU/DRAM: estimated from TDP x load (cpu = estimate)")
        measured = True
    else:
        try:
            from greenkpi_collector.sources.rapl import RaplSource

            rapl = RaplSource(Path(config.rapl_root))
            say("CPU/DRAM: RAPL counters: " + ", ".join(d.uuid for d in rapl.domains))
            measured = True
        except SourceUnavailable as exc:
            if config.cpu == "rapl":
                say(f"CPU/DRAM: not measured: {exc}")
            else:
                say(f"CPU/DRAM: estimated from TDP x load, because: {exc}")
                measured = True
    try:
        import psutil

        vm = psutil.virtual_memory()
        say(
            f"host load: CPU {psutil.cpu_percent(interval=0.1):.0f} %, memory "
            f"{(vm.total - vm.available) / 2**30:.1f} of {vm.total / 2**30:.1f} GiB"
        )
    except Exception as exc:  # psutil missing or /proc unreadable
        say(f"host load: unavailable: {exc}")
    problems += _check_spool(config, say)
    problems += _check_registry(config, say)
    problems += _check_slurm(config, say)
    problems += _check_kubernetes(config, say)
    problems += _check_server(config, say)
    if not measured:
        say("verdict: nothing can be measured on this host")
        return 1
    say("verdict: ready" if not problems else f"verdict: {problems} problem(s) above")
    return 0 if not problems else 1


def _check_slurm(config: Config, say: Callable[[str], None]) -> int:
    """What Slurm shows about this node; runs scontrol/squeue once, writes nothing."""
    if config.slurm == "off":
        say("Slurm: off (slurm = off)")
        return 0
    from greenkpi_collector.sources.slurm import SlurmJobs, discover

    cluster, why = discover(timeout_s=config.slurm_timeout_s)
    if cluster is None:
        say(f"Slurm: not used: {why}")
        return 1 if config.slurm == "on" else 0
    jobs = SlurmJobs(cluster, config.slurm_node, timeout_s=config.slurm_timeout_s)
    ok = jobs.refresh()
    for line in jobs.summary():
        say(line)
    say(
        "attribution precedence: wrap/track > GREENKPI_TEAM/MODEL/RUN in the process "
        "environment > Slurm job > host default team"
    )
    return 0 if ok else 1


def _check_kubernetes(config: Config, say: Callable[[str], None]) -> int:
    """What the kubelet and the API server say about this node's pods (one List, one pod list).
    A missing or refused socket is said in plain words; the agent still measures without it."""
    if config.kubernetes == "off":
        say("Kubernetes: off (kubernetes = off)")
        return 0
    if config.kubernetes == "auto" and not os.path.exists(config.kubelet_socket):
        say(f"Kubernetes: not used: no kubelet pod-resources socket at {config.kubelet_socket}")
        return 0
    try:
        from greenkpi_collector.sources.kubernetes.apiserver import PodCache
        from greenkpi_collector.sources.kubernetes.podresources import (
            PODRESOURCES_GRPC,
            PodResourcesClient,
            PodResourcesUnavailable,
        )

        importlib.import_module(PODRESOURCES_GRPC)
    except Exception as exc:  # grpcio / protobuf missing or of another generation
        say(f"Kubernetes: attribution unknown: {exc} (install greenkpi[kubernetes])")
        return 1
    client = PodResourcesClient(config.kubelet_socket)
    problems = 0
    try:
        allocations = client.allocations()
        allocatable = client.allocatable()
        pods = {ref.key for refs in allocations.values() for ref in refs}
        say(
            f"Kubernetes: kubelet {config.kubelet_socket}: {len(allocatable)} allocatable GPU "
            f"device(s), {len(allocations)} allocated to {len(pods)} pod(s)"
        )
    except PodResourcesUnavailable as exc:
        say(f"Kubernetes: {exc}; the collector measures on with pod attribution unknown")
        problems += 1
    finally:
        client.close()
    cache = PodCache(config.kube_node, url=config.kube_api_url)
    cache.refresh()
    if cache.last_error:
        say(f"Kubernetes: {cache.last_error}; pods keep no labels until it answers")
        problems += 1
    else:
        say(f"Kubernetes: API server lists {len(cache.by_uid)} pod(s) on node {config.kube_node}")
    return problems


def _existing_ancestor(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists():
            return parent
    return Path("/")


def _missing(what: str, path: Path, say: Callable[[str], None]) -> int:
    """A file or directory the agent creates on its first run: say whether it could."""
    ancestor = _existing_ancestor(path)
    if os.access(ancestor, os.W_OK | os.X_OK):
        say(
            f"{what}: {path} missing (the agent creates it on its first run; {ancestor} is writable)"
        )
        return 0
    say(
        f"{what}: {path} missing, and {ancestor} is not writable by this user: the agent cannot create it"
    )
    return 1


def _check_registry(config: Config, say: Callable[[str], None]) -> int:
    directory = Path(config.registry_dir)
    if not directory.is_dir():
        return _missing("attribution registry", directory, say)
    writable = os.access(directory, os.W_OK | os.X_OK)
    # Listed only: Registry.refresh() would delete the files of ended jobs, and a check writes nothing.
    registrations = sum(1 for _ in directory.glob("*.json"))
    say(
        f"attribution registry: {directory} "
        f"({'writable' if writable else 'NOT writable by this user'}), "
        f"{registrations} job registration(s) on file"
    )
    return 0 if writable else 1


def _check_spool(config: Config, say: Callable[[str], None]) -> int:
    path = Path(config.spool_path)
    if not path.exists():
        return _missing("spool", path, say)
    try:
        spool = Spool.read_only(path)
        stats = spool.stats()
        spool.close()
    except Exception as exc:
        say(f"spool: cannot read {path}: {exc}")
        return 1
    say(
        f"spool: {config.spool_path}: {stats.depth} sample(s) waiting, "
        f"{stats.dead_batches} dead batch(es), {stats.dropped_windows} dropped"
    )
    return 0


def _check_server(config: Config, say: Callable[[str], None]) -> int:
    if not config.server:
        say("server: not configured (--server or GREENKPI_SERVER)")
        return 1
    try:
        token = config.token
        token()
    except ConfigError as exc:
        say(f"token: {exc}")
        return 1
    if config.token_file and os.stat(config.token_file).st_mode & 0o044:
        say(f"token: warning: {config.token_file} is readable by others (chmod 600)")
    verdict, skew = Transport(config.server, token, config.timeout_s, config.ca_file).probe()
    if verdict.startswith("unreachable"):
        say(f"server: {config.server} {verdict}")
        return 1
    say(f"server: {config.server} reachable; token: {verdict}")
    problems = 0 if verdict == "ok" else 1
    if skew is not None:
        flag = " - fix NTP: windows may be refused" if abs(skew) > SKEW_WARN_S else ""
        say(f"clock: this host differs from the server by {-skew:+.1f} s{flag}")
        problems += abs(skew) > SKEW_WARN_S
    return problems
