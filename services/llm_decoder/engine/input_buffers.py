"""The step's inputs in buffers allocated once: token ids, rope positions, KV slots and sample rows.

Every step copies its host-built inputs into the front of these buffers and the forward reads views of
them, so no step allocates device memory for its inputs and the tensors a captured CUDA graph reads stay
where they were. On CUDA each input goes through a pinned host buffer of its own, copied asynchronously; a
pinned buffer is only rewritten by the next step, after this step's sampled tokens were read back, which
waits for every copy queued before them. On a CPU the device buffer is the host one: the same code, one copy.
"""

from __future__ import annotations

import torch


class InputBuffers:
    """Named long buffers of fixed shapes; the last dimension of each is the one a step fills a prefix of."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], device: torch.device) -> None:
        self.device = device
        self._device = {name: torch.zeros(shape, dtype=torch.long, device=device) for name, shape in shapes.items()}
        pinned = device.type == "cuda"
        self._host = {
            name: torch.zeros(shape, dtype=torch.long, pin_memory=pinned) if pinned else buffer
            for (name, shape), buffer in zip(shapes.items(), self._device.values(), strict=True)
        }

    @classmethod
    def for_steps(cls, max_tokens: int, device: torch.device) -> InputBuffers:
        """The per-token inputs of a step of at most `max_tokens` tokens."""
        return cls(
            {
                "token_ids": (max_tokens,),
                "positions": (3, max_tokens),
                "slots": (max_tokens,),
                "sample_rows": (max_tokens,),
            },
            device,
        )

    def stage(self, name: str, values: list[int] | torch.Tensor) -> torch.Tensor:
        """`values` (host longs; the last dimension is the tokens') in the device buffer `name`: a view of its
        first entries. Raises ValueError for more values than the buffer holds."""
        host_values = values if isinstance(values, torch.Tensor) else torch.tensor(values, dtype=torch.long)
        length = host_values.shape[-1]
        capacity = self._device[name].shape[-1]
        if length > capacity:
            raise ValueError(f"{length} inputs for a {name} buffer of {capacity}")
        host, device = self._host[name][..., :length], self.view(name, length)
        host.copy_(host_values)
        if self._host[name] is not self._device[name]:
            device.copy_(host, non_blocking=True)
        return device

    def view(self, name: str, length: int) -> torch.Tensor:
        """The first `length` entries of the device buffer `name` (what `stage` returns, without copying)."""
        return self._device[name][..., :length]
