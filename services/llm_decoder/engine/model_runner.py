"""The engine's forward pass: one flat batch per step, every decode row and every prompt chunk together.

Everything the forward needs is built on the host from what the scheduler knows (token ids, positions, slot
lengths) and copied to the device once per step; nothing is read back from the device until the sampled
tokens are.
"""

from __future__ import annotations

import torch

from services.common.device import to_device
from services.llm_decoder.engine.config import EngineConfig
from services.llm_decoder.engine.scheduler import Chunk, ScheduledStep
from services.models.attention import AttentionStep, BatchLayout, ChunkLayout, choose_backend
from services.models.kv_cache import SlotKVCache
from services.models.language_half import LanguageHalf


class ModelRunner:
    def __init__(self, language: LanguageHalf, config: EngineConfig) -> None:
        self.language = language
        self.device = language.device
        self.kv = SlotKVCache(language.kv_shape, config.max_num_seqs, config.max_model_len, language.device)
        self.attention = choose_backend(language.device, config.attention_backend)

    @torch.inference_mode()
    def run(self, step: ScheduledStep) -> torch.Tensor:
        """Logits `[R, V]`, one row per chunk that samples (`Chunk.samples`), in the step's chunk order."""
        for chunk in step.prefills:
            sequence = chunk.sequence
            if sequence.reused_kv is not None:
                self.kv.write(_slot(chunk), sequence.reused_kv)
                sequence.reused_kv = None  # in the slot now: the cache may evict (and free) its entry
        # Decode rows first: one token each, at its text position shifted by its rope delta on all three axes.
        token_ids = [chunk.sequence.last_token_id for chunk in step.decodes]
        decode_positions = [chunk.start + chunk.sequence.prompt.rope_delta for chunk in step.decodes]
        positions = [torch.tensor(decode_positions, dtype=torch.long).expand(3, -1)]
        sample_rows = list(range(len(step.decodes)))
        image_rows: list[tuple[int, torch.Tensor]] = []
        for chunk in step.prefills:
            sequence, offset, end = chunk.sequence, len(token_ids), chunk.start + chunk.length
            token_ids += sequence.prompt.token_ids[chunk.start : end]
            image_rows += [(offset + at, rows) for at, rows in
                           self.language.image_rows(sequence.prompt, sequence.images, chunk.start, end)]
            # The positions a whole-prompt forward gives these tokens (M-RoPE's depend on the images before).
            positions.append(sequence.prompt.positions[:, chunk.start : end])
            if chunk.samples:
                sample_rows.append(len(token_ids) - 1)
        layout = BatchLayout(
            decodes=tuple(_layout(chunk) for chunk in step.decodes),
            chunks=tuple(_layout(chunk) for chunk in step.prefills),
        )
        return self.language.forward(
            self.language.embed(token_ids, image_rows),
            to_device(torch.cat(positions, dim=1).unsqueeze(1), self.device),
            AttentionStep(self.attention, layout, self.kv),
            to_device(sample_rows, self.device),
        )


def _slot(chunk: Chunk) -> int:
    slot = chunk.sequence.slot
    if slot is None:
        raise RuntimeError(f"sequence {chunk.sequence.request_id} is scheduled without a slot")
    return slot


def _layout(chunk: Chunk) -> ChunkLayout:
    return ChunkLayout(_slot(chunk), chunk.start, chunk.length)
