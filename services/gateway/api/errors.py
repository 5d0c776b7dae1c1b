"""Every failure a client can cause, as one typed error, and the one place that turns it into HTTP."""

from __future__ import annotations

from services.common.image_input import ImageInputError
from services.gateway.api.api_error import RETRY_AFTER_SECONDS, APIError, error_response
from services.gateway.images.provenance_gate import ProvenancePolicyViolation
from services.messages import (
    AdapterLoadError,
    AdapterNotFoundError,
    ContextLengthError,
    EngineDeadError,
    GrammarError,
    PromptError,
    QueueFullError,
    StepError,
)
from services.safety import ContentPolicyViolation, SafetyUnavailableError

__all__ = [
    "CLIENT_ERRORS",
    "RETRY_AFTER_SECONDS",
    "APIError",
    "BodyTooLargeError",
    "ServiceUnavailableError",
    "error_response",
    "to_api_error",
]


class ServiceUnavailableError(Exception):
    """A backend pool cannot take the request now (its queue is full, or a replica died and restarts)."""


class BodyTooLargeError(ValueError):
    """Raised into the route reading the body (see `body_limit.py`)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body is larger than {limit} bytes")


# What the routes let propagate and `to_api_error` maps (anything else is a bug, logged as such).
CLIENT_ERRORS: tuple[type[Exception], ...] = (
    APIError,
    ImageInputError,
    ContextLengthError,
    GrammarError,
    PromptError,
    QueueFullError,
    AdapterNotFoundError,
    AdapterLoadError,
    ServiceUnavailableError,
    EngineDeadError,
    StepError,
    TimeoutError,
    BodyTooLargeError,
    ContentPolicyViolation,
    SafetyUnavailableError,
    ProvenancePolicyViolation,
)


def to_api_error(error: Exception) -> APIError:
    """Map any exception to the error the client sees; unknown ones become a 500 without internals."""
    match error:
        case APIError():
            return error
        case ImageInputError():
            return APIError(400, str(error), param=error.param, code="invalid_image")
        case ContextLengthError():
            return APIError(400, str(error), param=error.param, code="context_length_exceeded")
        case GrammarError():
            return APIError(400, str(error), param=error.param, code="invalid_response_format")
        case PromptError():
            return APIError(400, str(error), param="messages")
        case AdapterNotFoundError():  # unloaded from the decoder after the gateway let the request in
            return APIError(404, str(error), param="model", code="model_not_found")
        case AdapterLoadError():  # its files changed or went away since the adapter was loaded
            return APIError(503, str(error), type="server_error", code="adapter_unavailable")
        case QueueFullError():
            return APIError(
                429,
                f"{error}; retry shortly",
                type="rate_limit_error",
                code="server_busy",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        case ContentPolicyViolation():
            return APIError(400, str(error), param=error.param, code="content_policy_violation")
        case ProvenancePolicyViolation():
            return APIError(400, str(error), param=error.param, code="provenance_policy_violation")
        case StepError():
            return APIError(
                503,
                f"{error}; retry shortly",
                type="server_error",
                code="engine_error",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        case ServiceUnavailableError() | EngineDeadError() | SafetyUnavailableError():
            return APIError(
                503,
                f"{error}; retry shortly",
                type="server_error",
                code="overloaded",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        case BodyTooLargeError():
            return APIError(413, str(error), code="request_too_large")
        case TimeoutError():
            return APIError(504, "the request took too long", type="server_error", code="timeout")
    return APIError(500, "internal error", type="server_error")
