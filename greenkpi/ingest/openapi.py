"""OpenAPI descriptions of the ingest contract (the validation itself lives in greenkpi_schema)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse

from greenkpi_schema import (
    DEVICE_KINDS,
    METHODS,
    SCHEDULER_KINDS,
    SHARE_METHODS,
    SUPPORTED_VERSIONS,
)
from greenkpi_schema.v1 import (
    K8S_MAX_ANNOTATIONS,
    K8S_MAX_LABELS,
    K8S_NAMESPACE_PATTERN,
    K8S_POD_PATTERN,
    K8S_TEXT_LIMITS,
    SLURM_ID_FIELDS,
    SLURM_JOB_ID_PATTERN,
    SLURM_TEXT_LIMITS,
)

INGEST_DESCRIPTION = """
Stores a batch of measurement windows from one host. Authenticate with a collector token
(`Authorization: Bearer gkc_...`); the organisation comes from the token, never from the body.

* **Idempotent**: send an `Idempotency-Key` per batch. A replay answers as the first time did
  (header `Idempotent-Replayed: true`); the same key with another body gets 422. Samples are also
  unique per (device, window start): resending them under a new key stores nothing new.
* **Atomic**: the batch is stored whole or not at all; 201 comes only after commit.
* **Errors** are RFC 7807 `application/problem+json`; a 400 lists every bad field with a JSON
  pointer and the sample index. 413: too many bytes (also after gzip) or samples; 429: over the
  token's rate, wait `Retry-After` seconds.
