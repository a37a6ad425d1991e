"""Measurement sources: NVML (GPUs), RAPL (CPU package, DRAM), psutil (estimate, host load)."""

from greenkpi_collector.sources.base import METHOD_RANK, ProcUse, Reading, Source, SourceUnavailable

__all__ = ["METHOD_RANK", "ProcUse", "Reading", "Source", "SourceUnavailable"]
