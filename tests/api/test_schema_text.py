"""The schema states the rules every request string keeps (greenkpi/api_schema.py): no NUL
character anywhere (DRF's CharField refuses it, PostgreSQL's text cannot hold it), and nothing
blank where a value is required. A schema-valid string the server then refuses with a 400 is a
conformance failure (schemathesis found one: a silence's comment holding U+0000)."""

from __future__ import annotations

import re

from drf_spectacular.generators import SchemaGenerator


def _free_text(schemas: dict) -> list[tuple[str, dict]]:
    found = []

    def walk(where: str, prop: dict) -> None:
        if prop.get("type") == "string" and not {"format", "enum"} & prop.keys():
            found.append((where, prop))
        for key in ("items", "additionalProperties"):
            if isinstance(prop.get(key), dict):
                walk(f"{where}[]", prop[key])
        for name, child in prop.get("properties", {}).items():
            walk(f"{where}.{name}", child)

    for name, component in schemas.items():
        if name.endswith("Request"):
            walk(name, component)
    return found


def test_every_request_string_refuses_nul_and_a_required_one_refuses_blanks():
    schemas = SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]
    strings = _free_text(schemas)
    assert any(where == "SilenceInputRequest.comment" for where, _ in strings)
    for where, prop in strings:
        pattern = re.compile(prop["pattern"])  # every one has a pattern
        assert pattern.search("a\x00b") is None, where
        assert pattern.search("plain-text_1") is not None, where
        if prop.get("minLength") == 1:
            assert pattern.search(" \t ") is None, where


def test_the_silence_api_refuses_a_nul_in_its_comment_naming_the_field():
    from greenkpi.integrations.api import AlertSilenceApi

    serializer = AlertSilenceApi.SilenceInput(data={"duration_s": 600, "comment": "a\x00"})
    assert not serializer.is_valid()
    assert list(serializer.errors) == ["comment"]