"""

_number = {"type": "number"}
_nullable_number = {"type": "number", "nullable": True}
_time = {
    "type": "string",
    "format": "date-time",
    "description": "ISO 8601 with a time zone (UTC, Z)",
}

SLURM_SCHEDULER_SCHEMA = {
    "type": "object",
    "description": "The Slurm job this share belongs to (docs/api.md, 'Scheduler identity')",
    "required": ["kind", "cluster", "job_id"],
    "properties": {
        "kind": {"type": "string", "enum": ["slurm"]},
        "job_id": {
            "type": "string",
            "pattern": SLURM_JOB_ID_PATTERN,
            "description": '"1234", array task "1234_7", het component "1234+1"',
        },
        **{
            name: {"type": "string", "minLength": 1, "maxLength": limit}
            for name, limit in SLURM_TEXT_LIMITS.items()
        },
        **{
            name: {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}
            for name in SLURM_ID_FIELDS
        },
        "start": {**_time, "nullable": True},
        "end": {**_time, "nullable": True},
        "complete": {
            "type": "boolean",
            "default": True,
            "description": "false: the job lookup failed, only the fields sent are known",
        },
    },
}

_string_map = {"type": "object", "additionalProperties": {"type": "string"}}
K8S_SCHEDULER_SCHEMA = {
    "type": "object",
    "description": "The Kubernetes pod this share belongs to (docs/api.md, 'Scheduler identity')",
    "required": ["kind", "namespace", "pod"],
    "properties": {
        "kind": {"type": "string", "enum": ["k8s"]},
        "namespace": {"type": "string", "pattern": K8S_NAMESPACE_PATTERN},
        "pod": {"type": "string", "pattern": K8S_POD_PATTERN},
        **{
            name: {"type": "string", "minLength": 1, "maxLength": limit}
            for name, limit in K8S_TEXT_LIMITS.items()
        },
        "labels": {**_string_map, "maxProperties": K8S_MAX_LABELS},
        "annotations": {
            **_string_map,
            "maxProperties": K8S_MAX_ANNOTATIONS,
            "description": "Only the ones GreenKPI reads, e.g. greenkpi.io/run",
        },
        "start": {**_time, "nullable": True},
        "end": {**_time, "nullable": True},
        "complete": {
            "type": "boolean",
            "default": True,
            "description": "false: the API server could not be asked; labels are unknown",
        },
    },
}
SCHEDULER_SCHEMA = {
    "description": f"Who scheduled this share's work: one of {', '.join(SCHEDULER_KINDS)}",
    "oneOf": [SLURM_SCHEDULER_SCHEMA, K8S_SCHEDULER_SCHEMA],
    "discriminator": {"propertyName": "kind"},
}

SHARE_SCHEMA = {
    "type": "object",
    "required": ["energy_j"],
    "properties": {
        "energy_j": {
            **_number,
            "minimum": 0,
            "description": "Joules of the window used by this share",
        },
        "method": {"type": "string", "enum": list(SHARE_METHODS), "default": "declared"},
        "team": {"type": "string", "description": "Team slug in the token's organisation"},
        "model": {
            "type": "string",
            "description": "Model key (free text, matched to the registry)",
        },
        "run": {"type": "string", "description": "Run key"},
        "pid": {"type": "integer", "minimum": 0},
        "tags": {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 32},
        "scheduler": SCHEDULER_SCHEMA,
    },
}

SAMPLE_SCHEMA = {
    "type": "object",
    "required": ["device_uuid", "device_kind", "start", "end", "energy_j", "method"],
    "properties": {
        "device_uuid": {"type": "string", "maxLength": 200},
        "device_kind": {"type": "string", "enum": list(DEVICE_KINDS)},
        "start": _time,
        "end": _time,
        "energy_j": {**_number, "minimum": 0, "description": "Energy over the window, joules"},
        "method": {"type": "string", "enum": list(METHODS)},
        "power_avg_w": {**_nullable_number, "minimum": 0},
        "power_peak_w": {**_nullable_number, "minimum": 0},
        "util_busy": {
            **_nullable_number,
            "minimum": 0,
            "maximum": 1,
            "description": "Busy fraction",
        },
        "util_sm": {**_nullable_number, "minimum": 0, "maximum": 1, "description": "SM activity"},
        "mem_used_bytes": {"type": "integer", "nullable": True, "minimum": 0},
        "mem_total_bytes": {"type": "integer", "nullable": True, "minimum": 0},
        "temperature_c": _nullable_number,
        "idle_s": {**_nullable_number, "minimum": 0, "description": "Seconds with busy < 5 %"},
        "shares": {"type": "array", "items": SHARE_SCHEMA, "maxItems": 64},
    },
}

BATCH_SCHEMA = {
    "type": "object",
    "required": ["schema_version", "host", "samples"],
    "properties": {
        "schema_version": {"type": "integer", "enum": list(SUPPORTED_VERSIONS)},
        "host": {
            "type": "object",
            "required": ["hostname"],
            "properties": {
                "hostname": {"type": "string", "maxLength": 255},
                "agent_version": {"type": "string"},
                "site": {"type": "string", "description": "Site name hint"},
                "clock": _time,
                "spool_depth": {"type": "integer", "minimum": 0},
                "dropped_windows": {"type": "integer", "minimum": 0},
                "source_errors": {"type": "array", "items": {"type": "string"}},
                "devices": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["uuid", "kind"],
                        "properties": {
                            "uuid": {"type": "string"},
                            "kind": {"type": "string", "enum": list(DEVICE_KINDS)},
                            "model": {"type": "string"},
                            "power_limit_w": _nullable_number,
                        },
                    },
                },
            },
        },
        "samples": {"type": "array", "items": SAMPLE_SCHEMA},
    },
}

RESULT_SCHEMA = {
    "type": "object",
    "properties": {
        "batch_id": {"type": "integer"},
        "host_id": {"type": "integer"},
        "accepted": {"type": "integer", "description": "New samples stored"},
        "duplicates": {
            "type": "integer",
            "description": "Samples already stored (same device+start)",
        },
        "clock_skew_s": _nullable_number,
        "warnings": {"type": "array", "items": {"type": "string"}},
    },
}

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 7807 problem details",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "Every bad field, with an RFC 6901 JSON pointer into the body",
            "items": {
                "type": "object",
                "required": ["pointer", "code", "detail"],
                "properties": {
                    "pointer": {"type": "string"},
                    "code": {"type": "string"},
                    "detail": {"type": "string"},
                    "sample_index": {"type": "integer", "nullable": True},
                },
            },
        },
        "fields": {
            "type": "object",
            "description": "The same errors as a map of field name to messages (older form)",
        },
    },
}

# What each error status means wherever it appears; an operation lists the ones it can give.
PROBLEM_DESCRIPTIONS = {
    400: "Invalid request; errors[] names every bad field",
    401: "Missing, malformed, revoked or expired credentials",
    403: "Authenticated but not allowed (a collector token reading; a viewer writing)",
    404: "Not found, or not visible to the caller (the same answer for both)",
    405: "Method not allowed",
    406: "Not acceptable (ask for application/json)",
    411: "Chunked body the server cannot read; send Content-Length",
    413: "Body too large (also after gunzip) or too many samples: split it",
    415: "Content-Type is not application/json",
    422: "The Idempotency-Key was used with a different body",
    429: "Over the token's rate; wait Retry-After seconds",
}


def problems(*statuses: int, **descriptions: str) -> dict:
    """drf-spectacular responses for the given error statuses, as application/problem+json.
    ``descriptions`` (e.g. ``s404="..."``) override the generic wording for one operation."""
    return {
        (status, PROBLEM_MEDIA_TYPE): OpenApiResponse(
            PROBLEM_SCHEMA,
            description=descriptions.get(f"s{status}", PROBLEM_DESCRIPTIONS[status]),
        )
        for status in statuses
    }
