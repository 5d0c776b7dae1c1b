"""Turning a request's JSON Schema into a grammar over the model's tokens, off the decode loop, once per schema."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import llguidance
import llguidance.hf

from services.llm_decoder.engine.structured_output.grammar_matcher import GrammarMatcher
from services.llm_decoder.engine.structured_output.strict_schema import closed_objects
from services.messages import GrammarError, GrammarSpec

# Parser state and grammar dumps in error messages would go back to the client: keep them short.
_LIMITS = llguidance.LLParserLimits(verbose_errors=False)


class CompiledGrammar:
    """A schema's grammar, checked and ready; each sequence gets its own matcher (a cheap copy)."""

    def __init__(self, template: llguidance.LLMatcher) -> None:
        self._template = template

    def new_matcher(self) -> GrammarMatcher:
        return GrammarMatcher(self._template.deep_copy())


class GrammarCompiler:
    """Compiles in worker threads, so a slow schema never holds up a decode step, and caches the result by
    the spec's hash (failures too: a bad schema is refused again without recompiling). The cache keeps the
    `max_cached` most recently used schemas."""

    def __init__(
        self,
        tokenizer: Any,  # a fast (Rust-backed) Hugging Face tokenizer
        vocab_size: int,
        stop_token_ids: frozenset[int],
        *,
        max_workers: int = 2,
        max_cached: int = 256,
    ) -> None:
        # vocab_size is the logits' width (the embedding rows, often padded past the tokenizer's ids).
        self._tokenizer = llguidance.hf.from_tokenizer(
            tokenizer, n_vocab=vocab_size, eos_token=sorted(stop_token_ids) or None
        )
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="grammar-compile")
        self._cache: OrderedDict[str, Future[CompiledGrammar]] = OrderedDict()
        self._max_cached = max_cached
        self._lock = threading.Lock()

    def compile(self, spec: GrammarSpec) -> Future[CompiledGrammar]:
        """The spec's grammar, now or later; the future fails with GrammarError if the schema cannot be used."""
        key = spec.cache_key
        with self._lock:
            future = self._cache.get(key)
            if future is None:
                future = self._pool.submit(self._build, spec)
                self._cache[key] = future
                if len(self._cache) > self._max_cached:
                    self._cache.popitem(last=False)
            self._cache.move_to_end(key)
            return future

    def _build(self, spec: GrammarSpec) -> CompiledGrammar:
        schema = closed_objects(json.loads(spec.json_schema)) if spec.strict else spec.json_schema
        try:
            # Compact JSON, overriding any "x-guidance" whitespace option in the schema: fewer tokens, and a
            # model cannot wander off into endless whitespace between keys.
            grammar = llguidance.LLMatcher.grammar_from_json_schema(schema, overrides={"whitespace_flexible": False})
        except ValueError as error:
            raise GrammarError(f"the JSON schema cannot be used: {error}") from None
        # Builds the lexer and parser (the slow part, with the GIL released); errors leave it in an error state.
        template = llguidance.LLMatcher(self._tokenizer, grammar, log_level=0, limits=_LIMITS)
        if template.is_error():
            raise GrammarError(f"the JSON schema cannot be used: {template.get_error()}")
        return CompiledGrammar(template)
