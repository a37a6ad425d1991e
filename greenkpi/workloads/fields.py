"""Input fields that take only the JSON type the schema states.

DRF coerces: ``0`` is a fine CharField ("0") and BooleanField (False), ``"5"`` a fine integer.
The schema says string, boolean and integer, so a client (or a fuzzer) sending another type is
told so with a 400 naming the field, instead of having its value reinterpreted.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


def _refuse_type(field: serializers.Field, data: Any, allowed: tuple[type, ...]) -> None:
    if isinstance(data, bool) and bool not in allowed:
        field.fail("invalid_type")
    if not isinstance(data, allowed):
        field.fail("invalid_type")


class StrictCharField(serializers.CharField):
    default_error_messages = {"invalid_type": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        _refuse_type(self, data, (str,))
        return super().to_internal_value(data)


class StrictSlugField(serializers.SlugField):
    default_error_messages = {"invalid_type": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        _refuse_type(self, data, (str,))
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid_type": "Must be true or false."}

    def to_internal_value(self, data: Any) -> bool:
        _refuse_type(self, data, (bool,))
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    default_error_messages = {"invalid_type": "Must be an integer."}

    def to_internal_value(self, data: Any) -> int:
        _refuse_type(self, data, (int,))
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    default_error_messages = {"invalid_type": "Must be a number."}

    def to_internal_value(self, data: Any) -> float:
        _refuse_type(self, data, (int, float))
        return super().to_internal_value(data)
