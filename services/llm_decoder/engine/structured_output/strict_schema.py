"""OpenAI's strict mode on a JSON Schema: an object that lists its properties has no others."""

from __future__ import annotations

from typing import Any

# Keywords whose subschemas each describe the whole of some value (so closing them keeps their meaning).
# Not `allOf` (a branch describes only part of the value: closing it would reject the other branches' keys),
# nor `not` or `if` (closing them would widen what they reject).
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions")
_SCHEMAS = ("items", "prefixItems", "additionalProperties", "anyOf", "oneOf")


def closed_objects(schema: Any) -> Any:
    """A copy of `schema` in which every subschema with `properties` and no `additionalProperties` gets
    `"additionalProperties": false`."""
    if isinstance(schema, list):
        return [closed_objects(item) for item in schema]
    if not isinstance(schema, dict):
        return schema  # a boolean schema, or a keyword's plain value
    closed: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            closed[key] = {name: closed_objects(subschema) for name, subschema in value.items()}
        elif key in _SCHEMAS:
            closed[key] = closed_objects(value)
        else:
            closed[key] = value
    if "properties" in schema and "additionalProperties" not in schema:
        closed["additionalProperties"] = False
    return closed
