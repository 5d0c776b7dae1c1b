"""The engine's forward passes: prefill of one sequence, and one batched decode step of many."""

from __future__ import annotations

import torch

from services.llm_decoder.engine.config import EngineConfig
from services.llm_decoder.engine.sequence import Sequence
from services.models.kv_cache import SlotKVCache
from services.models.language_half import LanguageHalf


class ModelRunner:
    def __init__(self, language: LanguageHalf, config: EngineConfig) -> None:
        self.language = language
        self.device = language.device
        self.kv = SlotKVCache(language.kv_shape, config.max_num_seqs, config.max_model_len, language.device)

    @torch.inference_mode()
    def prefill(self, sequence: Sequence) -> torch.Tensor:
        """Logits [V] after the whole prompt, its KV written to the sequence's slot."""
        assert sequence.slot is not None
        embeds = self.language.embed_prompt(sequence.prompt, sequence.images)
        length = embeds.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=self.device).tril()
        logits = self.language.forward(
            embeds,
            sequence.prompt.positions.unsqueeze(1),
            causal.view(1, 1, length, length),
            self.kv.prefill_view(sequence.slot, start=0),
        )
        return logits[0]

    @torch.inference_mode()
    def decode(self, sequences: list[Sequence]) -> torch.Tensor:
        """Logits [B, V] for the next token of each running sequence (slots 0..B-1, in order)."""
        assert [s.slot for s in sequences] == list(range(len(sequences)))
        tokens = torch.tensor([[s.last_token_id] for s in sequences], device=self.device)
        cached = torch.tensor([s.num_cached_tokens for s in sequences], device=self.device)
        deltas = torch.tensor([s.prompt.rope_delta for s in sequences], device=self.device)
        # Row b attends to its own cached tokens and the new one: key positions 0..cached[b].
        key_positions = torch.arange(int(cached.max()) + 1, device=self.device)
        mask = (key_positions.unsqueeze(0) <= cached.unsqueeze(1)).view(len(sequences), 1, 1, -1)
        return self.language.forward(
            self.language.embed_tokens(tokens),
            self.language.decode_positions(cached, deltas),
            mask,
            self.kv.decode_view(cached),
        )
