"""One step's attention as the transformers layers see it: the `cache` whose `update` stores the step's
keys and values, and the attention function that hands the queries to the backend."""

from __future__ import annotations

from typing import Any

import torch
from transformers import AttentionInterface

from services.models.attention.backend import AttentionBackend
from services.models.attention.layout import BatchLayout
from services.models.kv_cache import PagedKVCache

ATTENTION_IMPLEMENTATION = "flashvqa"


class AttentionStep:
    """Built once per step, then used by every layer: the backend, its metadata on the device (`prepared`), and
    `slots`, the flattened pool slot each token's keys go to (`BatchLayout.slot_mapping()` on the device)."""

    def __init__(self, backend: AttentionBackend, prepared: Any, kv: PagedKVCache, slots: torch.Tensor) -> None:
        self.backend = backend
        self.prepared = prepared
        self._kv = kv
        self._slots = slots

    @classmethod
    def for_layout(
        cls, backend: AttentionBackend, layout: BatchLayout, kv: PagedKVCache, slots: torch.Tensor
    ) -> AttentionStep:
        """The step of `layout`, its metadata prepared by the backend (sent to the device here, once)."""
        return cls(backend, backend.prepare(layout, kv.buffer.device), kv, slots)

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the step's keys and values (`[1, kv_heads, tokens, head_dim]`) in their slots; return the
        layer's key and value block pools for the backend to read (transformers' Cache protocol, the one method
        its attention layers call)."""
        keys, values = self._kv.layer(layer_idx)
        flat = (-1, *keys.shape[2:])
        keys.view(flat).index_copy_(0, self._slots, key_states[0].transpose(0, 1))
        values.view(flat).index_copy_(0, self._slots, value_states[0].transpose(0, 1))
        return keys, values


def attend_with_step(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    attention_step: AttentionStep | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature; `key` and `value` are the block pools `AttentionStep.update`
    gave."""
    if attention_step is None:
        raise RuntimeError(f"the {ATTENTION_IMPLEMENTATION!r} attention runs only inside an engine step")
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    return attention_step.backend.attend(query, key, value, attention_step.prepared, scale), None


AttentionInterface.register(ATTENTION_IMPLEMENTATION, attend_with_step)
