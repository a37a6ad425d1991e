"""Settings: command-line flags > environment (GREENKPI_*) > TOML file > defaults.

The token is read from ``GREENKPI_TOKEN`` or from a file (``token_file``, mode 0600), never from
the command line (argv is world-readable in /proc) and never from the TOML file (often shared).
Bad values fail at start-up with a message naming the setting and where it came from.
"""

from __future__ import annotations

import os
import socket
import stat
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

DEFAULT_CONFIG_FILE = "/etc/greenkpi-collector.toml"


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Option:
    name: str
    kind: type
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None


OPTIONS = (
    Option("server", str, None, "GreenKPI base URL, e.g. https://greenkpi.example.org"),
    Option("token_file", str, None, "file holding the collector token (or set GREENKPI_TOKEN)"),
    Option("hostname", str, None, "name this host reports (default: the system hostname)"),
    Option("site", str, None, "site name as configured in GreenKPI (optional)"),
    Option("state_dir", str, "/var/lib/greenkpi-collector", "where the spool lives"),
    Option(
        "registry_dir", str, None, "where wrap/track register jobs (default STATE_DIR/registry)"
    ),
    Option("sample_interval_s", float, 1.0, "seconds between readings", minimum=0.01),
    Option("window_s", float, 60.0, "seconds per measurement window", minimum=0.05),
    Option("gpu", str, "auto", "GPU source", ("auto", "nvml", "sim", "off")),
    Option(
        "source",
        str,
        None,
        "GPU energy from an exporter instead of NVML: dcgm-exporter=URL or kepler=URL "
        "(comma-separated for several)",
    ),
    Option("source_interval_s", float, 5.0, "seconds between exporter scrapes", minimum=0.1),
    Option("cpu", str, "auto", "CPU/DRAM source", ("auto", "rapl", "estimate", "off")),
    Option("rapl_root", str, "/sys/class/powercap", "powercap sysfs root"),
    Option(
        "cpu_tdp_w", float, None, "CPU TDP in watts for the estimate (sum of sockets)", minimum=1
    ),
    Option(
        "slurm",
        str,
        "auto",
        "Slurm job attribution: auto (when scontrol answers), on (required), off",
        ("auto", "on", "off"),
    ),
    Option("slurm_node", str, None, "this host's Slurm node name (default: short hostname)"),
    Option("slurm_refresh_s", float, 15.0, "seconds between Slurm job listings", minimum=1.0),
    Option("slurm_timeout_s", float, 10.0, "longest wait for scontrol/squeue", minimum=0.1),
    Option(
        "kubernetes",
        str,
        "auto",
        "Kubernetes pod attribution: auto (when the kubelet socket exists), on, off",
        ("auto", "on", "off"),
    ),
    Option(
        "kubelet_socket",
        str,
        "/var/lib/kubelet/pod-resources/kubelet.sock",
        "the kubelet pod-resources API socket",
    ),
    Option("kube_node", str, None, "this node's name (default: NODE_NAME, else the hostname)"),
    Option("kube_api_url", str, None, "API server URL (default: in-cluster service account)"),
    Option("kube_cluster", str, None, "cluster name sent with pod shares (optional)"),
    Option("proc_root", str, "/proc", "where host PIDs' cgroups are read (hostPID: /proc)"),
    Option("sim_gpus", int, 2, "number of simulated GPUs (gpu = sim)", minimum=1),
    Option("sim_scenario", str, None, "JSON file scripting simulated processes (gpu = sim)"),
    Option(
        "spool_max_mb",
        float,
        100.0,
        "spool quota in MiB; oldest windows dropped past it",
        minimum=0.001,
    ),
    Option("batch_max_samples", int, 1000, "samples per batch at most", minimum=1),
    Option("timeout_s", float, 10.0, "HTTP timeout per request", minimum=0.1),
    Option("backoff_base_s", float, 1.0, "first retry delay", minimum=0.001),
    Option("backoff_cap_s", float, 60.0, "longest retry delay", minimum=0.001),
    Option(
        "max_resume_gap_s",
        float,
        600.0,
        "after a restart, measure the gap if this short",
        minimum=0,
    ),
    Option(
        "shutdown_grace_s", float, 5.0, "on SIGTERM, time left to send the last window", minimum=0
    ),
    Option("ca_file", str, None, "CA bundle for a private TLS certificate"),
    Option("log_level", str, "info", "log level", ("debug", "info", "warning", "error")),
)
_BY_NAME = {o.name: o for o in OPTIONS}


