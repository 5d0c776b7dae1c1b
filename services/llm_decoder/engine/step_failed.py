"""A failed model step, as the engine reports it to its own driver loop."""

from __future__ import annotations


class StepFailed(Exception):
    """Raised by `LLMEngine.step_tokens` (and `step`) when the model failed: the step's sequences were dropped
    (their slots freed, nothing of theirs kept for prefix reuse); `request_ids` names them. Stays inside the
    decoder process."""

    def __init__(self, request_ids: list[str], cause: BaseException) -> None:
        super().__init__(f"a step of {len(request_ids)} sequences failed: {cause!r}")
        self.request_ids = request_ids
        self.cause = cause
