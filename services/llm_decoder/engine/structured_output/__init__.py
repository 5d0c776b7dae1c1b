"""Structured output: decoding constrained to a JSON Schema, inside the continuous batch."""

from services.llm_decoder.engine.structured_output.grammar_compiler import CompiledGrammar, GrammarCompiler
from services.llm_decoder.engine.structured_output.grammar_matcher import GrammarMatcher
from services.llm_decoder.engine.structured_output.token_mask import TokenMasker

__all__ = ["CompiledGrammar", "GrammarCompiler", "GrammarMatcher", "TokenMasker"]
