"""What one engine step hands out per sequence: its sampled token."""

from __future__ import annotations

from dataclasses import dataclass

from services.llm_decoder.engine.sequence import FinishReason


@dataclass(frozen=True)
class TokenOutput:
    """One sequence's token from one step, and whether the engine ended the sequence with it (a stop token,
    max_tokens, a complete grammar). Stop strings are found later, in its text (`OutputProcessor`)."""

    request_id: str
    token_id: int
    finish_reason: FinishReason | None
    num_prompt_tokens: int
    num_output_tokens: int
    num_reused_tokens: int

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None
