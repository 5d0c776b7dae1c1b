"""Our M-RoPE positions equal transformers' `get_rope_index` for both families."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoConfig

from services.models.family import FAMILIES
from services.models.mrope import mrope_positions
from tests.conftest import FAMILY_NAMES

GRID_CASES = {
    "text_only": [],
    "one_square": [(1, 4, 4)],
    "tall_and_wide": [(1, 10, 2), (1, 2, 12)],
}


def _token_types(grids: list[tuple[int, int, int]], merge: int) -> list[int]:
    types = [0, 0, 0]
    for t, h, w in grids:
        types += [1] * (t * h * w // merge**2) + [0, 0]
    return [*types, 0, 0, 0, 0]


@pytest.mark.parametrize("family", FAMILY_NAMES)
@pytest.mark.parametrize("case", sorted(GRID_CASES))
def test_matches_transformers_get_rope_index(family: str, case: str, tiny_model_dirs: dict[str, Path]) -> None:
    config = AutoConfig.from_pretrained(tiny_model_dirs[family])
    with torch.device("meta"):
        model = FAMILIES[family].hf_class("model_class")(config)
    grids = GRID_CASES[case]
    types = _token_types(grids, merge=2)
    input_ids = torch.tensor([[config.image_token_id if kind else 5 for kind in types]])
    if grids:
        expected, expected_delta = model.model.get_rope_index(
            input_ids, mm_token_type_ids=torch.tensor([types]), image_grid_thw=torch.tensor(grids)
        )
        expected_positions, delta = expected[:, 0], int(expected_delta[0, 0])
    else:
        expected_positions, delta = torch.arange(len(types)).expand(3, -1), 0

    positions, rope_delta = mrope_positions([kind == 1 for kind in types], grids, merge_size=2)

    assert torch.equal(positions, expected_positions)
    assert rope_delta == delta
