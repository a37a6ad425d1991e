"""Sources that scrape the GPU agents a fleet already runs, instead of calling NVML here.

``--source dcgm-exporter=URL`` (NVIDIA dcgm-exporter) and ``--source kepler=URL`` (Kepler
0.10 and newer) read the Prometheus exposition those agents serve, parsed with
``prometheus_client``'s own parser. Both relay the GPU's energy counter, so windows keep the
collector's counter semantics (``counter_delta``: resets skipped, gaps covered by the next delta),
and an energy series whose unit is not what it claims is caught against the power gauge before it
can make a window 1000x too large (``scrape.EnergyCheck``). docs/collector.md, "Exporter sources".
"""

from __future__ import annotations

from greenkpi_collector.sources.base import Source, SourceUnavailable

KINDS = ("dcgm-exporter", "kepler")


def parse_spec(spec: str) -> tuple[str, str]:
    """``"dcgm-exporter=http://host:9400/metrics"`` -> (kind, url); ValueError names what is wrong."""
    kind, sep, url = spec.partition("=")
    kind, url = kind.strip(), url.strip()
    if not sep or kind not in KINDS:
        raise ValueError(
            f"source must be KIND=URL with KIND one of {', '.join(KINDS)}, got {spec!r}"
        )
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"source {kind}: the URL must start with http:// or https://, got {url!r}")
    return kind, url


def build(spec: str, timeout_s: float = 5.0, interval_s: float = 5.0) -> Source:
    kind, url = parse_spec(spec)
    try:
        if kind == "dcgm-exporter":
            from greenkpi_collector.sources.exporters.dcgm import DcgmExporterSource

            return DcgmExporterSource(url, timeout_s=timeout_s, interval_s=interval_s)
        from greenkpi_collector.sources.exporters.kepler import KeplerSource

        return KeplerSource(url, timeout_s=timeout_s, interval_s=interval_s)
    except ImportError:  # prometheus_client comes with greenkpi[collector]
        raise SourceUnavailable(
            f"{kind}: prometheus_client is not installed (pip install 'greenkpi[collector]')"
        ) from None


def describe(spec: str, timeout_s: float = 2.0) -> tuple[list[str], bool]:
    """For ``greenkpi-collector check``: one scrape, in plain words; (lines, whether GPUs seen)."""
    kind = spec.partition("=")[0].strip()
    try:
        source = build(spec, timeout_s=timeout_s, interval_s=0.0)
    except (SourceUnavailable, ValueError) as exc:
        return [f"GPU ({kind}): not measured: {exc}"], False
    lines = [
        f"GPU ({kind}): {d.uuid} {d.model}: energy counter relayed, unit checked against power"
        for d in source.devices()
    ]
    lines += [f"GPU ({kind}) note: {e}" for e in source.errors() if "not yet confirmed" not in e]
    return lines or [f"GPU ({kind}): no GPU in the exposition"], bool(source.devices())


__all__ = ["KINDS", "build", "describe", "parse_spec"]
