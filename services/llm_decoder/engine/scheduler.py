"""Which tokens run in the next step: continuous batching within a token budget, over a paged KV cache.

Each step puts every decoding sequence's next token first, then fills what is left of the budget with
prompt chunks: first the prompts already being prefilled, oldest first, then newly admitted ones, in arrival
order. A running stream therefore waits at most one budget-sized step per token, however many or however
long the prompts that arrive, and a prompt longer than the budget is prefilled over several steps. With a
step time target, chunks are also cut to what the step cost model (step_cost.py) predicts fits in it, so a
chunk deep into a long prompt, whose attention costs more, gets fewer tokens. No sequence starves: the
decodes never fill the budget alone (it is at least `max_num_seqs`), each step's first prompt chunk gets at
least a block's worth of tokens whatever the time target says, a started prompt goes before any newer one,
and the waiting queue is first in, first out.

Memory: a sequence is admitted when the free KV blocks hold all its tokens (less the full blocks the prefix
cache already has), and grows by a block when its next token starts one. When a decoding sequence needs a
block and none is free, the newest running sequences are preempted (their blocks freed, to be computed again)
and go back to the head of the queue; no one is admitted in that step. The oldest sequence can always grow,
since the pool holds at least one sequence of `max_model_len`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from services.llm_decoder.engine.block_manager import BlockManager
from services.llm_decoder.engine.config import EngineConfig
from services.llm_decoder.engine.prefix_keys import next_block_hash
from services.llm_decoder.engine.sequence import Sequence, SequenceStatus
from services.llm_decoder.engine.step_cost import StepCostModel, StepShape
from services.messages import QueueFullError
from services.models.kv_cache import BLOCK_SIZE


@dataclass(frozen=True)
class Chunk:
    """`length` tokens of a sequence from position `start` on: a decode (its last sampled token) or a piece of
    its prompt (after a preemption, of its prompt and output)."""

    sequence: Sequence
    start: int
    length: int
    samples: bool  # the step samples a token after this chunk: it reaches the sequence's last token


def _chunk(sequence: Sequence, start: int, length: int) -> Chunk:
    return Chunk(sequence, start, length, samples=start + length >= sequence.num_tokens)


@dataclass(frozen=True)
class ScheduledStep:
    decodes: list[Chunk]  # one token each, oldest sequence first
    prefills: list[Chunk]  # prompt chunks, in the order they were given budget
    started: list[Sequence]  # admitted for the first time in this step (not resumed after a preemption)
    shape: StepShape = field(default_factory=StepShape)  # what the step's time depends on, for the step cost model

    @property
    def chunks(self) -> list[Chunk]:
        """In the flat batch's order: decodes, then prompt chunks."""
        return self.decodes + self.prefills

    @property
    def sequences(self) -> list[Sequence]:
        return [chunk.sequence for chunk in self.chunks]

    @property
    def num_tokens(self) -> int:
        return sum(chunk.length for chunk in self.chunks)


@dataclass(frozen=True)
class PrefixCacheStats:
    queried_tokens: int  # prompt tokens of the sequences admitted while prefix caching is on
    hit_tokens: int  # ... whose KV was reused rather than computed
    num_cached_blocks: int


