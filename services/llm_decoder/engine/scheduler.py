"""Which tokens run in the next step: continuous batching within a token budget.

Each step puts every decoding sequence's next token first, then fills what is left of the budget with
prompt chunks: first the prompts already being prefilled, oldest first, then newly admitted ones, in arrival
order. A running stream therefore waits at most one budget-sized step per token, however many or however
long the prompts that arrive, and a prompt longer than the budget is prefilled over several steps. No
sequence starves: the decodes never fill the budget alone (it is at least `max_num_seqs`), a started prompt
goes before any newer one, and the waiting queue is first in, first out.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from services.llm_decoder.engine.config import EngineConfig
from services.llm_decoder.engine.errors import QueueFullError
from services.llm_decoder.engine.prefix_cache import PrefixCache
from services.llm_decoder.engine.sequence import Sequence, SequenceStatus


@dataclass(frozen=True)
class Chunk:
    """`length` tokens of a sequence from position `start` on: a decode (one token, after the prompt) or a
    piece of its prompt."""

    sequence: Sequence
    start: int
    length: int

    @property
    def is_decode(self) -> bool:
        return self.start >= self.sequence.num_prompt_tokens

    @property
    def is_first(self) -> bool:
        """The first chunk of the prompt the sequence computes (after what the prefix cache gave it)."""
        return not self.is_decode and self.start == self.sequence.num_reused_tokens

    @property
    def samples(self) -> bool:
        """Whether the step samples a token after this chunk: a decode, or a chunk that ends the prompt."""
        return self.start + self.length >= self.sequence.num_prompt_tokens


@dataclass(frozen=True)
class ScheduledStep:
    decodes: list[Chunk]  # one token each, in slot order
    prefills: list[Chunk]  # prompt chunks, in the order they were given budget

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
        self.budget = config.token_budget
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.prefilling: list[Sequence] = []  # running sequences whose prompt is not all computed, oldest first
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
        decodes = [Chunk(s, s.num_computed_tokens, 1) for s in self.running if not s.is_prefilling]
        left = self.budget - len(decodes)
        prefills: list[Chunk] = []
        for sequence in self.prefilling:
            if left == 0:
                break
            prefills.append(self._prompt_chunk(sequence, left))
            left -= prefills[-1].length
        while left > 0 and self.waiting and self.num_free_slots > 0:
            self._admit(self.waiting.popleft())
            prefills.append(self._prompt_chunk(self.prefilling[-1], left))
            left -= prefills[-1].length
        return ScheduledStep(decodes=decodes, prefills=prefills)

    def finish_chunks(self, step: ScheduledStep) -> None:
        """After the step's forward: its chunks' tokens are in the cache."""
        for chunk in step.chunks:
            chunk.sequence.num_computed_tokens += chunk.length
        self.prefilling = [s for s in self.prefilling if s.is_prefilling]

    def _admit(self, sequence: Sequence) -> None:
        # The last prompt token is always computed: its logits give the first output token.
        reuse = self.prefix_cache.match(sequence.prompt_keys, limit=sequence.num_prompt_tokens - 1)
        self.prefix_cache.use(reuse, sequence.num_prompt_tokens)
        sequence.num_reused_tokens = sequence.num_computed_tokens = reuse.num_tokens
        sequence.reused_kv = reuse.kv
        sequence.status = SequenceStatus.RUNNING
        sequence.slot = len(self.running)
        self.running.append(sequence)
        self.prefilling.append(sequence)

    @staticmethod
    def _prompt_chunk(sequence: Sequence, budget: int) -> Chunk:
        start = sequence.num_computed_tokens
        return Chunk(sequence, start, min(sequence.num_prompt_tokens - start, budget))

    def free(self, sequence: Sequence) -> SlotMove | None:
        """Take a finished or aborted sequence out of the queues; its slot is refilled by the last one."""
        move = None
        if sequence.status is SequenceStatus.WAITING:
            self.waiting.remove(sequence)
        elif sequence.status is SequenceStatus.RUNNING:
            if sequence.slot is None or self.running[sequence.slot] is not sequence:
                raise RuntimeError(f"running sequence {sequence.request_id} is not in its slot")
            if sequence in self.prefilling:
                self.prefilling.remove(sequence)
            last = self.running.pop()
            if last is not sequence:
                move = SlotMove(source=len(self.running), target=sequence.slot, length=last.num_computed_tokens)
                last.slot = sequence.slot
                self.running[sequence.slot] = last
        sequence.status = SequenceStatus.FINISHED
        sequence.slot = None
        return move
