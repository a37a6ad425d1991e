"""drf-spectacular post-processing: what the generated schema cannot say by itself.

Every DRF CharField refuses a NUL character (U+0000, which PostgreSQL's text cannot hold), and
one that refuses blanks gets ``minLength: 1`` from drf-spectacular (COMPONENT_SPLIT_REQUEST);
DRF also trims surrounding whitespace first, so "   " is blank too. The ``request_text`` hook
says both with a ``pattern`` on each free-text request string, so a client or a fuzzer that
reads the schema sends what the server accepts.
"""

from __future__ import annotations

from typing import Any

# ECMA-262 and Python's re both read \u0000; the anchors make the class cover the whole string.
TEXT = r"^[^\u0000]*$"
NON_BLANK_TEXT = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"


def _free_text(prop: dict[str, Any]) -> None:
    """Give a free-text string (no format, enum or pattern of its own) its NUL and blank rule,
    looking into arrays, dictionaries and nested objects too."""
    if prop.get("type") == "string" and not {"format", "enum", "pattern"} & prop.keys():
        prop["pattern"] = NON_BLANK_TEXT if prop.get("minLength") == 1 else TEXT
    for key in ("items", "additionalProperties"):
        if isinstance(prop.get(key), dict):
            _free_text(prop[key])
    for child in prop.get("properties", {}).values():
        _free_text(child)


def request_text(result: dict[str, Any], generator: Any, request: Any, public: bool):
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request"):
            _free_text(component)
    return result


def list_bounds(result: dict[str, Any], generator: Any, request: Any, public: bool):
    """A many=True serializer's min_length/max_length, which drf-spectacular does not emit."""
    from greenkpi.workloads.api import DriftReportsApi

    features = DriftReportsApi.DriftReportsInput().fields["features"]
    schemas = result.get("components", {}).get("schemas", {})
    prop = schemas.get("DriftReportsInputRequest", {}).get("properties", {}).get("features")
    if prop is not None:
        prop["minItems"], prop["maxItems"] = features.min_length, features.max_length
    return result


def ingest_example(result: dict[str, Any], generator: Any, request: Any, public: bool):
    """A valid example batch with timestamps relative to when the schema is served, so clients
    and fuzzers that start from the examples send something the server stores."""
    from datetime import UTC, datetime, timedelta

    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)

    def at(seconds: int) -> str:
        return (start + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")

    example = {
        "schema_version": 1,
        "host": {"hostname": "gpu-node-7", "agent_version": "0.1.0", "clock": at(3600)},
        "samples": [
            {
                "device_uuid": "GPU-example-0",
                "device_kind": "gpu",
                "start": at(60 * i),
                "end": at(60 * (i + 1)),
                "energy_j": 30450.0,
                "method": "counter",
                "power_avg_w": 507.5,
                "util_busy": 0.93,
            }
            for i in range(3)
        ],
    }
    operation = result.get("paths", {}).get("/api/v1/ingest/", {}).get("post")
    if operation is not None:
        content = operation["requestBody"]["content"]["application/json"]
        content["examples"] = {"batch": {"summary": "Three 60 s windows", "value": example}}
    return result


def bodies_required(result: dict[str, Any], generator: Any, request: Any, public: bool):
    """A request body with required fields is itself required (a POST without a body and without
    a Content-Type is refused, 400 or 415), so say so; one whose fields are all optional (closing
    a run) may be omitted."""
    schemas = result.get("components", {}).get("schemas", {})
    for path in result.get("paths", {}).values():
        for operation in path.values():
            if not isinstance(operation, dict) or "requestBody" not in operation:
                continue
            for media in operation["requestBody"].get("content", {}).values():
                schema = media.get("schema", {})
                ref = schema.get("$ref", "")
                schema = schemas.get(ref.rsplit("/", 1)[-1], {}) if ref else schema
                if schema.get("required"):
                    operation["requestBody"]["required"] = True
    return result
