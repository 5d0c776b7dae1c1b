"""Which dtype the model is served in."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from services.common import dtype as dtype_module
from services.common.dtype import cpu_has_bf16_instructions, serving_dtype
from services.models.checkpoint import checkpoint_dtype
from services.tiny_models.model_builder import build_tiny_model

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
ZEN4_FLAGS = "flags\t\t: fpu vme sse2 avx2 avx512f avx512bw avx512_bf16 avx512_vnni\n"
SKYLAKE_FLAGS = "flags\t\t: fpu vme sse2 avx2 avx512f avx512bw avx512_vnni\n"
GRAVITON3_FEATURES = "Features\t: fp asimd aes sha2 sve bf16 i8mm\n"


@pytest.mark.parametrize(
    ("cpuinfo", "expected"),
    [
        (ZEN4_FLAGS, True),
        (SKYLAKE_FLAGS, False),
        (GRAVITON3_FEATURES, True),
        ("processor\t: 0\n", False),
    ],
)
def test_bf16_instructions_are_read_from_the_cpu_flags(tmp_path: Path, cpuinfo: str, expected: bool) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nmodel name\t: some cpu\n" + cpuinfo)
    assert cpu_has_bf16_instructions(path) is expected


def test_a_machine_without_cpuinfo_counts_as_without_bf16(tmp_path: Path) -> None:
    assert cpu_has_bf16_instructions(tmp_path / "missing") is False


@pytest.mark.parametrize("has_bf16", [True, False])
def test_auto_keeps_a_bf16_checkpoint_in_bf16_only_on_a_cpu_that_computes_it(
    monkeypatch: pytest.MonkeyPatch, has_bf16: bool
) -> None:
    monkeypatch.setattr(dtype_module, "cpu_has_bf16_instructions", lambda: has_bf16)
    expected = torch.bfloat16 if has_bf16 else torch.float32
    assert serving_dtype("auto", CPU, torch.bfloat16) == expected
    # fp32 and fp16 checkpoints, and a config that does not say, run in fp32 on any CPU.
    for checkpoint in (torch.float32, torch.float16, None):
        assert serving_dtype("auto", CPU, checkpoint) == torch.float32
    # On CUDA, bf16 whatever the checkpoint.
    assert serving_dtype("auto", CUDA, torch.float32) == torch.bfloat16


def test_an_explicit_dtype_wins() -> None:
    assert serving_dtype("float32", CUDA, torch.bfloat16) == torch.float32
    assert serving_dtype("bfloat16", CPU, torch.float32) == torch.bfloat16
    assert serving_dtype("float16", CPU, None) == torch.float16


def test_the_checkpoint_dtype_is_read_from_its_config(tmp_path: Path, tiny_model_dirs: dict[str, Path]) -> None:
    assert checkpoint_dtype(tiny_model_dirs["glm4v"]) == torch.float32
    for key in ("dtype", "torch_dtype"):
        (tmp_path / "config.json").write_text(f'{{"{key}": "bfloat16"}}')
        assert checkpoint_dtype(tmp_path) == torch.bfloat16
    for unstated in ("{}", '{"dtype": "not-a-dtype"}', '{"dtype": "Tensor"}'):
        (tmp_path / "config.json").write_text(unstated)
        assert checkpoint_dtype(tmp_path) is None


def test_the_benchmark_model_is_saved_in_bf16_like_the_real_checkpoints(tmp_path: Path) -> None:
    small = build_tiny_model("glm4v", tmp_path / "small", size="small")
    assert checkpoint_dtype(small) == torch.bfloat16
