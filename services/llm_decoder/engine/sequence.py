"""One request inside the engine: its prompt, its output so far, and where its KV lives."""

from __future__ import annotations

import enum
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import cached_property

import torch

from services.common.image_embedding import ImageEmbedding
from services.llm_decoder.engine.prefix_keys import PrefixKeys, prompt_keys
from services.llm_decoder.engine.sampling_params import SamplingParams
from services.llm_decoder.engine.structured_output import CompiledGrammar, GrammarMatcher
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
    slot: int | None = None
    finish_reason: FinishReason | None = None
    output_token_ids: list[int] = field(default_factory=list)
    num_reused_tokens: int = 0  # leading prompt tokens whose KV came from the prefix cache
    reused_kv: torch.Tensor | None = None  # ... that KV, from admission until its first chunk puts it in the slot
    num_computed_tokens: int = 0  # tokens whose keys and values are in the slot: reused, prefilled, decoded

    @property
    def num_prompt_tokens(self) -> int:
        return self.prompt.num_tokens

    @property
    def num_output_tokens(self) -> int:
        return len(self.output_token_ids)

    @property
    def is_prefilling(self) -> bool:
        """Some of the prompt is still to be computed (over one or several steps' chunks)."""
        return self.num_computed_tokens < self.num_prompt_tokens

    @cached_property
    def prompt_keys(self) -> PrefixKeys:
        return prompt_keys(self.prompt, self.images)

    @property
    def cached_keys(self) -> PrefixKeys:
        """The prefix cache's keys of the tokens whose KV is in the slot."""
        computed = self.num_computed_tokens
        if computed <= self.num_prompt_tokens:
            return self.prompt_keys[:computed]
        return self.prompt_keys + tuple(self.output_token_ids[: computed - self.num_prompt_tokens])

    @property
    def last_token_id(self) -> int:
        return self.output_token_ids[-1]

    @property
    def is_finished(self) -> bool:
        return self.status is SequenceStatus.FINISHED
