"""The decoder engine: continuous batching over the language half. Synchronous and Ray-free;
`AsyncLLMEngine` drives it from an event loop and the deployment puts it on a replica.

A step (`step_tokens`) samples one token per sequence that is due one and ends sequences by token id, length
or grammar; turning tokens into text and finding stop strings (`outputs`, an `OutputProcessor`) is separate,
so that the async engine can do it while the next step runs. `step` does both, for callers that drive the
engine synchronously.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from services.common.image_embedding import ImageEmbedding
from services.llm_decoder.engine.config import EngineConfig
from services.llm_decoder.engine.model_runner import ModelRunner
from services.llm_decoder.engine.output_processor import OutputProcessor
from services.llm_decoder.engine.sampler import sample
from services.llm_decoder.engine.scheduler import ScheduledStep, Scheduler
from services.llm_decoder.engine.self_check import check_incremental_decode
from services.llm_decoder.engine.sequence import FinishReason, Sequence
from services.llm_decoder.engine.step_failed import StepFailed
from services.llm_decoder.engine.structured_output import GrammarCompiler, TokenMasker
from services.llm_decoder.engine.token_output import TokenOutput
from services.messages import (
    AdapterNotFoundError,
    ContextLengthError,
    DecodeRequest,
    RequestOutput,
    SamplingParams,
)
from services.models.language_half import LanguageHalf
from services.models.lora import AdapterError, AdapterPool, LoRAAdapter, load_peft_adapter

logger = logging.getLogger(__name__)


class AdapterInUseError(RuntimeError):
    """An adapter cannot be unloaded or replaced while sequences are being answered with it."""


@dataclass(frozen=True)
class EngineStats:
    num_running: int
    num_waiting: int
    num_free_slots: int  # sequences that could start now, as far as max_num_seqs goes
    kv_cache_usage: float  # KV blocks held by running sequences / all blocks
    num_kv_blocks: int
    num_free_kv_blocks: int  # held by no running sequence (some still cached for reuse)
    num_preemptions: int  # running sequences sent back to the queue for lack of KV blocks
    num_finished: int
    num_aborted: int
    num_failed: int  # dropped by a step in which the model failed
    prompt_tokens: int
    output_tokens: int
    prefix_cache_queried_tokens: int  # prompt tokens admitted while prefix caching is on
    prefix_cache_hit_tokens: int  # ... whose KV was reused rather than computed
    prefix_cache_blocks: int  # full blocks findable by content, held or free

    @property
    def prefix_cache_hit_rate(self) -> float:
        queried = self.prefix_cache_queried_tokens
        return self.prefix_cache_hit_tokens / queried if queried else 0.0


class LLMEngine:
    def __init__(self, language: LanguageHalf, config: EngineConfig | None = None) -> None:
        self.config = (config or EngineConfig()).for_device(language.device.type)
        self.language = language
        self.runner = ModelRunner(language, self.config)
        if self.config.startup_self_check:
            difference = check_incremental_decode(self.runner, self.config.token_budget)
            logger.info("self-check: incremental decode matches a full forward (largest difference %.1e)", difference)
        self.scheduler = Scheduler(self.config, self.runner.num_blocks, self.runner.kv.block_size)
        vocab_size = language.lm_head_weight.shape[0]
        self.grammars = GrammarCompiler(language.tokenizer, vocab_size, language.stop_token_ids)
        self.token_masks = TokenMasker(vocab_size)
        self.outputs = OutputProcessor(language.tokenizer)
        self._sequences: dict[str, Sequence] = {}
        self._counts = {"finished": 0, "aborted": 0, "failed": 0, "prompt_tokens": 0, "output_tokens": 0}
        # The requests whose prompt began to be computed in the last step (a prompt may take several).
        self.prefills_started: list[str] = []

    def add_request(
        self,
        request_id: str,
        messages: list[dict[str, Any]],
        images: list[ImageEmbedding],
        params: SamplingParams,
        enable_thinking: bool = False,
        adapter: str | None = None,
    ) -> Sequence:
        """Queue a request (after compiling its grammar, if it has one), answered with the loaded adapter
        `adapter` if given. Raises PromptError, ContextLengthError, GrammarError or QueueFullError."""
        sequence = self.prepare(DecodeRequest(request_id, messages, params, enable_thinking), images, adapter)
        if sequence.grammar is not None:
            wait([sequence.grammar])
        self.enqueue(sequence)
        return sequence

    def prepare(self, request: DecodeRequest, images: list[ImageEmbedding], adapter: str | None = None) -> Sequence:
        """Render and check a request, and start compiling its grammar, without touching the queues (safe while
        a step runs elsewhere). `adapter`: the name a loaded adapter answers it under (`request.adapter` is for
        whoever loads it). Raises PromptError, ContextLengthError or AdapterNotFoundError."""
        params = request.params
        hash_root = self._adapter_root(adapter)
        grids = [image.grid_thw for image in images]
        prompt = self.language.render_prompt(request.messages, grids, request.enable_thinking)
        self.language.check_images(prompt, images)
        room = self.config.max_model_len - prompt.num_tokens
        if room < 1:
            raise ContextLengthError(
                f"the prompt is {prompt.num_tokens} tokens; this model's context is {self.config.max_model_len}"
            )
        if params.max_tokens is not None and params.max_tokens > room:
            raise ContextLengthError(
                f"max_tokens {params.max_tokens} + prompt {prompt.num_tokens} tokens exceeds the context of "
                f"{self.config.max_model_len} tokens",
                param="max_tokens",
            )
        max_tokens = params.max_tokens or room
        stop_ids = frozenset(params.stop_token_ids) | (
            frozenset() if params.ignore_eos else self.language.stop_token_ids
        )
        return Sequence(
            request_id=request.request_id,
            prompt=prompt,
            images=images,
            params=params,
            max_tokens=max_tokens,
            stop_token_ids=stop_ids,
            generator=_generator(params.seed, self.runner.device),
            grammar=self.grammars.compile(params.grammar) if params.grammar else None,
            adapter=adapter,
            hash_root=hash_root,
        )

    def load_adapter(self, name: str, directory: Path) -> None:
        """Serve the PEFT LoRA adapter in `directory` as `name` (replacing one of that name). Between steps, on
        the engine's thread. Raises AdapterError, changing nothing, if it cannot run on this model."""
        self.register_adapter(self.read_adapter(name, directory))

    def read_adapter(self, name: str, directory: Path) -> LoRAAdapter:
        """Read and check an adapter for this model without serving it (safe while a step runs elsewhere).
        Raises AdapterError."""
        return load_peft_adapter(name, directory, self.language.text_model, self._adapter_pool().max_rank)

    def register_adapter(self, adapter: LoRAAdapter) -> None:
        """Serve an adapter that `read_adapter` gave. Between steps, on the engine's thread."""
        self._refuse_if_in_use(adapter.name)
        self._adapter_pool().register(adapter)

    def unload_adapter(self, name: str) -> None:
        """Stop serving adapter `name`; sequences already answering with it finish first."""
        pool = self._adapter_pool()
        self._refuse_if_in_use(name)
        if name not in pool.names:
            raise AdapterNotFoundError(f"adapter {name!r} is not loaded")
        pool.unregister(name)

    def _refuse_if_in_use(self, name: str) -> None:
        if any(sequence.adapter == name for sequence in self._sequences.values()):
            raise AdapterInUseError(f"adapter {name!r} is answering requests")

    @property
    def adapter_names(self) -> list[str]:
        return [] if self.runner.adapters is None else self.runner.adapters.names

    def _adapter_pool(self) -> AdapterPool:
        if self.runner.adapters is None:
            raise AdapterError("this decoder serves no LoRA adapters (max_loras is 0)")
        return self.runner.adapters

    def _adapter_root(self, name: str | None) -> bytes:
        """The root of the prompt's KV block hashes: the adapter's digest, so KV is never shared across adapters."""
        if name is None:
            return b""
        if name not in self._adapter_pool():
            raise AdapterNotFoundError(f"the model {name!r} does not exist")
        return self._adapter_pool().digest(name)

    def enqueue(self, sequence: Sequence) -> None:
        """Put a prepared sequence (its grammar compiled) in the waiting queue.
        Raises GrammarError or QueueFullError."""
        if sequence.request_id in self._sequences:
            raise ValueError(f"duplicate request id {sequence.request_id}")
        if sequence.grammar is not None:
            if not sequence.grammar.done():
                raise RuntimeError("enqueue before the grammar is compiled")
            sequence.matcher = sequence.grammar.result().new_matcher()
        self.scheduler.add(sequence)
        self._sequences[sequence.request_id] = sequence
        self.outputs.add(sequence.request_id, sequence.params.stop, sequence.stop_token_ids)

    def abort(self, request_id: str) -> bool:
        """Drop a request wherever it is and free its slot at once; False if it is not here."""
        sequence = self._sequences.get(request_id)
        if sequence is None:
            return False
        sequence.finish_reason = FinishReason.ABORT
        self._release(sequence)
        self.outputs.discard([request_id])
        self._counts["aborted"] += 1
        return True

    def finish(self, request_id: str) -> None:
        """End a sequence that its text ended (a stop string, found after the step that sampled it); nothing
        if it has ended already."""
        sequence = self._sequences.get(request_id)
        if sequence is not None:
            sequence.finish_reason = FinishReason.STOP
            self._release(sequence)
            self._counts["finished"] += 1

    @property
    def has_work(self) -> bool:
        return bool(self.scheduler.waiting or self.scheduler.running)

    def step(self) -> list[RequestOutput]:
        """`step_tokens`, then their text: an output for each request that got a token.
        Raises StepFailed, with the step's requests dropped, when the model fails."""
        try:
            tokens = self.step_tokens()
        except StepFailed as failed:
            self.outputs.discard(failed.request_ids)
            raise
        outputs, stopped = self.outputs.process(tokens)
        for request_id in stopped:
            self.finish(request_id)
        return outputs

    def step_tokens(self) -> list[TokenOutput]:
        """One forward over every running sequence's next token and as many prompt chunks as the token budget
        leaves room for; a token for each sequence that got one. Touches neither the tokenizer nor `outputs`.
        Raises StepFailed, with the step's sequences dropped, when the model fails."""
        scheduled = self.scheduler.schedule()
        self.prefills_started = [sequence.request_id for sequence in scheduled.started]
        try:
            return self._run(scheduled)
        except Exception as error:
            raise self._drop(scheduled.sequences, error) from error

    def _run(self, scheduled: ScheduledStep) -> list[TokenOutput]:
        if not scheduled.chunks:
            return []
        started = time.perf_counter()
        logits = self.runner.run(scheduled)
        self.scheduler.finish_chunks(scheduled)
        sampled = [chunk.sequence for chunk in scheduled.chunks if chunk.samples]
        self._counts["prompt_tokens"] += sum(
            c.sequence.num_prompt_tokens for c in scheduled.prefills if c.samples and not c.sequence.output_token_ids
        )
        outputs = self._sample(sampled, logits) if sampled else []
        if sampled:  # reading the tokens back waited for the forward, on a GPU too: the step's whole time
            self.scheduler.step_took(scheduled, time.perf_counter() - started)
        for sequence in [s for s in sampled if s.finish_reason is not None]:
            self._release(sequence)
            self._counts["finished"] += 1
        return outputs

    def stats(self) -> EngineStats:
        scheduler, blocks = self.scheduler, self.scheduler.blocks
        prefixes = scheduler.prefix_cache_stats()
        return EngineStats(
            num_running=len(scheduler.running),
            num_waiting=len(scheduler.waiting),
            num_free_slots=scheduler.num_free_slots,
            kv_cache_usage=blocks.num_used_blocks / blocks.num_blocks,
            num_kv_blocks=blocks.num_blocks,
            num_free_kv_blocks=blocks.num_free_blocks,
            num_preemptions=scheduler.num_preemptions,
            num_finished=self._counts["finished"],
            num_aborted=self._counts["aborted"],
            num_failed=self._counts["failed"],
            prompt_tokens=self._counts["prompt_tokens"],
            output_tokens=self._counts["output_tokens"],
            prefix_cache_queried_tokens=prefixes.queried_tokens,
            prefix_cache_hit_tokens=prefixes.hit_tokens,
            prefix_cache_blocks=prefixes.num_cached_blocks,
        )

    def _sample(self, sequences: list[Sequence], logits: torch.Tensor) -> list[TokenOutput]:
        logits = self.token_masks.apply(logits, [s.matcher for s in sequences])
        tokens = sample(logits, [s.params for s in sequences], [s.generator for s in sequences])
        return [self._append(sequence, token) for sequence, token in zip(sequences, tokens, strict=True)]

    def _append(self, sequence: Sequence, token_id: int) -> TokenOutput:
        sequence.output_token_ids.append(token_id)
        self._counts["output_tokens"] += 1
        if token_id in sequence.stop_token_ids:
            sequence.finish_reason = FinishReason.STOP
        elif sequence.num_output_tokens >= sequence.max_tokens:
            sequence.finish_reason = FinishReason.LENGTH
        elif sequence.matcher is not None:
            sequence.matcher.accept(token_id)
            if sequence.matcher.is_finished:  # no need to spend a step sampling the end-of-sequence token
                sequence.finish_reason = FinishReason.STOP
        return TokenOutput(
            request_id=sequence.request_id,
            token_id=token_id,
            finish_reason=sequence.finish_reason,
            num_prompt_tokens=sequence.num_prompt_tokens,
            num_output_tokens=sequence.num_output_tokens,
            num_reused_tokens=sequence.num_reused_tokens,
        )

    def _drop(self, sequences: list[Sequence], cause: BaseException) -> StepFailed:
        """Free what a failed step ran. Its chunks' blocks were not registered (that happens after a forward
        succeeds), so no half-written KV is ever shared."""
        dropped = [sequence for sequence in sequences if sequence.request_id in self._sequences]
        for sequence in dropped:
            sequence.finish_reason = FinishReason.ABORT
            self._release(sequence)
            self._counts["failed"] += 1
        return StepFailed([sequence.request_id for sequence in dropped], cause)

    def _release(self, sequence: Sequence) -> None:
        self.scheduler.free(sequence)
        del self._sequences[sequence.request_id]


def _generator(seed: int | None, device: torch.device) -> torch.Generator | None:
    if seed is None:
        return None
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator
