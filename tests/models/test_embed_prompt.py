"""Embedding a prompt from a token on (what a prefill after a reused prefix needs) gives the same rows as
embedding it whole, wherever that token lies: before, inside or after an image."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from services.common.image_embedding import ImageEmbedding
from services.local_pipeline import image_question
from services.models.language_half import LanguageHalf
from tests.conftest import FAMILY_NAMES


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_a_suffix_embeds_like_the_whole(family: str, tiny_model_dirs: dict[str, Path]) -> None:
    language = LanguageHalf(tiny_model_dirs[family], torch.device("cpu"))
    grids = [(1, 4, 6), (1, 6, 4)]
    images = [ImageEmbedding(f"hash{index}", grid, torch.randn(6, language.hidden_size))
              for index, grid in enumerate(grids)]
    prompt = language.render_prompt(image_question("Which is taller?", 2), grids)
    (first_start, first_end), (second_start, second_end) = prompt.image_spans
    assert first_end - first_start == second_end - second_start == 6
    assert all(prompt.token_ids[index] == language.image_token_id for index in range(first_start, first_end))

    whole = language.embed_prompt(prompt, images)[0]
    for start in (0, first_start, first_start + 2, first_end, second_start + 5, second_end, prompt.num_tokens - 1):
        assert torch.equal(language.embed_prompt(prompt, images, start)[0], whole[start:]), start
