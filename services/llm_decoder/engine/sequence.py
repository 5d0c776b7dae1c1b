"""One request inside the engine: its prompt, its output so far, and the KV blocks that hold its tokens.

A sequence's tokens are its prompt and then its output. Its keys and values are computed for the first
`num_computed_tokens` of them; while decoding, that is all but the last sampled token, which the next step
computes and samples after. A preempted sequence loses its blocks and computes all its tokens again (prompt
and output, in prompt chunks) when it is resumed, then samples where it left off.
"""

from __future__ import annotations

import enum
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import cached_property

import torch

from services.common.image_embedding import ImageEmbedding
from services.llm_decoder.engine.prefix_keys import PrefixKeys, prompt_keys
from services.llm_decoder.engine.structured_output import CompiledGrammar, GrammarMatcher
from services.messages import SamplingParams
from services.models.language_half import Prompt


class SequenceStatus(enum.Enum):
    WAITING = enum.auto()
    RUNNING = enum.auto()
    FINISHED = enum.auto()


class FinishReason(enum.StrEnum):
    STOP = "stop"
    LENGTH = "length"
    ABORT = "abort"


@dataclass(eq=False)
class Sequence:
    request_id: str
    prompt: Prompt
    images: list[ImageEmbedding]
    params: SamplingParams
    max_tokens: int  # the request's bound, already clipped to the context length
    stop_token_ids: frozenset[int] = frozenset()  # the params' and, unless they ignore EOS, the model's
    generator: torch.Generator | None = None
    grammar: Future[CompiledGrammar] | None = None  # compiling in a worker thread until it is done
    matcher: GrammarMatcher | None = None  # set once the grammar is compiled, before the sequence is queued
    status: SequenceStatus = SequenceStatus.WAITING
    finish_reason: FinishReason | None = None
    output_token_ids: list[int] = field(default_factory=list)
    num_reused_tokens: int = 0  # leading prompt tokens whose KV the prefix cache gave at its first admission
    num_computed_tokens: int = 0  # tokens whose keys and values are in its blocks: reused, prefilled, decoded
    block_table: list[int] = field(default_factory=list)  # the KV blocks of its tokens, in order
    block_hashes: list[bytes] = field(default_factory=list)  # content hashes of its first full blocks
    num_registered_blocks: int = 0  # leading blocks offered to the prefix cache
    num_preemptions: int = 0
    adapter: str | None = None  # the LoRA adapter it is answered with; None: the base model
    hash_root: bytes = b""  # the parent of its first block's hash: its adapter's, so KV never crosses adapters

    @property
    def num_prompt_tokens(self) -> int:
        return self.prompt.num_tokens

    @property
    def num_output_tokens(self) -> int:
        return len(self.output_token_ids)

    @property
    def num_tokens(self) -> int:
        return self.num_prompt_tokens + self.num_output_tokens

    @property
    def is_prefilling(self) -> bool:
        """More than the last sampled token is still to be computed: its prompt (over one or several steps'
        chunks), or, after a preemption, its prompt and output again."""
        return not self.output_token_ids or self.num_computed_tokens < self.num_tokens - 1

    @cached_property
    def prompt_keys(self) -> PrefixKeys:
        return prompt_keys(self.prompt, self.images)

    def keys(self, start: int, end: int) -> PrefixKeys:
        """The prefix cache's keys of tokens [start, end)."""
        prompt_end = self.num_prompt_tokens
        keys = self.prompt_keys[start:end]
        if end <= prompt_end:
            return keys
        return keys + tuple(self.output_token_ids[max(start - prompt_end, 0) : end - prompt_end])

    def token_ids(self, start: int, end: int) -> list[int]:
        prompt_end = self.num_prompt_tokens
        ids = self.prompt.token_ids[start:end]
        if end <= prompt_end:
            return ids
        return ids + self.output_token_ids[max(start - prompt_end, 0) : end - prompt_end]

    def positions(self, start: int, end: int) -> torch.Tensor:
        """`[3, end - start]` rope positions of tokens [start, end): the prompt's M-RoPE positions, then each
        output token's index shifted by the prompt's rope delta on all three axes."""
        prompt_end = self.num_prompt_tokens
        prompt = self.prompt.positions[:, start : min(end, prompt_end)]
        if end <= prompt_end:
            return prompt
        outputs = torch.arange(max(start, prompt_end), end).add_(self.prompt.rope_delta).expand(3, -1)
        return torch.cat([prompt, outputs], dim=1)

    @property
    def last_token_id(self) -> int:
        return self.output_token_ids[-1]

    @property
    def is_finished(self) -> bool:
        return self.status is SequenceStatus.FINISHED
