"""What a request asks its output to be: JSON text, valid against a JSON Schema."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GrammarSpec:
    """The output must be JSON valid against `json_schema`, a JSON Schema kept as compact JSON text (small to
    ship between deployments, and hashed for the compiled-grammar cache). Its key order is kept: properties
    are generated in the order the schema lists them. With `strict`, an object that lists its `properties`
    admits no others unless it says so, as OpenAI's strict mode promises."""

    json_schema: str
    strict: bool = False

    @classmethod
    def for_schema(cls, schema: dict[str, Any], strict: bool = False) -> GrammarSpec:
        return cls(json.dumps(schema, ensure_ascii=False, separators=(",", ":")), strict)

    @classmethod
    def json_object(cls) -> GrammarSpec:
        """Any JSON object (OpenAI's JSON mode)."""
        return cls.for_schema({"type": "object"})

    @property
    def cache_key(self) -> str:
        return hashlib.sha256(f"{int(self.strict)}:{self.json_schema}".encode()).hexdigest()
