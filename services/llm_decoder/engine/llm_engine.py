"""The decoder engine: continuous batching over the language half. Synchronous and Ray-free;
`AsyncLLMEngine` drives it from an event loop and the deployment puts it on a replica."""

from __future__ import annotations

from concurrent.futures import wait
from dataclasses import dataclass
from typing import Any

import torch

from services.common.image_embedding import ImageEmbedding
from services.llm_decoder.engine.config import EngineConfig
from services.llm_decoder.engine.decode_request import DecodeRequest
from services.llm_decoder.engine.errors import ContextLengthError, StepFailed
from services.llm_decoder.engine.model_runner import ModelRunner
from services.llm_decoder.engine.output_processor import OutputProcessor
from services.llm_decoder.engine.sampler import sample
from services.llm_decoder.engine.sampling_params import SamplingParams
from services.llm_decoder.engine.scheduler import ScheduledStep, Scheduler
from services.llm_decoder.engine.sequence import FinishReason, Sequence, SequenceStatus
from services.llm_decoder.engine.structured_output import GrammarCompiler, TokenMasker
from services.models.language_half import LanguageHalf


@dataclass(frozen=True)
class RequestOutput:
    """What one step produced for one request: new text and token ids, and whether it ended."""

    request_id: str
    text: str
    token_ids: tuple[int, ...]
    finish_reason: str | None
    num_prompt_tokens: int
    num_output_tokens: int
    num_reused_tokens: int = 0  # prompt tokens whose KV came from the prefix cache (OpenAI's `cached_tokens`)

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    @staticmethod
    def joined(outputs: list[RequestOutput]) -> RequestOutput:
        """Consecutive outputs of one request, as one (in linear time: a whole answer is thousands)."""
        last = outputs[-1]
        assert all(o.request_id == last.request_id and not o.finished for o in outputs[:-1])
        return RequestOutput(
            request_id=last.request_id,
            text="".join(output.text for output in outputs),
            token_ids=tuple(token for output in outputs for token in output.token_ids),
            finish_reason=last.finish_reason,
            num_prompt_tokens=last.num_prompt_tokens,
            num_output_tokens=last.num_output_tokens,
            num_reused_tokens=last.num_reused_tokens,
        )


@dataclass(frozen=True)
class EngineStats:
    num_running: int
    num_waiting: int
    num_free_slots: int
    kv_cache_usage: float  # cached tokens / capacity
    num_finished: int
    num_aborted: int
    num_failed: int  # dropped by a step in which the model failed
    prompt_tokens: int
    output_tokens: int
    prefix_cache_queried_tokens: int  # prompt tokens admitted while prefix caching is on
    prefix_cache_hit_tokens: int  # ... whose KV was reused rather than computed
    prefix_cache_entries: int
    prefix_cache_bytes: int

    @property
    def prefix_cache_hit_rate(self) -> float:
        queried = self.prefix_cache_queried_tokens
        return self.prefix_cache_hit_tokens / queried if queried else 0.0


