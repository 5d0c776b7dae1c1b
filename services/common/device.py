"""Where the model runs: the GPU when there is one, else the CPU."""

from __future__ import annotations

import torch


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(name: str | None) -> torch.device:
    return default_device() if name is None else torch.device(name)


def set_torch_threads(threads: int | None) -> None:
    """Ray limits each worker's OpenMP threads to its `num_cpus` (1 by default), which halves prefill and
    vision speed on a CPU host; a CPU deployment states how many threads its replica may use."""
    if threads is not None:
        torch.set_num_threads(threads)


def to_device(values: list[int] | torch.Tensor, device: torch.device, dtype: torch.dtype = torch.long) -> torch.Tensor:
    """Host values on `device` without blocking the host: on CUDA they are staged in pinned memory (torch's
    caching host allocator reuses it) so that the copy is asynchronous; elsewhere it is the host tensor."""
    host = values.to(dtype) if isinstance(values, torch.Tensor) else torch.tensor(values, dtype=dtype)
    if device.type != "cuda":
        return host.to(device)
    return host.pin_memory().to(device, non_blocking=True)
