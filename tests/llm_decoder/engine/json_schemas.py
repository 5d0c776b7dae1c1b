"""JSON Schemas whose every valid document is short, so that a random-weight model under a grammar must finish
one within a small token budget: every string, number and array is bounded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RECEIPT_FILE = Path(__file__).parents[3] / "examples" / "receipt_schema.json"


def receipt() -> dict[str, Any]:
    """The example of docs/api.md: the `json_schema` object of a response_format (name, strict, schema)."""
    document: dict[str, Any] = json.loads(RECEIPT_FILE.read_text())
    return document


NESTED = {
    "type": "object",
    "properties": {
        "merchant": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 12},
                "city": {"enum": ["北京", "上海", "深圳", "Zürich"]},
            },
            "required": ["name", "city"],
        },
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": 8},
                    "quantity": {"type": "integer", "minimum": 1, "maximum": 99},
                    "price": {"type": "number", "exclusiveMinimum": 0, "maximum": 999, "multipleOf": 0.5},
                },
                "required": ["name", "quantity", "price"],
            },
            "minItems": 1,
            "maxItems": 3,
        },
    },
    "required": ["merchant", "items"],
}

PATTERNS = {
    "type": "object",
    "properties": {
        "invoice": {"type": "string", "pattern": "^INV-[0-9]{4}-[A-Z]{2}$"},
        "date": {"type": "string", "format": "date"},
        "note": {"type": "string", "pattern": "^[一-龥]{1,6}$"},  # CJK characters only: several bytes each
        "tags": {"type": "array", "items": {"enum": ["food", "taxi", "hotel"]}, "maxItems": 2},
    },
    "required": ["invoice", "date", "note", "tags"],
    "additionalProperties": False,
}

ALTERNATIVES = {
    "type": "array",
    "items": {
        "anyOf": [
            {"type": "integer", "minimum": -50, "maximum": 50},
            {"type": "boolean"},
            {"type": "null"},
            {"$ref": "#/$defs/point"},
        ]
    },
    "minItems": 2,
    "maxItems": 4,
    "$defs": {
        "point": {
            "type": "object",
            "properties": {"x": {"type": "integer", "minimum": 0, "maximum": 9}, "label": {"const": "p"}},
            "required": ["x", "label"],
        }
    },
}

# name -> (schema, strict). Strict closes the objects that do not close themselves, as the tests rely on.
SCHEMAS: dict[str, tuple[dict[str, Any], bool]] = {
    "receipt": (receipt()["schema"], True),
    "nested": (NESTED, True),
    "patterns": (PATTERNS, False),
    "alternatives": (ALTERNATIVES, True),
}
