"""The LoRA benchmark's core at its smallest (two tokens a request, one repetition) keeps working: both runs
answer every request in full, the base run carries no adapter rows and the mixed run those of all 4 adapters."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.lora_benchmark import ADAPTERS, CONCURRENCY, build_adapters, compare, lora_engine
from services.models.language_half import LanguageHalf


@pytest.mark.slow
def test_the_mixed_run_spreads_its_requests_over_every_adapter(
    tiny_model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    model = tiny_model_dirs["glm4v"]
    engine = lora_engine(LanguageHalf(model, torch.device("cpu")), build_adapters(model, tmp_path))
    comparison = compare(engine, engine.adapter_names, max_tokens=2, repetitions=1)
    (base,), (mixed,) = comparison.base, comparison.mixed
    assert base.output_tokens == mixed.output_tokens == CONCURRENCY * 2
    assert base.adapter_slots == ()
    assert len(mixed.adapter_slots) == ADAPTERS and 0 not in mixed.adapter_slots  # slot 0 is the base
    assert base.seconds > 0 and mixed.seconds > 0 and comparison.ratio > 0
