"""Embedding a chunk of a prompt (what a prefill after a reused prefix, or over several steps, needs) gives
the same rows as embedding it whole, wherever the chunk begins and ends: before, inside or after an image."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from services.common.image_embedding import ImageEmbedding
from services.local_pipeline import image_question
from services.models.language_half import LanguageHalf
from tests.conftest import FAMILY_NAMES


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_a_chunk_embeds_like_the_whole(family: str, tiny_model_dirs: dict[str, Path]) -> None:
    language = LanguageHalf(tiny_model_dirs[family], torch.device("cpu"))
    grids = [(1, 4, 6), (1, 6, 4)]
    images = [
        ImageEmbedding(f"hash{index}", grid, torch.randn(6, language.hidden_size)) for index, grid in enumerate(grids)
    ]
    prompt = language.render_prompt(image_question("Which is taller?", 2), grids)
    (first_start, first_end), (second_start, second_end) = prompt.image_spans
    assert first_end - first_start == second_end - second_start == 6
    assert all(prompt.token_ids[index] == language.image_token_id for index in range(first_start, first_end))

    def embed(start: int, end: int) -> torch.Tensor:
        return language.embed(prompt.token_ids[start:end], language.image_rows(prompt, images, start, end))[0]

    whole = embed(0, prompt.num_tokens)
    assert torch.equal(whole[first_start:first_end], images[0].embeds)
    assert torch.equal(whole[second_start:second_end], images[1].embeds)
    cuts = (0, first_start, first_start + 2, first_end, second_start + 5, second_end, prompt.num_tokens - 1)
    for start in cuts:
        for end in (start + 1, start + 3, second_start + 1, prompt.num_tokens):
            if start < end <= prompt.num_tokens:
                assert torch.equal(embed(start, end), whole[start:end]), (start, end)
