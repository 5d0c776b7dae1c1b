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
