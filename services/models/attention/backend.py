"""What an attention backend does, and which one a replica uses."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import torch

from services.models.attention.layout import BatchLayout

logger = logging.getLogger(__name__)


class AttentionBackend(Protocol):
    """Attention of one step's flat batch over a paged KV cache (`[num_blocks, block_size, kv_heads, head_dim]`
    pools per layer, this step's keys already written). `prepare` runs once per step, `attend` once per
    layer."""

    name: str

    def prepare(self, layout: BatchLayout, device: torch.device) -> Any: ...

    def attend(
        self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, prepared: Any, scale: float
    ) -> torch.Tensor:
        """query `[1, heads, tokens, head_dim]` -> output `[1, tokens, heads, head_dim]` (transformers' layout
        for what an attention function returns)."""
        ...


def _torch_sdpa() -> AttentionBackend:
    from services.models.attention.torch_sdpa import TorchSDPABackend

    return TorchSDPABackend()


def _flex_attention() -> AttentionBackend:
    from services.models.attention.flex import FlexAttentionBackend

    return FlexAttentionBackend()


_BUILDERS: dict[str, Callable[[], AttentionBackend]] = {"torch_sdpa": _torch_sdpa, "flex_attention": _flex_attention}

# Per device type, the backends that run there, fastest first, and those that run there only when named (on a
# CPU flex attention is unfused: right, and what the tests check it with, but slower than the reference).
_PREFERENCE = {"cuda": ["flex_attention", "torch_sdpa"]}
_DEFAULT_PREFERENCE = ["torch_sdpa"]
_SLOW = {"cpu": ["flex_attention"]}


def available_backends(device: torch.device, include_slow: bool = False) -> list[str]:
    """The backends that run on `device`, fastest first (`include_slow`: also those only picked by name)."""
    preferred = _PREFERENCE.get(device.type, _DEFAULT_PREFERENCE)
    return preferred + (_SLOW.get(device.type, []) if include_slow else [])


def choose_backend(device: torch.device, requested: str | None = None) -> AttentionBackend:
    """The requested backend, or the fastest one that runs on `device`. Raises ValueError for a name that is
    unknown or cannot run here."""
    runnable = available_backends(device, include_slow=True)
    if requested is not None and requested not in runnable:
        raise ValueError(
            f"attention backend {requested!r} is not available on {device.type}; available: {', '.join(runnable)}"
        )
    name = requested or available_backends(device)[0]
    logger.info("attention backend: %s (available on %s: %s)", name, device.type, ", ".join(runnable))
    return _BUILDERS[name]()
