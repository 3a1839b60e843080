"""Typed descriptions of API request bodies: checked before a handler runs, and published in the
OpenAPI document.

A :class:`Body` is a tuple of :class:`Field` s. :meth:`Body.check` refuses (``ApiError(400)``
with the reason) unknown keys, missing required keys, wrong JSON types, numbers out of range and
strings not among the choices, so a handler of a described route sees only a valid body and a
refused request changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from meterd.api.errors import ApiError

_JSON_TYPES: dict[type, str] = {bool: "boolean", int: "integer", float: "number", str: "string"}


@dataclass(frozen=True)
class Field:
    """One key of a JSON body: its Python type (bool, int, float — an integer is also accepted —
    or str), whether it is required, inclusive bounds for numbers, allowed values, and a short
    description with its unit."""

    name: str
    kind: type
    description: str = ""
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str | int, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in _JSON_TYPES:
            raise TypeError(f"field {self.name}: type {self.kind.__name__} is not a JSON scalar type")

    def check(self, value: Any) -> None:
        """Raise ApiError(400) when ``value`` does not fit this field."""
        if not self._type_fits(value):
            raise ApiError(400, f"{self.name} must be {'an' if self.kind is int else 'a'} "
                                f"{_JSON_TYPES[self.kind]}, got {type(value).__name__} {value!r}")
        if self.minimum is not None and value < self.minimum or self.maximum is not None and value > self.maximum:
            raise ApiError(400, f"{self.name}={value} out of range {_bound(self.minimum)}..{_bound(self.maximum)}")
        if self.choices and value not in self.choices:
            raise ApiError(400, f"{self.name}={value!r}: expected one of {', '.join(map(str, self.choices))}")

    def _type_fits(self, value: Any) -> bool:
        if isinstance(value, bool):
            return self.kind is bool
        if self.kind is float:
            return isinstance(value, int | float)
        return isinstance(value, self.kind)

    def json_schema(self) -> dict[str, Any]:
        """This field as a JSON Schema (2020-12, as OpenAPI 3.1 uses it)."""
        schema: dict[str, Any] = {"type": _JSON_TYPES[self.kind]}
        if self.description:
            schema["description"] = self.description
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        if self.choices:
            schema["enum"] = list(self.choices)
        return schema


def _bound(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


@dataclass(frozen=True)
class Body:
    """The JSON object a route takes."""

    fields: tuple[Field, ...]

    def check(self, body: Mapping[str, Any]) -> None:
        """Raise ApiError(400) with the reason when ``body`` does not fit."""
        known = {f.name: f for f in self.fields}
        unknown = sorted(set(body) - set(known))
        if unknown:
            raise ApiError(400, f"unknown key(s) {', '.join(unknown)} (known: {', '.join(known) or 'none'})")
        for field in self.fields:
            if field.name in body:
                field.check(body[field.name])
            elif field.required:
                raise ApiError(400, f"body needs {field.name!r}")

    def json_schema(self) -> dict[str, Any]:
        """The body as a JSON Schema object (no other keys allowed)."""
        schema: dict[str, Any] = {"type": "object", "additionalProperties": False,
                                  "properties": {f.name: f.json_schema() for f in self.fields}}
        required = [f.name for f in self.fields if f.required]
        if required:
            schema["required"] = required
        return schema


EMPTY = Body(())
"""A route that takes no body (or an empty object)."""
