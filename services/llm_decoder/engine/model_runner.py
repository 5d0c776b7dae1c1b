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
    def prefill(self, sequences: list[Sequence]) -> torch.Tensor:
        """Logits [B, V] after each whole prompt, in one forward; KV written to the sequences' slots
        (consecutive: newly admitted sequences take the next free slots in order)."""
        first_slot = sequences[0].slot
        assert first_slot is not None
        assert [s.slot for s in sequences] == list(range(first_slot, first_slot + len(sequences)))
        lengths = [s.num_prompt_tokens for s in sequences]
        longest = max(lengths)
        embeds = torch.zeros(len(sequences), longest, self.language.hidden_size, device=self.device,
                             dtype=self.language.lm_head_weight.dtype)
        positions = torch.zeros(3, len(sequences), longest, dtype=torch.long)
        for row, sequence in enumerate(sequences):
            embeds[row, : lengths[row]] = self.language.embed_prompt(sequence.prompt, sequence.images)[0]
            positions[:, row, : lengths[row]] = sequence.prompt.positions
        # Plain causal: a real query never reaches the right padding, and padding queries see only finite keys.
        causal = torch.ones(longest, longest, dtype=torch.bool, device=self.device).tril()
        return self.language.forward(
            embeds,
            positions,
            causal.expand(len(sequences), 1, longest, longest),
            self.kv.prefill_view(first_slot),
            last_positions=torch.tensor(lengths) - 1,
        )

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
