"""Sizing of one decoder engine."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EngineConfig:
    """`max_num_seqs` sequences decode together, each up to `max_model_len` tokens (prompt + output);
    at most `max_waiting` more wait for a slot, beyond which requests are refused at once.
    `max_prefill_tokens` bounds the prompt tokens prefilled in one step (counted padded to the longest
    prompt of the step), so that a burst of arrivals cannot stall the running sequences' next token for
    long; a longer prompt is still admitted, alone. `prefix_cache_bytes` bounds the KV kept from finished
    sequences for the prompts that start with them (follow-up questions); 0 turns prefix caching off."""

    max_num_seqs: int = 16
    max_model_len: int = 4096
    max_waiting: int = 64
    max_prefill_tokens: int = 4096
    prefix_cache_bytes: int = 1 << 30

    @property
    def max_requests(self) -> int:
        """Requests one engine holds at once, decoding or waiting for a slot."""
        return self.max_num_seqs + self.max_waiting

    def __post_init__(self) -> None:
        assert self.max_num_seqs >= 1 and self.max_model_len >= 2
        assert self.max_waiting >= 0 and self.max_prefill_tokens >= 1 and self.prefix_cache_bytes >= 0
