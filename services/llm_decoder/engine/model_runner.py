"""The engine's forward pass: one flat batch per step, every decode row and every prompt chunk together.

Everything the forward needs is built on the host from what the scheduler knows (token ids, positions, block
tables) and copied to the device once per step, the per-token inputs into buffers allocated once
(`InputBuffers`); nothing is read back from the device until the sampled tokens are. Decode-only steps go
through `DecodeGraphs` (CUDA graphs on a GPU) when the config says so.
"""

from __future__ import annotations

import logging

import torch

from services.common.device import to_device
from services.llm_decoder.engine.config import EngineConfig
from services.llm_decoder.engine.decode_graphs import DecodeGraphs
from services.llm_decoder.engine.input_buffers import InputBuffers
from services.llm_decoder.engine.scheduler import Chunk, ScheduledStep
from services.models.attention import AttentionStep, BatchLayout, RowLayout, choose_backend
from services.models.kv_cache import (
    BLOCK_SIZE,
    KVShape,
    PagedKVCache,
    num_blocks_for_bytes,
    num_blocks_for_free_memory,
)
from services.models.language_half import LanguageHalf
from services.models.lora import AdapterPool

logger = logging.getLogger(__name__)


class ModelRunner:
    def __init__(self, language: LanguageHalf, config: EngineConfig) -> None:
        self.language = language
        self.device = language.device
        num_blocks = kv_cache_blocks(language.kv_shape, config, language.device)
        self.kv = PagedKVCache(language.kv_shape, num_blocks, language.device)
        logger.info("KV cache: %d blocks of %d tokens, %.1f MiB", num_blocks, BLOCK_SIZE, self.kv.num_bytes / 2**20)
        self.attention = choose_backend(language.device, config.attention_backend)
        self.inputs = InputBuffers.for_steps(config.token_budget, language.device)
        # LoRA: the text model's targeted linears wrapped once, with `max_loras` adapter slots beside the base.
        self.adapters = (
            AdapterPool(language.text_model, language.family.lora_targets, config.max_loras, config.max_lora_rank)
            if config.max_loras > 0
            else None
        )
        graph_mode = config.decode_graph_mode(language.device.type)
        # The graphs' padding rows write into the last block, which no sequence is then given.
        self.num_blocks = num_blocks - 1 if graph_mode else num_blocks
        if self.num_blocks < 1:
            raise ValueError("the KV cache holds no block for sequences")
        self.decode_graphs = (
            None
            if graph_mode is None
            else DecodeGraphs(
                language,
                self.kv,
                padding_block=num_blocks - 1,
                max_num_seqs=config.max_num_seqs,
                max_model_len=config.max_model_len,
                capture=graph_mode == "captured",
            )
        )

    @torch.inference_mode()
    def run(self, step: ScheduledStep) -> torch.Tensor:
        """Logits `[R, V]`, one row per chunk that samples (`Chunk.samples`), in the step's chunk order."""
        graphs = self.decode_graphs
        groups = self._adapter_groups(step)
        # Graphs are captured without adapters: a step with adapter rows runs eagerly.
        shape = graphs.shape_for(step) if graphs is not None and not groups else None
        if graphs is not None and shape is not None:
            return graphs.run(step, shape)
        if self.adapters is None:
            return self._forward(step)
        self.adapters.step.groups = groups
        try:
            return self._forward(step)
        finally:
            self.adapters.step.groups = []

    def _adapter_groups(self, step: ScheduledStep) -> list[tuple[int, torch.Tensor]]:
        """The step's flat token rows per adapter slot (in `step.chunks` order, as `_forward` lays them out);
        base rows are in no group."""
        if self.adapters is None:
            return []
        chunks = step.chunks
        in_use = {chunk.sequence.adapter for chunk in chunks if chunk.sequence.adapter is not None}
        rows: dict[int, list[int]] = {}
        offset = 0
        for chunk in chunks:
            if chunk.sequence.adapter is not None:
                slot = self.adapters.slot(chunk.sequence.adapter, in_use)
                rows.setdefault(slot, []).extend(range(offset, offset + chunk.length))
            offset += chunk.length
        return [(slot, to_device(indices, self.device)) for slot, indices in rows.items()]

    def _forward(self, step: ScheduledStep) -> torch.Tensor:
        # Decode rows first: one token each, at its text position shifted by its rope delta on all three axes.
        token_ids = [chunk.sequence.last_token_id for chunk in step.decodes]
        decode_positions = [chunk.start + chunk.sequence.prompt.rope_delta for chunk in step.decodes]
        positions = [torch.tensor(decode_positions, dtype=torch.long).expand(3, -1)]
        sample_rows = list(range(len(step.decodes)))
        image_rows: list[tuple[int, torch.Tensor]] = []
        for chunk in step.prefills:
            sequence, offset, end = chunk.sequence, len(token_ids), chunk.start + chunk.length
            token_ids += sequence.token_ids(chunk.start, end)
            image_rows += [
                (offset + at, rows)
                for at, rows in self.language.image_rows(sequence.prompt, sequence.images, chunk.start, end)
            ]
            # The positions a whole-prompt forward gives these tokens (M-RoPE's depend on the images before).
            positions.append(sequence.positions(chunk.start, end))
            if chunk.samples:
                sample_rows.append(len(token_ids) - 1)
        layout = BatchLayout(
            decodes=tuple(_row(chunk) for chunk in step.decodes),
            chunks=tuple(_row(chunk) for chunk in step.prefills),
            block_size=self.kv.block_size,
        )
        inputs = self.inputs
        return self.language.forward(
            self.language.embed(inputs.stage("token_ids", token_ids), image_rows),
            inputs.stage("positions", torch.cat(positions, dim=1)).unsqueeze(1),
            AttentionStep.for_layout(self.attention, layout, self.kv, inputs.stage("slots", layout.slot_mapping())),
            inputs.stage("sample_rows", sample_rows),
        )


def kv_cache_blocks(shape: KVShape, config: EngineConfig, device: torch.device) -> int:
    """How many KV blocks the engine gets (EngineConfig says the rule)."""
    if config.kv_cache_bytes is not None:
        return num_blocks_for_bytes(shape, config.kv_cache_bytes)
    if device.type == "cuda":
        return num_blocks_for_free_memory(shape, device, config.gpu_memory_utilization)
    return config.max_num_seqs * -(-config.max_model_len // BLOCK_SIZE)


def _row(chunk: Chunk) -> RowLayout:
    return RowLayout(chunk.sequence.block_table, chunk.start, chunk.length)
