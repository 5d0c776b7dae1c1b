"""The engine's forward passes: prefill of newly admitted sequences, and one batched decode step of many."""

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
        """Logits [B, V] after each whole prompt, in one forward over the prompt tokens the prefix cache did not
        hold; their KV is written to the sequences' slots after the reused KV (consecutive slots: newly admitted
        sequences take the next free slots in order)."""
        first_slot = sequences[0].slot
        assert first_slot is not None
        assert [s.slot for s in sequences] == list(range(first_slot, first_slot + len(sequences)))
        for row, sequence in enumerate(sequences):
            if sequence.reused_kv is not None:
                self.kv.write(first_slot + row, sequence.reused_kv)
                sequence.reused_kv = None  # in the slot now: the cache may evict (and free) its entry
        reused = [s.num_reused_tokens for s in sequences]
        new = [s.num_prompt_tokens - r for s, r in zip(sequences, reused, strict=True)]
        longest = max(new)
        embeds = torch.zeros(len(sequences), longest, self.language.hidden_size, device=self.device,
                             dtype=self.language.lm_head_weight.dtype)
        positions = torch.zeros(3, len(sequences), longest, dtype=torch.long)
        for row, sequence in enumerate(sequences):
            embeds[row, : new[row]] = self.language.embed_prompt(sequence.prompt, sequence.images, reused[row])[0]
            # The positions a whole-prompt prefill would give these tokens (M-RoPE's depend on the images before).
            positions[:, row, : new[row]] = sequence.prompt.positions[:, reused[row] :]
        cache = self.kv.view(first_slot, torch.tensor(reused, device=self.device), longest)
        return self.language.forward(
            embeds, positions, cache.causal_mask(), cache, last_positions=torch.tensor(new) - 1
        )

    @torch.inference_mode()
    def decode(self, sequences: list[Sequence]) -> torch.Tensor:
        """Logits [B, V] for the next token of each running sequence (slots 0..B-1, in order)."""
        assert [s.slot for s in sequences] == list(range(len(sequences)))
        tokens = torch.tensor([[s.last_token_id] for s in sequences], device=self.device)
        cached = torch.tensor([s.num_cached_tokens for s in sequences], device=self.device)
        deltas = torch.tensor([s.prompt.rope_delta for s in sequences], device=self.device)
        cache = self.kv.view(0, cached, 1)
        return self.language.forward(
            self.language.embed_tokens(tokens),
            self.language.decode_positions(cached, deltas),
            cache.causal_mask(),
            cache,
        )
