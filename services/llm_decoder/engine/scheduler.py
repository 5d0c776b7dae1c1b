"""Which sequences run in the next step: the waiting and running queues of continuous batching."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from services.llm_decoder.engine.config import EngineConfig
from services.llm_decoder.engine.errors import QueueFullError
from services.llm_decoder.engine.prefix_cache import PrefixCache
from services.llm_decoder.engine.sequence import Sequence, SequenceStatus


@dataclass(frozen=True)
class ScheduledStep:
    prefills: list[Sequence]  # newly admitted: compute their prompt, less a reused prefix, and first token
    decodes: list[Sequence]  # already running: one more token each, in one batched forward


@dataclass(frozen=True)
class SlotMove:
    """Move a sequence's cached KV from one slot to another (to keep running slots contiguous)."""

    source: int
    target: int
    length: int


class Scheduler:
    """Running sequences occupy KV slots 0..len(running)-1, in order: `running[i].slot == i`. A sequence is
    matched against the prefix cache when it is admitted, so it reuses what finished just before."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.prefix_cache = PrefixCache(config.prefix_cache_bytes)

    @property
    def num_free_slots(self) -> int:
        return self.config.max_num_seqs - len(self.running)

    def add(self, sequence: Sequence) -> None:
        # Requests that will get a slot at the next step never count against the waiting bound.
        if len(self.waiting) >= self.config.max_waiting + self.num_free_slots:
            raise QueueFullError(f"the decoder is at capacity ({len(self.waiting)} requests waiting)")
        self.waiting.append(sequence)

    def schedule(self) -> ScheduledStep:
        decodes = list(self.running)
        prefills: list[Sequence] = []
        longest = 0
        while self.waiting and self.num_free_slots > 0:
            candidate = self.waiting[0]
            # The last prompt token is always computed: its logits give the first output token.
            reuse = self.prefix_cache.match(candidate.prompt_keys, limit=candidate.num_prompt_tokens - 1)
            num_new = candidate.num_prompt_tokens - reuse.num_tokens
            # Prompts are prefilled together, right-padded to the longest new part: bound the padded size.
            padded = (len(prefills) + 1) * max(longest, num_new)
            if prefills and padded > self.config.max_prefill_tokens:
                break
            self.waiting.popleft()
            self.prefix_cache.use(reuse, candidate.num_prompt_tokens)
            candidate.num_reused_tokens, candidate.reused_kv = reuse.num_tokens, reuse.kv
            candidate.status = SequenceStatus.RUNNING
            candidate.slot = len(self.running)
            self.running.append(candidate)
            prefills.append(candidate)
            longest = max(longest, num_new)
        return ScheduledStep(prefills=prefills, decodes=decodes)

    def free(self, sequence: Sequence) -> SlotMove | None:
        """Take a finished or aborted sequence out of the queues; its slot is refilled by the last one."""
        move = None
        if sequence.status is SequenceStatus.WAITING:
            self.waiting.remove(sequence)
        elif sequence.status is SequenceStatus.RUNNING:
            assert sequence.slot is not None and self.running[sequence.slot] is sequence
            last = self.running.pop()
            if last is not sequence:
                move = SlotMove(source=len(self.running), target=sequence.slot, length=last.num_cached_tokens)
                last.slot = sequence.slot
                self.running[sequence.slot] = last
        sequence.status = SequenceStatus.FINISHED
        sequence.slot = None
        return move
