"""How one request wants its tokens chosen and when it wants them to stop."""

from __future__ import annotations

from dataclasses import dataclass

from services.messages.grammar_spec import GrammarSpec

GREEDY_BELOW_TEMPERATURE = 1e-5


@dataclass(frozen=True)
class SamplingParams:
    """`temperature == 0` is greedy. `top_k == 0` and `top_p == 1` disable those filters.
    The gateway validates client values (as 400s); these checks refuse internal callers' mistakes."""

    max_tokens: int | None = None  # None: up to the context length
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    ignore_eos: bool = False
    grammar: GrammarSpec | None = None  # constrain the output to JSON valid against a schema

    def __post_init__(self) -> None:
        if not (self.max_tokens is None or self.max_tokens >= 1):
            raise ValueError(f"invalid sampling parameters: {self}")
        if not (self.temperature >= 0 and 0 < self.top_p <= 1 and self.top_k >= 0):
            raise ValueError(f"invalid sampling parameters: {self}")
        if not all(self.stop):
            raise ValueError("stop strings must be non-empty")

    @property
    def is_greedy(self) -> bool:
        # Below this, dividing the logits by the temperature overflows float32 to inf (and the softmax to
        # NaN); the distribution is one-hot by then anyway.
        return self.temperature < GREEDY_BELOW_TEMPERATURE or self.top_k == 1
