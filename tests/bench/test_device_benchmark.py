"""The GPU benchmark's `--smoke` run (tiny dimensions, on the CPU) writes every figure the full run writes, and
the full run's model is GLM-4.6V-Flash's shape."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig

from bench.device_benchmark import FULL, SMOKE
from services.models.language_half import LanguageHalf
from services.tiny_models.model_builder import DIMS, FULL_GLM4V_DIMS, write_model_files


@pytest.mark.slow
def test_the_smoke_run_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "device.json"
    finished = subprocess.run(
        [sys.executable, "-m", "bench.device_benchmark", "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["environment"]["torch"] and figures["plan"]["dtype"] == "float32"
    assert figures["self_check"]["passed"] and figures["self_check_with_graphs"]["passed"]
    expected_cases = {(batch, context) for batch in SMOKE.batch_sizes for context in SMOKE.contexts}
    for mode in ("off", "on"):
        cases = figures["decode"][mode]["cases"]
        assert {(case["batch"], case["context_tokens"]) for case in cases} == expected_cases
        assert all(0 < case["itl_p50_ms"] <= case["itl_p99_ms"] and case["tokens_per_s"] > 0 for case in cases)
    assert figures["decode"]["on"]["num_graphs"] == 0  # a CPU runs the graphs' shapes without capturing
    assert len(figures["decode_graph_speedup"]) == len(expected_cases)
    ttft = figures["ttft"]
    assert ttft["requests"] == SMOKE.ttft_requests and 0 < ttft["vision_p50_ms"] < ttft["ttft_p50_ms"]
    for arrivals in (figures["arrivals"], figures["arrivals_with_graphs"]):
        assert arrivals["with_arrivals"]["itl_p99_ms"] > 0 and arrivals["worst_gap_over_steady_median"] > 0
    lora = figures["lora"]
    assert (lora["batch"], lora["adapters"]) == (SMOKE.lora_batch, 4)
    assert lora["base"]["tokens_per_s"] > 0 and lora["mixed"]["tokens_per_s"] > 0 and lora["mixed_over_base"] > 0
    assert figures["memory"]["kv_bytes_per_token"] == 2 * 2 * 2 * 16 * 4  # layers, K+V, KV heads, dim, fp32


def test_the_full_run_is_glm_4_6v_flash_shaped(tmp_path: Path) -> None:
    write_model_files("glm4v", tmp_path, FULL_GLM4V_DIMS)
    config = AutoConfig.from_pretrained(tmp_path)
    text, vision = config.text_config, config.vision_config
    assert (text.num_hidden_layers, text.hidden_size, text.num_attention_heads, text.num_key_value_heads) == (
        40,
        4096,
        32,
        2,
    )
    assert text.vocab_size == 151552 and text.rope_parameters["mrope_section"] == [8, 12, 12]
    assert text.rope_parameters["partial_rotary_factor"] == 0.5
    assert (vision.depth, vision.hidden_size, vision.patch_size, vision.spatial_merge_size) == (24, 1536, 14, 2)
    assert FULL.dtype is not SMOKE.dtype and FULL.batch_sizes == (1, 16, 64) and FULL.contexts == (600, 2000)
    # 40 KiB of bf16 KV per token at GLM-4.6V-Flash's config: 40 layers x 2 KV heads x 128 x (K and V) x 2 bytes.
    head_dim = text.hidden_size // text.num_attention_heads
    assert 2 * text.num_hidden_layers * text.num_key_value_heads * head_dim * 2 == 40 * 1024


def test_random_weights_load_without_a_checkpoint(tmp_path: Path) -> None:
    write_model_files("glm4v", tmp_path, DIMS["tiny"])
    assert not list(tmp_path.glob("*.safetensors"))
    language = LanguageHalf(tmp_path, torch.device("cpu"), weights="random")
    assert language.lm_head_weight.abs().sum() > 0
    with pytest.raises(OSError, match=r"safetensors|model"):
        LanguageHalf(tmp_path, torch.device("cpu"))  # a checkpoint load needs the weights
