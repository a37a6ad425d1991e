"""drf-spectacular post-processing: what the generated schema cannot say by itself.

Request strings that DRF refuses when blank get ``minLength: 1`` from drf-spectacular
(COMPONENT_SPLIT_REQUEST); DRF also trims surrounding whitespace first, so "   " is blank too.
The hook adds ``pattern: \\S`` (at least one non-space character) to those strings, so a client
or a fuzzer that reads the schema sends what the server accepts.
"""

from __future__ import annotations

from typing import Any

NON_BLANK = r"\S"


def require_non_blank(result: dict[str, Any], generator: Any, request: Any, public: bool):
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if not name.endswith("Request"):
            continue
        for prop in component.get("properties", {}).values():
            if (
                prop.get("type") == "string"
                and prop.get("minLength") == 1
                and not {"format", "enum", "pattern"} & prop.keys()
            ):
                prop["pattern"] = NON_BLANK
    return result
