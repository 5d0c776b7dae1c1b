"""The dtype the model is served in: what the operator asked for, or else what the hardware does fastest
without changing the checkpoint's numerics more than its own dtype already does."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from services.common.dtype_name import DTypeName

# x86: AVX512-BF16 (Cooper Lake, Zen 4 and later) or AMX (Sapphire Rapids and later); Arm: the BF16 extension.
_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def serving_dtype(requested: DTypeName, device: torch.device, checkpoint: torch.dtype | None) -> torch.dtype:
    """`auto`: bf16 on CUDA. On the CPU, a bf16 checkpoint (GLM-4.6V-Flash's and Qwen2.5-VL's are) stays bf16
    where the CPU has bf16 dot-product instructions, which run it about twice as fast as fp32. Anything else
    runs in fp32: without those instructions bf16 is converted in software, and fp16 has no fast CPU path
    (a 512x1536x512 matmul took 592 ms in fp16 against 7.7 ms in fp32 and 1.7 ms in bf16 on our host)."""
    if requested != "auto":
        dtype: torch.dtype = getattr(torch, requested)
        return dtype
    if device.type == "cuda":
        return torch.bfloat16
    if checkpoint == torch.bfloat16 and cpu_has_bf16_instructions():
        return torch.bfloat16
    return torch.float32


@functools.cache
def cpu_has_bf16_instructions(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    try:
        text = cpuinfo.read_text()
    except OSError:  # not Linux: no way to tell here, so the safe choice
        return False
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):
            return not _BF16_CPU_FLAGS.isdisjoint(value.split())
    return False