@dataclass(frozen=True)
class Config:
    server: str | None
    token_file: str | None
    hostname: str
    site: str | None
    state_dir: str
    registry_dir: str
    sample_interval_s: float
    window_s: float
    gpu: str
    source: str | None
    source_interval_s: float
    cpu: str
    rapl_root: str
    cpu_tdp_w: float | None
    slurm: str
    slurm_node: str
    slurm_refresh_s: float
    slurm_timeout_s: float
    kubernetes: str
    kubelet_socket: str
    kube_node: str
    kube_api_url: str | None
    kube_cluster: str | None
    proc_root: str
    sim_gpus: int
    sim_scenario: str | None
    spool_max_mb: float
    batch_max_samples: int
    timeout_s: float
    backoff_base_s: float
    backoff_cap_s: float
    max_resume_gap_s: float
    shutdown_grace_s: float
    ca_file: str | None
    log_level: str
    sources: tuple[tuple[str, str], ...] = ()  # (setting, where it came from), for `check`

    @property
    def spool_path(self) -> Path:
        return Path(self.state_dir) / "spool.sqlite3"

    def token(self) -> str:
        """Read at each use, so a rotated token file takes effect without a restart."""
        value = os.environ.get("GREENKPI_TOKEN", "").strip()
        if value:
            return value
        if not self.token_file:
            raise ConfigError("no token: set GREENKPI_TOKEN or token_file (GREENKPI_TOKEN_FILE)")
        path = Path(self.token_file)
        try:
            mode = path.stat().st_mode
            value = path.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read token_file {path}: {exc.strerror}") from None
        if mode & (stat.S_IWGRP | stat.S_IWOTH):
            # Others could swap the token for their own and capture our data: refuse.
            raise ConfigError(f"token_file {path} is writable by others; chmod 600")
        if not value:
            raise ConfigError(f"token_file {path} is empty")
        return value


def _coerce(option: Option, value: Any, origin: str) -> Any:
    if value is None or value == "":
        return None
    try:
        if option.kind is float:
            if isinstance(value, bool):
                raise ValueError
            out: Any = float(value)
        elif option.kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            out = int(value)
        else:
            if not isinstance(value, str):
                raise ValueError
            out = value.strip()
    except (TypeError, ValueError):
        raise ConfigError(
            f"{option.name} from {origin} must be a {option.kind.__name__}, got {value!r}"
        ) from None
    if option.choices and out not in option.choices:
        raise ConfigError(f"{option.name} from {origin} must be one of {', '.join(option.choices)}")
    if option.minimum is not None and out < option.minimum:
        raise ConfigError(f"{option.name} from {origin} must be >= {option.minimum}, got {out}")
    return out


def load(flags: dict[str, Any], environ: dict[str, str] | None = None) -> Config:
    """Merge the layers; ``flags`` holds only options given on the command line (None = absent)."""
    env = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {o.name: o.default for o in OPTIONS}
    origin = {o.name: "default" for o in OPTIONS}
    config_file = flags.get("config") or env.get("GREENKPI_CONFIG")
    if config_file or Path(DEFAULT_CONFIG_FILE).is_file():
        path = Path(config_file or DEFAULT_CONFIG_FILE)
        try:
            data = tomllib.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        table = data.get("collector", data)
        if "token" in table:
            raise ConfigError(f"{path}: put the token in token_file or GREENKPI_TOKEN, not here")
        for key, value in table.items():
            if key not in _BY_NAME:
                raise ConfigError(f"{path}: unknown setting {key!r}")
            values[key] = _coerce(_BY_NAME[key], value, str(path))
            origin[key] = str(path)
    for option in OPTIONS:
        name = f"GREENKPI_{option.name.upper()}"
        if env.get(name):
            values[option.name] = _coerce(option, env[name], name)
            origin[option.name] = name
    for key, value in flags.items():
        if key in _BY_NAME and value is not None:
            values[key] = _coerce(_BY_NAME[key], value, f"--{key.replace('_', '-')}")
            origin[key] = "command line"
    values["hostname"] = values["hostname"] or socket.gethostname()
    values["slurm_node"] = values["slurm_node"] or socket.gethostname().split(".")[0]
    values["kube_node"] = values["kube_node"] or env.get("NODE_NAME") or socket.gethostname()
    values["registry_dir"] = values["registry_dir"] or str(Path(values["state_dir"]) / "registry")
    if values["window_s"] < values["sample_interval_s"]:
        raise ConfigError("window_s must be at least sample_interval_s")
    if values["window_s"] > 3600:
        raise ConfigError("window_s must be at most 3600 (the server's longest window)")
    for spec in (values["source"] or "").split(","):
        if not spec.strip():
            continue
        try:
            from greenkpi_collector.sources.exporters import parse_spec

            parse_spec(spec)
        except ValueError as exc:
            raise ConfigError(f"source from {origin['source']}: {exc}") from None
        if values["gpu"] in ("nvml", "sim"):
            # Both would measure the same GPUs: the energy would be counted twice.
            raise ConfigError(
                f"source from {origin['source']} and gpu = {values['gpu']} both measure the "
                "GPUs; set gpu = off (or auto) to use the exporter"
            )
    names = {f.name for f in fields(Config)} - {"sources"}
    return Config(**{k: values[k] for k in names}, sources=tuple(sorted(origin.items())))
