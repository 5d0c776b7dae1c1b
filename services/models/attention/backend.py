"""What an attention backend does, and which one a replica uses."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import torch

from services.models.attention.layout import BatchLayout

logger = logging.getLogger(__name__)


class AttentionBackend(Protocol):
    """Attention of one step's flat batch over a slot KV cache (`[slots, kv_heads, max_len, head_dim]` per
    layer, this step's keys already written). `prepare` runs once per step, `attend` once per layer."""

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


# name -> (whether it can run on a device, how to build it), in order of preference.
_BACKENDS: dict[str, tuple[Callable[[torch.device], bool], Callable[[], AttentionBackend]]] = {
    "torch_sdpa": (lambda device: True, _torch_sdpa),
}


def available_backends(device: torch.device) -> list[str]:
    return [name for name, (runs_on, _) in _BACKENDS.items() if runs_on(device)]


def choose_backend(device: torch.device, requested: str | None = None) -> AttentionBackend:
    """The requested backend, or the most preferred one that runs on `device`. Raises ValueError for a name
    that is unknown or cannot run here."""
    available = available_backends(device)
    if requested is not None and requested not in available:
        raise ValueError(f"attention backend {requested!r} is not available on {device.type}; "
                         f"available: {', '.join(available)}")
    name = requested or available[0]
    logger.info("attention backend: %s (available on %s: %s)", name, device.type, ", ".join(available))
    return _BACKENDS[name][1]()
