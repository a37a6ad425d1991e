"""The payload contract between collectors and the backend.

Pure standard-library Python: the collector imports it to build and pre-check batches, the backend
imports it to validate them. A breaking change means a new module (``v2``) and a new
``schema_version``; the backend accepts every version listed in ``SUPPORTED_VERSIONS``.
"""

from greenkpi_schema.v1 import (
    DEVICE_KINDS,
    METHODS,
    SCHEDULER_KINDS,
    SCHEMA_VERSION,
    SHARE_METHODS,
    SUPPORTED_VERSIONS,
    Batch,
    DeviceInfo,
    FieldError,
    HostFacts,
    K8sPod,
    Limits,
    Sample,
    Share,
    SlurmJob,
    ValidationFailed,
    format_time,
    parse_batch,
)

__all__ = [
    "DEVICE_KINDS",
    "METHODS",
    "SCHEDULER_KINDS",
    "SCHEMA_VERSION",
    "SHARE_METHODS",
    "SUPPORTED_VERSIONS",
    "Batch",
    "DeviceInfo",
    "FieldError",
    "HostFacts",
    "K8sPod",
    "Limits",
    "Sample",
    "Share",
    "SlurmJob",
    "ValidationFailed",
    "format_time",
    "parse_batch",
]
