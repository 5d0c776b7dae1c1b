"""The LLM decoder: prompt prefill with image embeddings, batched decoding, streaming text."""

from services.llm_decoder.detokenizer import IncrementalDetokenizer

__all__ = ["IncrementalDetokenizer"]
