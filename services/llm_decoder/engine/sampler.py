"""Choosing each sequence's next token from one batch of logits."""

from __future__ import annotations

import torch

from services.messages import SamplingParams


def sample(logits: torch.Tensor, params: list[SamplingParams], generators: list[torch.Generator | None]) -> list[int]:
    """logits: [B, V] float32 -> one token id per row. Greedy rows take the argmax; the others sample
    from temperature-scaled, top-k and top-p filtered distributions, with the row's own generator when
    the request gave a seed (so a seeded request's tokens do not depend on its batch neighbours)."""
    chosen = logits.argmax(dim=-1)
    sampled_rows = [row for row, p in enumerate(params) if not p.is_greedy]
    if sampled_rows:
        device = logits.device
        probs = _filtered_probs(logits[torch.tensor(sampled_rows, device=device)], [params[r] for r in sampled_rows])
        # The rows without a seed draw together, in one call; a seeded row draws alone from its own generator.
        unseeded = [index for index, row in enumerate(sampled_rows) if generators[row] is None]
        if unseeded:
            rows = torch.tensor([sampled_rows[index] for index in unseeded], device=device)
            chosen[rows] = torch.multinomial(probs[torch.tensor(unseeded, device=device)], 1).squeeze(1)
        for index, row in enumerate(sampled_rows):
            if generators[row] is not None:
                chosen[row] = torch.multinomial(probs[index], 1, generator=generators[row])[0]
    tokens: list[int] = chosen.tolist()  # the step's one read from the device
    return tokens


def _filtered_probs(logits: torch.Tensor, params: list[SamplingParams]) -> torch.Tensor:
    device = logits.device
    temperature = torch.tensor([p.temperature for p in params], device=device).unsqueeze(1)
    sorted_logits, order = (logits / temperature).sort(dim=-1, descending=True)
    rank = torch.arange(logits.shape[-1], device=device).unsqueeze(0)
    top_k = torch.tensor([p.top_k or logits.shape[-1] for p in params], device=device).unsqueeze(1)
    sorted_logits = sorted_logits.masked_fill(rank >= top_k, float("-inf"))
    sorted_probs = sorted_logits.softmax(dim=-1)
    top_p = torch.tensor([p.top_p for p in params], device=device).unsqueeze(1)
    # Drop a token when the tokens ranked above it already reach top_p. The first token always stays, also
    # when a tiny top_p rounds to 0 in float32. top_p == 1 drops nothing: the float32 running sum of a large
    # vocabulary reaches 1.0 before its tail, which would otherwise be cut.
    mass_above = sorted_probs.cumsum(dim=-1) - sorted_probs
    sorted_probs = sorted_probs.masked_fill((mass_above >= top_p) & (rank > 0) & (top_p < 1), 0.0)
    return torch.zeros_like(sorted_probs).scatter_(-1, order, sorted_probs)
