"""Restricting the constrained rows of a batch's logits to the tokens their grammars allow."""

from __future__ import annotations

import os
from functools import cached_property

import llguidance
import torch

from services.llm_decoder.engine.structured_output.grammar_matcher import GrammarMatcher


class TokenMasker:
    """Fills the allowed-token bitmask of every constrained row (32 tokens per int32 word, lowest bit first),
    in parallel over `num_threads`, then expands the bits on the logits' device. Rows without a grammar keep
    their logits bit for bit, so an unconstrained request samples exactly what it would alone."""

    def __init__(self, vocab_size: int, num_threads: int | None = None) -> None:
        self._vocab_size = vocab_size
        self._num_words = (vocab_size + 31) // 32
        # Masks are filled right after the forward pass, while torch's intra-op threads still spin on their
        # cores: by default use only the other cores, or this thread alone when none is spare (a CPU host),
        # since a worker waiting for a core costs more than the work.
        self._num_threads = num_threads or (os.cpu_count() or 1) - torch.get_num_threads()

    @cached_property
    def _executor(self) -> llguidance.LLExecutor:
        # Its thread pool starts with the first constrained batch: most engines never see one.
        return llguidance.LLExecutor(self._num_threads)

    def apply(self, logits: torch.Tensor, matchers: list[GrammarMatcher | None]) -> torch.Tensor:
        """logits: [B, V] with V == vocab_size; `matchers[b]` is row b's grammar, if any -> masked logits
        (a new tensor when some row is constrained: the model's logits may be inference-mode tensors)."""
        constrained = [(row, matcher) for row, matcher in enumerate(matchers) if matcher is not None]
        if not constrained:
            return logits
        rows = [row for row, _ in constrained]
        bitmask = torch.empty(len(rows), self._num_words, dtype=torch.int32)
        self._fill(bitmask, [matcher.llmatcher for _, matcher in constrained])
        shifts = torch.arange(32, dtype=torch.int32, device=logits.device)
        bits = (bitmask.to(logits.device).unsqueeze(-1) >> shifts) & 1  # [R, words, 32]
        allowed = bits.view(len(rows), -1)[:, : self._vocab_size].bool()
        index = torch.tensor(rows, device=logits.device)
        return logits.index_put((index,), logits[index].masked_fill(~allowed, float("-inf")))

    def _fill(self, bitmask: torch.Tensor, matchers: list[llguidance.LLMatcher]) -> None:
        row_bytes = self._num_words * 4
        if self._num_threads > 1 and len(matchers) > 1:
            rows = [(matcher, index) for index, matcher in enumerate(matchers)]
            self._executor.unsafe_compute_mask_ptr(rows, bitmask.data_ptr(), row_bytes, len(matchers))
        else:
            for index, matcher in enumerate(matchers):
                matcher.unsafe_compute_mask_ptr(bitmask.data_ptr() + index * row_bytes, row_bytes)
