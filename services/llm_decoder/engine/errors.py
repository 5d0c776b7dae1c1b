"""Why the engine refuses a request; the gateway maps each to an HTTP status."""

from __future__ import annotations


class EngineError(Exception):
    """Base of the engine's refusals. `param` names the offending request field, if one is to blame."""

    param: str | None = None


class QueueFullError(EngineError):
    """The waiting queue is at its bound: the caller should retry later (429 with Retry-After)."""


class ContextLengthError(EngineError):
    """The prompt, or prompt plus max_tokens, does not fit the model's context (400)."""

    def __init__(self, message: str, param: str = "messages") -> None:
        super().__init__(message)
        self.param = param


class GrammarError(EngineError):
    """The request's response_format schema cannot be compiled into a grammar; the message says why (400)."""

    param = "response_format"


class StepError(EngineError):
    """The model failed while it ran this request's step (a bug, a device fault): the request ended, the
    engine goes on with the others (503)."""


class StepFailed(Exception):
    """Raised by `LLMEngine.step_tokens` (and `step`) when the model failed: the step's sequences were dropped
    (their slots freed, nothing of theirs kept for prefix reuse); `request_ids` names them. Stays inside the
    decoder process."""

    def __init__(self, request_ids: list[str], cause: BaseException) -> None:
        super().__init__(f"a step of {len(request_ids)} sequences failed: {cause!r}")
        self.request_ids = request_ids
        self.cause = cause
