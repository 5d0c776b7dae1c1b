"""Attention over a flat batch of variable-length rows: decode rows of one token each, then prompt chunks.

The language half's layers are transformers' own; `flashvqa_attention` is registered with transformers'
attention interface and hands each layer's queries to the backend chosen at start (`choose_backend`), with
the step's `AttentionStep` (where each token's keys live). The scheduler and the batch layout are the same
for every backend, so the CPU tests exercise what a GPU runs.
"""

from services.models.attention.backend import AttentionBackend, available_backends, choose_backend
from services.models.attention.layout import BatchLayout, RowLayout
from services.models.attention.step import AttentionStep, attend_with_step

__all__ = [
    "AttentionBackend",
    "AttentionStep",
    "BatchLayout",
    "RowLayout",
    "attend_with_step",
    "available_backends",
    "choose_backend",
]
