"""Why the decoder refuses or ends a request. They travel back to the gateway (through Ray, wrapped), which
maps each to an HTTP status, so they live here, beside the messages, and not in the engine."""

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


class AdapterNotFoundError(EngineError):
    """The request names a LoRA adapter this decoder does not serve (404, as for an unknown model)."""

    param = "model"


class AdapterLoadError(EngineError):
    """An adapter's files cannot be served by this decoder: missing or corrupt files, another base model's
    shapes, a rank over the limit, a path outside the adapter root. Loading it changed nothing."""

    param = "lora_path"


class EngineDeadError(RuntimeError):
    """The engine loop failed; requests in flight end with this error and the replica reports unhealthy."""


class PromptError(ValueError):
    """Messages that cannot be turned into a prompt for this model (e.g. images and embeddings disagree)."""
