"""A step reads the device once: the sampled tokens. Everything else the forward needs is built on the host
from what the scheduler knows, so on a GPU the host never waits on the device in the middle of a step.

Counted on the CPU by wrapping every tensor method that turns a tensor into a host value: on CUDA each of
them is a device-to-host copy that blocks until the queued kernels have run.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch

from services.llm_decoder.engine import EngineConfig, LLMEngine
from services.local_pipeline import image_question
from services.messages import RawImage, SamplingParams
from services.models.language_half import LanguageHalf
from services.models.vision_half import VisionHalf
from tests.conftest import noise_image

CPU = torch.device("cpu")
HOST_READS = ("item", "tolist", "numpy", "cpu", "__int__", "__float__", "__bool__", "__index__")


@pytest.fixture
def host_reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    counts: Counter[str] = Counter()
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def counting(
            self: torch.Tensor, *args: Any, _name: str = name, _original: Any = original, **kwargs: Any
        ) -> Any:
            counts[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    return counts


@pytest.fixture(scope="module")
def halves(tiny_model_dirs: dict[str, Path]) -> tuple[VisionHalf, LanguageHalf]:
    return VisionHalf(tiny_model_dirs["glm4v"], CPU), LanguageHalf(tiny_model_dirs["glm4v"], CPU)


@pytest.mark.parametrize("decode_graphs", ["off", "uncaptured"])
@pytest.mark.parametrize("temperature", [0.0, 0.8], ids=["greedy", "sampled"])
def test_one_host_read_per_step(
    halves: tuple[VisionHalf, LanguageHalf], host_reads: Counter[str], temperature: float, decode_graphs: str
) -> None:
    vision, language = halves
    engine = LLMEngine(
        language,
        EngineConfig(max_num_seqs=8, max_model_len=512, max_num_batched_tokens=40, decode_graphs=decode_graphs),
    )  # type: ignore[arg-type]
    params = SamplingParams(max_tokens=30, temperature=temperature, ignore_eos=True)
    for index in range(4):
        image = vision.encode([RawImage.from_image(noise_image(56 + 28 * index, 84, seed=index))])
        engine.add_request(f"r{index}", image_question(f"What is in picture {index}?", 1), image, params)
    steps = 0
    while any(s.is_prefilling for s in engine.scheduler.running) or engine.scheduler.waiting:
        host_reads.clear()
        engine.step()  # prompt chunks, with the decodes of the sequences already prefilled
        assert sum(host_reads.values()) <= 1, host_reads
        steps += 1
    assert steps > 2  # the prompts took several chunked steps
    for _ in range(5):
        host_reads.clear()
        engine.step()  # decodes only
        assert host_reads == Counter(tolist=1)
