"""3D rotary positions (M-RoPE) for a prompt of text and image tokens.

Both families place text tokens on the diagonal (t = h = w = index) and the tokens of an image on its
merged (t, h, w) grid, starting at the next free index; after an image the text index continues from
`start + max(h, w) / merge`, so a sequence has fewer distinct positions than tokens. The difference is the
sequence's `rope_delta`: a decode step at cache length L uses position L + rope_delta on all three axes.
This mirrors `get_rope_index` of transformers' Glm4vModel and Qwen2_5_VLModel for images (t = 1).
"""

from __future__ import annotations

import torch


def mrope_positions(
    is_image_token: list[bool], image_grids: list[tuple[int, int, int]], merge_size: int
) -> tuple[torch.Tensor, int]:
    """Positions `[3, seq_len]` and the rope delta for one prompt.

    Each maximal run of image tokens is one image, in order; its length must equal t*h*w / merge_size**2.
    """
    columns: list[torch.Tensor] = []
    grids = iter(image_grids)
    next_position = 0
    index = 0
    while index < len(is_image_token):
        run_end = index
        while run_end < len(is_image_token) and is_image_token[run_end] == is_image_token[index]:
            run_end += 1
        if is_image_token[index]:
            t, h, w = next(grids)
            grid_h, grid_w = h // merge_size, w // merge_size
            if not (run_end - index == t * grid_h * grid_w):
                raise ValueError("image token run does not match its grid")
            tt, hh, ww = torch.meshgrid(torch.arange(t), torch.arange(grid_h), torch.arange(grid_w), indexing="ij")
            columns.append(torch.stack([tt, hh, ww]).reshape(3, -1) + next_position)
            next_position += max(grid_h, grid_w)
        else:
            length = run_end - index
            columns.append(torch.arange(next_position, next_position + length).expand(3, -1))
            next_position += length
        index = run_end
    if next(grids, None) is not None:
        raise ValueError("more image grids than images in the prompt")
    positions = torch.cat(columns, dim=1) if columns else torch.zeros(3, 0, dtype=torch.long)
    return positions, next_position - len(is_image_token)
