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
    def __init__(self, max_tokens: int, device: torch.device) -> None:
        self.device = device
        self.max_tokens = max_tokens
        shapes = {"token_ids": (max_tokens,), "positions": (3, max_tokens), "slots": (max_tokens,),
                  "sample_rows": (max_tokens,)}
        self._device = {name: torch.zeros(shape, dtype=torch.long, device=device) for name, shape in shapes.items()}
        pinned = device.type == "cuda"
        self._host = {name: torch.zeros(shape, dtype=torch.long, pin_memory=pinned) if pinned else buffer
                      for (name, shape), buffer in zip(shapes.items(), self._device.values(), strict=True)}

    def stage(self, name: str, values: list[int] | torch.Tensor) -> torch.Tensor:
        """`values` (host longs; the last dimension is the tokens') in the device buffer `name`: a view of its
        first entries. Raises ValueError for more tokens than the buffers hold."""
        host_values = values if isinstance(values, torch.Tensor) else torch.tensor(values, dtype=torch.long)
        length = host_values.shape[-1]
        if length > self.max_tokens:
            raise ValueError(f"{length} inputs for buffers of {self.max_tokens}")
        host, device = self._host[name][..., :length], self._device[name][..., :length]
        host.copy_(host_values)
        if self._host[name] is not self._device[name]:
            device.copy_(host, non_blocking=True)
        return device