class Scheduler:
    """`running` is in admission order (the newest last: the first to be preempted)."""

    def __init__(self, config: EngineConfig, num_blocks: int, block_size: int = BLOCK_SIZE) -> None:
        if num_blocks * block_size < config.max_model_len:
            raise ValueError(
                f"{num_blocks} KV blocks of {block_size} tokens cannot hold one sequence of "
                f"max_model_len {config.max_model_len}"
            )
        self.config = config
        self.budget = config.token_budget
        self.step_target_s = config.step_time_target_ms / 1000  # 0: the token budget alone
        self.step_cost = StepCostModel()
        self.block_size = block_size
        self.blocks = BlockManager(num_blocks, enable_caching=config.enable_prefix_caching)
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.prefilling: list[Sequence] = []  # running sequences with more than a token to compute, oldest first
        self.num_preemptions = 0
        self._queried_tokens = 0
        self._hit_tokens = 0

    @property
    def num_free_slots(self) -> int:
        return self.config.max_num_seqs - len(self.running)

    def check_capacity(self, pending: int = 0) -> None:
        """Raise `QueueFullError` if one more request would exceed the waiting bound, with `pending` more on
        their way in. Requests that will get a slot at the next step never count against the bound."""
        waiting = len(self.waiting) + pending
        if waiting >= self.config.max_waiting + self.num_free_slots:
            raise QueueFullError(f"the decoder is at capacity ({waiting} requests waiting)")

    def add(self, sequence: Sequence) -> None:
        self.check_capacity()
        self.waiting.append(sequence)

    def schedule(self) -> ScheduledStep:
        decodes: list[Chunk] = []
        preemptions_before = self.num_preemptions
        for sequence in list(self.running):
            if sequence.status is not SequenceStatus.RUNNING or sequence.is_prefilling:
                continue  # preempted for an older sequence's block in this loop, or still prefilling
            if self._grow(sequence):
                decodes.append(_chunk(sequence, sequence.num_computed_tokens, 1))
        preempted = self.num_preemptions > preemptions_before
        shape = StepShape()
        for decode in decodes:
            shape = shape.with_decode(decode.start + 1)
        left = self.budget - len(decodes)
        prefills: list[Chunk] = []
        for sequence in self.prefilling:
            start = sequence.num_computed_tokens
            length = self._chunk_length(shape, start, min(left, sequence.num_tokens - start), first=not prefills)
            if length == 0:
                break
            prefills.append(_chunk(sequence, start, length))
            shape, left = shape.with_chunk(start, length), left - length
        started: list[Sequence] = []
        while not preempted and left > 0 and self.waiting and self.num_free_slots > 0:
            sequence = self.waiting[0]
            # Sized before admission, as if from the prompt's start: a prefix cache hit only shortens it.
            length = self._chunk_length(shape, 0, min(left, sequence.num_tokens), first=not prefills)
            if length == 0 or not self._has_adapter_slot(sequence) or not self._admit(sequence):
                break
            self.waiting.popleft()
            if sequence.num_preemptions == 0:
                started.append(sequence)
            start = sequence.num_computed_tokens
            prefills.append(_chunk(sequence, start, min(length, sequence.num_tokens - start)))
            shape, left = shape.with_chunk(start, prefills[-1].length), left - prefills[-1].length
        return ScheduledStep(decodes=decodes, prefills=prefills, started=started, shape=shape)

    def _chunk_length(self, shape: StepShape, start: int, most: int, first: bool) -> int:
        """How many of `most` prompt tokens from `start` go into a step of `shape`: all of them unless the
        step cost model says the step would then exceed the time target; at least a block's worth for the
        step's first chunk."""
        if not self.step_target_s or most == 0:
            return most
        fits = self.step_cost.longest_chunk(shape, start, most, self.step_target_s)
        if fits is None:
            return most
        return max(fits, min(most, self.block_size)) if first else fits

    def step_took(self, step: ScheduledStep, seconds: float) -> None:
        """What a step cost, for the step cost model: learnt only while there is a time target to keep."""
        if self.step_target_s:
            self.step_cost.observe(step.shape, seconds)

    def finish_chunks(self, step: ScheduledStep) -> None:
        """After the step's forward: its chunks' tokens are in the cache, and its newly full blocks may be
        shared."""
        for chunk in step.chunks:
            chunk.sequence.num_computed_tokens += chunk.length
            if self.blocks.enable_caching:
                self._register_full_blocks(chunk.sequence)
        # Before sampling: a sequence whose chunk reached its last token samples now and decodes from the next step.
        self.prefilling = [s for s in self.prefilling if s.num_computed_tokens < s.num_tokens]

    def free(self, sequence: Sequence) -> None:
        """Take a finished or aborted sequence out of the queues and release its blocks."""
        if sequence.status is SequenceStatus.WAITING:
            self.waiting.remove(sequence)
        elif sequence.status is SequenceStatus.RUNNING:
            self.running.remove(sequence)
            if sequence in self.prefilling:
                self.prefilling.remove(sequence)
            self._release_blocks(sequence)
        sequence.status = SequenceStatus.FINISHED

    def prefix_cache_stats(self) -> PrefixCacheStats:
        return PrefixCacheStats(self._queried_tokens, self._hit_tokens, self.blocks.num_cached_blocks)

    # -- memory -------------------------------------------------------------------------------------------

    def _grow(self, sequence: Sequence) -> bool:
        """A block for the sequence's next token if it starts one, preempting the newest running sequences
        while none is free. False if the sequence itself was the newest and had to go."""
        if sequence.num_computed_tokens < len(sequence.block_table) * self.block_size:
            return True
        while self.blocks.num_free_blocks == 0:
            victim = self.running[-1]
            self._preempt(victim)
            if victim is sequence:
                return False
        sequence.block_table += self.blocks.allocate(1)
        return True

    def _preempt(self, sequence: Sequence) -> None:
        self.running.remove(sequence)
        if sequence in self.prefilling:
            self.prefilling.remove(sequence)
        self._release_blocks(sequence)
        sequence.num_computed_tokens = 0
        sequence.num_preemptions += 1
        sequence.status = SequenceStatus.WAITING
        self.waiting.appendleft(sequence)
        self.num_preemptions += 1

    def _admit(self, sequence: Sequence) -> bool:
        """Give the sequence blocks for all its tokens, sharing the cached ones; False if they are not free."""
        num_tokens = sequence.num_tokens
        shared: list[int] = []
        if self.blocks.enable_caching:
            self._hash_blocks(sequence, num_tokens // self.block_size)
            # The last token is always computed: its logits give the next output token.
            shared = self.blocks.cached_prefix(sequence.block_hashes)[: (num_tokens - 1) // self.block_size]
        num_new = -(-num_tokens // self.block_size) - len(shared)
        if self.blocks.num_blocks_to_take(shared, num_new) > self.blocks.num_free_blocks:
            return False
        self.blocks.share(shared)
        sequence.block_table = shared + self.blocks.allocate(num_new)
        sequence.num_registered_blocks = len(shared)
        sequence.num_computed_tokens = len(shared) * self.block_size
        if sequence.num_preemptions == 0:
            sequence.num_reused_tokens = sequence.num_computed_tokens
            if self.blocks.enable_caching:
                self._queried_tokens += sequence.num_prompt_tokens
                self._hit_tokens += sequence.num_reused_tokens
        sequence.status = SequenceStatus.RUNNING
        self.running.append(sequence)
        self.prefilling.append(sequence)
        return True

    def _has_adapter_slot(self, sequence: Sequence) -> bool:
        """A step runs at most `max_loras` adapters: one more waits until a running one's sequences end."""
        if sequence.adapter is None:
            return True
        running = {s.adapter for s in self.running if s.adapter is not None}
        return sequence.adapter in running or len(running) < self.config.max_loras

    def _release_blocks(self, sequence: Sequence) -> None:
        self.blocks.free(sequence.block_table)
        sequence.block_table = []
        sequence.num_registered_blocks = 0

    def _hash_blocks(self, sequence: Sequence, num_blocks: int) -> None:
        """Extend the sequence's block hashes to its first `num_blocks` full blocks."""
        hashes, size = sequence.block_hashes, self.block_size
        while len(hashes) < num_blocks:
            start = len(hashes) * size
            parent = hashes[-1] if hashes else sequence.hash_root
            hashes.append(next_block_hash(parent, sequence.keys(start, start + size)))

    def _register_full_blocks(self, sequence: Sequence) -> None:
        full = min(sequence.num_computed_tokens // self.block_size, len(sequence.block_table))
        if sequence.num_registered_blocks >= full:
            return
        self._hash_blocks(sequence, full)
        for index in range(sequence.num_registered_blocks, full):
            self.blocks.register(sequence.block_table[index], sequence.block_hashes[index])
        sequence.num_registered_blocks = full