class LLMEngine:
    def __init__(self, language: LanguageHalf, config: EngineConfig | None = None) -> None:
        self.config = (config or EngineConfig()).for_device(language.device.type)
        self.language = language
        self.runner = ModelRunner(language, self.config)
        self.scheduler = Scheduler(self.config)
        vocab_size = language.lm_head_weight.shape[0]
        self.grammars = GrammarCompiler(language.tokenizer, vocab_size, language.stop_token_ids)
        self.token_masks = TokenMasker(vocab_size)
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
    ) -> Sequence:
        """Queue a request (after compiling its grammar, if it has one).
        Raises PromptError, ContextLengthError, GrammarError or QueueFullError."""
        sequence = self.prepare(DecodeRequest(request_id, messages, params, enable_thinking), images)
        if sequence.grammar is not None:
            wait([sequence.grammar])
        self.enqueue(sequence)
        return sequence

    def prepare(self, request: DecodeRequest, images: list[ImageEmbedding]) -> Sequence:
        """Render and check a request, and start compiling its grammar, without touching the queues (safe while
        a step runs elsewhere). Raises PromptError or ContextLengthError."""
        params = request.params
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
            output=OutputProcessor(self.language.tokenizer, params.stop, stop_ids, max_tokens),
            generator=_generator(params.seed, self.runner.device),
            grammar=self.grammars.compile(params.grammar) if params.grammar else None,
        )

    def enqueue(self, sequence: Sequence) -> None:
        """Put a prepared sequence (its grammar compiled) in the waiting queue.
        Raises GrammarError or QueueFullError."""
        assert sequence.request_id not in self._sequences, f"duplicate request id {sequence.request_id}"
        if sequence.grammar is not None:
            assert sequence.grammar.done(), "enqueue before the grammar is compiled"
            sequence.matcher = sequence.grammar.result().new_matcher()
        self.scheduler.add(sequence)
        self._sequences[sequence.request_id] = sequence

    def abort(self, request_id: str) -> bool:
        """Drop a request wherever it is and free its slot at once; False if it is not here."""
        sequence = self._sequences.get(request_id)
        if sequence is None:
            return False
        sequence.finish_reason = FinishReason.ABORT
        self._release(sequence)
        self._counts["aborted"] += 1
        return True

    @property
    def has_work(self) -> bool:
        return bool(self.scheduler.waiting or self.scheduler.running)

    def step(self) -> list[RequestOutput]:
        """One forward over every running sequence's next token and as many prompt chunks as the token budget
        leaves room for; an output for each sequence that got a token.
        Raises StepFailed, with the step's sequences dropped, when the model fails."""
        scheduled = self.scheduler.schedule()
        self.prefills_started = [c.sequence.request_id for c in scheduled.prefills if c.is_first]
        try:
            return self._run(scheduled)
        except Exception as error:
            raise self._drop(scheduled.sequences, error) from error

    def _run(self, scheduled: ScheduledStep) -> list[RequestOutput]:
        if not scheduled.chunks:
            return []
        logits = self.runner.run(scheduled)
        self.scheduler.finish_chunks(scheduled)
        sampled = [chunk.sequence for chunk in scheduled.chunks if chunk.samples]
        self._counts["prompt_tokens"] += sum(c.sequence.num_prompt_tokens for c in scheduled.prefills if c.samples)
        outputs = self._sample(sampled, logits) if sampled else []
        for sequence in [s for s in sampled if s.finish_reason is not None]:
            self._release(sequence)
            self._counts["finished"] += 1
        return outputs

    def stats(self) -> EngineStats:
        running = self.scheduler.running
        capacity = self.config.max_num_seqs * self.config.max_model_len
        prefixes = self.scheduler.prefix_cache.stats()
        return EngineStats(
            num_running=len(running),
            num_waiting=len(self.scheduler.waiting),
            num_free_slots=self.scheduler.num_free_slots,
            kv_cache_usage=sum(s.num_computed_tokens for s in running) / capacity,
            num_finished=self._counts["finished"],
            num_aborted=self._counts["aborted"],
            num_failed=self._counts["failed"],
            prompt_tokens=self._counts["prompt_tokens"],
            output_tokens=self._counts["output_tokens"],
            prefix_cache_queried_tokens=prefixes.queried_tokens,
            prefix_cache_hit_tokens=prefixes.hit_tokens,
            prefix_cache_entries=prefixes.num_entries,
            prefix_cache_bytes=prefixes.num_bytes,
        )

    def _sample(self, sequences: list[Sequence], logits: torch.Tensor) -> list[RequestOutput]:
        logits = self.token_masks.apply(logits, [s.matcher for s in sequences])
        tokens = sample(logits, [s.params for s in sequences], [s.generator for s in sequences])
        return [self._append(sequence, token) for sequence, token in zip(sequences, tokens, strict=True)]

    def _append(self, sequence: Sequence, token_id: int) -> RequestOutput:
        sequence.output_token_ids.append(token_id)
        self._counts["output_tokens"] += 1
        text = sequence.output.append(token_id, sequence.num_output_tokens)
        if sequence.matcher is not None and sequence.output.finish_reason is None:
            sequence.matcher.accept(token_id)
            if sequence.matcher.is_finished:  # no need to spend a step sampling the end-of-sequence token
                text += sequence.output.stop()
        if sequence.output.finish_reason is not None:
            sequence.finish_reason = FinishReason(sequence.output.finish_reason)
        return RequestOutput(
            request_id=sequence.request_id,
            text=text,
            token_ids=(token_id,),
            finish_reason=sequence.finish_reason.value if sequence.finish_reason else None,
            num_prompt_tokens=sequence.num_prompt_tokens,
            num_output_tokens=sequence.num_output_tokens,
            num_reused_tokens=sequence.num_reused_tokens,
        )

    def _drop(self, sequences: list[Sequence], cause: BaseException) -> StepFailed:
        """Free what a failed step ran; their KV may be half written, so none of it is kept for reuse."""
        dropped = [sequence for sequence in sequences if sequence.request_id in self._sequences]
        for sequence in dropped:
            sequence.finish_reason = FinishReason.ABORT
            self._release(sequence, keep_prefix=False)
            self._counts["failed"] += 1
        return StepFailed([sequence.request_id for sequence in dropped], cause)

    def _release(self, sequence: Sequence, keep_prefix: bool = True) -> None:
        if keep_prefix and sequence.status is SequenceStatus.RUNNING:
            self._keep_prefix(sequence)
        move = self.scheduler.free(sequence)
        if move is not None:
            self.runner.kv.move(move.source, move.target, move.length)
        del self._sequences[sequence.request_id]

    def _keep_prefix(self, sequence: Sequence) -> None:
        """Copy what the sequence's slot holds into the prefix cache, before the slot is reused."""
        keys = sequence.cached_keys
        if self.scheduler.prefix_cache.should_store(keys):
            if sequence.slot is None:
                raise RuntimeError(f"running sequence {sequence.request_id} has no slot")
            self.scheduler.prefix_cache.store(keys, self.runner.kv.read(sequence.slot, len(keys)))


def _generator(seed: int | None, device: torch.device) -> torch.Generator | None:
    if seed is None:
        return None
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator
