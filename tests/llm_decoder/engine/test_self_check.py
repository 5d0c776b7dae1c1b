"""Before it serves, an engine checks that its incremental decode gives the logits of a full forward, and
refuses to start when it does not."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

from services.llm_decoder.engine import EngineConfig, LLMEngine
from services.llm_decoder.engine.self_check import TOLERANCE, SelfCheckError, check_incremental_decode
from services.models.attention.torch_sdpa import TorchSDPABackend
from services.models.language_half import LanguageHalf
from tests.conftest import FAMILY_NAMES

CPU = torch.device("cpu")
CONFIG = EngineConfig(max_num_seqs=2, max_model_len=256)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_the_engines_path_matches_a_full_forward(
    family: str, dtype: torch.dtype, tiny_model_dirs: dict[str, Path]
) -> None:
    language = LanguageHalf(tiny_model_dirs[family], CPU, dtype=dtype)
    engine = LLMEngine(language, EngineConfig(max_num_seqs=2, max_model_len=256, startup_self_check=False))
    difference = check_incremental_decode(engine.runner, budget=16)  # the prompt in three chunks
    assert 0 <= difference < TOLERANCE[dtype]
    assert engine.stats().num_free_kv_blocks == engine.stats().num_kv_blocks  # it holds no block afterwards


def test_an_engine_whose_decode_ignores_the_cache_refuses_to_start(
    tiny_model_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    prepare = TorchSDPABackend.prepare

    def forgetful(self: TorchSDPABackend, *args: Any) -> Any:
        """Decode rows see only their own key, as if the layers had stopped reading our cache."""
        prepared = prepare(self, *args)
        mask = prepared.decode_mask.clone()
        mask[..., :-1] = False
        return dataclasses.replace(prepared, decode_mask=mask)

    monkeypatch.setattr(TorchSDPABackend, "prepare", forgetful)
    language = LanguageHalf(tiny_model_dirs["glm4v"], CPU)
    with pytest.raises(SelfCheckError, match="refusing to serve"):
        LLMEngine(language, CONFIG)
