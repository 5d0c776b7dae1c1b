"""Decode-only steps at fixed shapes, replayed from CUDA graphs.

The eager transformers layers launch a few kernels per operation: about 2,500 per decode step of
GLM-4.6V-Flash's 40 layers, each costing the host microseconds, so a GPU would wait on the host. A CUDA graph
records a step's kernels once and replays them all with one launch. A graph fixes every shape and address,
so a decode step runs at a bucket of shapes: its rows padded up to a batch bucket (powers of two, then
`max_num_seqs`), every block table padded to a width bucket (powers of two blocks, then the blocks of
`max_model_len`), and the attention (padded_decode.py) masks each row's keys on the device by its context
length. The inputs live in buffers allocated once; a step rewrites them in place and replays the graph of its
bucket. Padding rows write their keys into one block the runner keeps back from every sequence.

Graphs are captured at start, largest first, into one memory pool (smaller graphs reuse the larger ones'
memory, as vLLM does). Steps with prompt chunks, and decodes past the largest bucket, run eagerly. With
`capture=False` the same fixed-shape forward runs eagerly: on a CPU that is how the tests check it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch

from services.llm_decoder.engine.input_buffers import InputBuffers
from services.llm_decoder.engine.scheduler import ScheduledStep
from services.models.attention.padded_decode import PaddedDecode, PaddedDecodeAttention
from services.models.attention.step import AttentionStep
from services.models.kv_cache import PagedKVCache
from services.models.language_half import LanguageHalf

logger = logging.getLogger(__name__)

Shape = tuple[int, int]  # (rows, block-table width)


def buckets(largest: int) -> list[int]:
    """1, 2, 4, ... below `largest`, then `largest`."""
    sizes, size = [], 1
    while size < largest:
        sizes.append(size)
        size *= 2
    return [*sizes, largest]


class DecodeGraphs:
    def __init__(
        self,
        language: LanguageHalf,
        kv: PagedKVCache,
        padding_block: int,
        max_num_seqs: int,
        max_model_len: int,
        capture: bool,
    ) -> None:
        self.language = language
        self.kv = kv
        self.padding_block = padding_block
        self.batch_sizes = buckets(max_num_seqs)
        self.widths = buckets(-(-max_model_len // kv.block_size))
        rows, width = self.batch_sizes[-1], self.widths[-1]
        device = language.device
        self.inputs = InputBuffers(
            {
                "token_ids": (rows,),
                "positions": (3, rows),
                "slots": (rows,),
                "block_tables": (rows * width,),
                "context_lens": (rows,),
            },
            device,
        )
        self._sample_rows = torch.arange(rows, device=device)
        self._key_positions = torch.arange(width * kv.block_size, device=device)
        self._attention = PaddedDecodeAttention()
        self._graphs: dict[Shape, tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        if capture:
            self._capture_all()

    @property
    def num_graphs(self) -> int:
        return len(self._graphs)

    def shape_for(self, step: ScheduledStep) -> Shape | None:
        """The bucket a decode-only step runs at, or None if it must run eagerly."""
        if step.prefills or not step.decodes:
            return None
        rows = next((size for size in self.batch_sizes if size >= len(step.decodes)), None)
        needed = max(-(-(chunk.start + 1) // self.kv.block_size) for chunk in step.decodes)
        width = next((size for size in self.widths if size >= needed), None)
        return None if rows is None or width is None else (rows, width)

    @torch.inference_mode()
    def run(self, step: ScheduledStep, shape: Shape) -> torch.Tensor:
        """Logits `[len(step.decodes), V]` of a decode-only step at `shape` (from `shape_for`)."""
        self._stage(step, shape)
        captured = self._graphs.get(shape)
        if captured is None:
            logits = self._forward(shape)
        else:
            graph, logits = captured
            graph.replay()
        return logits[: len(step.decodes)]

    def _stage(self, step: ScheduledStep, shape: Shape) -> None:
        rows, width = shape
        size, padding = self.kv.block_size, rows - len(step.decodes)
        sequences = [(chunk.sequence, chunk.start) for chunk in step.decodes]
        tables = torch.full((rows, width), self.padding_block, dtype=torch.long)
        for index, (sequence, start) in enumerate(sequences):
            blocks = sequence.block_table[: start // size + 1]
            tables[index, : len(blocks)] = torch.tensor(blocks, dtype=torch.long)
        positions = [start + sequence.prompt.rope_delta for sequence, start in sequences] + [0] * padding
        inputs = self.inputs
        inputs.stage("token_ids", [sequence.last_token_id for sequence, _ in sequences] + [0] * padding)
        inputs.stage("positions", torch.tensor(positions, dtype=torch.long).expand(3, -1))
        inputs.stage(
            "slots",
            [sequence.block_table[start // size] * size + start % size for sequence, start in sequences]
            + [self.padding_block * size] * padding,
        )
        inputs.stage("block_tables", tables.view(-1))
        inputs.stage("context_lens", [start + 1 for _, start in sequences] + [1] * padding)

    def _forward(self, shape: Shape) -> torch.Tensor:
        """The fixed-shape forward over whatever the buffers hold: only device work, so it can be captured."""
        rows, width = shape
        inputs = self.inputs
        context_lens = inputs.view("context_lens", rows)
        key_mask = self._key_positions[: width * self.kv.block_size] < context_lens.unsqueeze(1)
        prepared = PaddedDecode(inputs.view("block_tables", rows * width).view(rows, width), key_mask)
        step = AttentionStep(self._attention, prepared, self.kv, inputs.view("slots", rows))
        return self.language.forward(
            self.language.embed(inputs.view("token_ids", rows), []),
            inputs.view("positions", rows).unsqueeze(1),
            step,
            self._sample_rows[:rows],
        )

    def _capture_all(self) -> None:
        started = time.perf_counter()
        pool = torch.cuda.graph_pool_handle()
        for rows in reversed(self.batch_sizes):
            for width in reversed(self.widths):
                self._capture((rows, width), pool)
        torch.cuda.synchronize(self.language.device)
        logger.info(
            "captured %d decode graphs (batch %s x blocks %s) in %.1f s",
            len(self._graphs),
            self.batch_sizes,
            self.widths,
            time.perf_counter() - started,
        )

    @torch.inference_mode()
    def _capture(self, shape: Shape, pool: Any) -> None:  # a torch.cuda.graph_pool_handle()
        rows, width = shape
        inputs = self.inputs
        inputs.stage("token_ids", [0] * rows)
        inputs.stage("positions", torch.zeros(3, rows, dtype=torch.long))
        inputs.stage("slots", [self.padding_block * self.kv.block_size] * rows)
        inputs.stage("block_tables", torch.full((rows * width,), self.padding_block, dtype=torch.long))
        inputs.stage("context_lens", [1] * rows)
        # One eager run on a side stream first, as torch's graph docs ask: lazy initialisation (cuBLAS handles,
        # workspaces) must not happen inside the capture.
        side = torch.cuda.Stream(self.language.device)
        side.wait_stream(torch.cuda.current_stream(self.language.device))
        with torch.cuda.stream(side):
            self._forward(shape)
        torch.cuda.current_stream(self.language.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=pool):
            logits = self._forward(shape)
        self._graphs[shape] = (graph, logits)
