"""The step's inputs live in buffers allocated once: every step's forward reads views of the same storage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from services.llm_decoder.engine import EngineConfig, LLMEngine
from services.llm_decoder.engine.input_buffers import InputBuffers
from services.local_pipeline import image_question
from services.messages import SamplingParams
from services.models.language_half import LanguageHalf

CPU = torch.device("cpu")


def test_staged_values_are_views_of_one_buffer() -> None:
    buffers = InputBuffers.for_steps(max_tokens=8, device=CPU)
    first = buffers.stage("token_ids", [5, 6, 7])
    assert first.tolist() == [5, 6, 7]
    second = buffers.stage("token_ids", torch.tensor([1, 2]))
    assert second.tolist() == [1, 2] and second.data_ptr() == first.data_ptr()
    positions = buffers.stage("positions", torch.arange(12).view(3, 4))
    assert positions.shape == (3, 4) and positions[2].tolist() == [8, 9, 10, 11]
    assert buffers.view("positions", 2).tolist() == [[0, 1], [4, 5], [8, 9]]
    with pytest.raises(ValueError, match="slots buffer of 8"):
        buffers.stage("slots", list(range(9)))


def test_every_step_reads_its_inputs_from_the_same_storage(
    tiny_model_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    language = LanguageHalf(tiny_model_dirs["glm4v"], CPU)
    engine = LLMEngine(language, EngineConfig(max_num_seqs=2, max_model_len=256, max_num_batched_tokens=16))
    addresses: list[tuple[int, ...]] = []
    forward = language.forward

    def recording_forward(
        inputs_embeds: torch.Tensor, positions: torch.Tensor, step: Any, sample_rows: torch.Tensor
    ) -> torch.Tensor:
        sampled = (sample_rows.data_ptr(),) if sample_rows.numel() else ()  # an empty view has no address
        addresses.append((positions.data_ptr(), step._slots.data_ptr(), *sampled))
        return forward(inputs_embeds, positions, step, sample_rows)

    monkeypatch.setattr(language, "forward", recording_forward)
    params = SamplingParams(max_tokens=6, temperature=0, ignore_eos=True)
    for index in range(2):
        engine.add_request(f"r{index}", image_question(f"Question {index}: tell me a story.", 0), [], params)
    while engine.has_work:
        engine.step()
    assert len(addresses) > 6  # prompt chunks, then decodes
    assert len({address[:2] for address in addresses}) == 1
    assert len({address[2] for address in addresses if len(address) == 3}) == 1
