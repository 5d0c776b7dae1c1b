"""`to_api_error` is the one place that turns an exception into the HTTP status, OpenAI error envelope
(`{"error": {message, type, param, code}}`) and headers the client sees. The table below holds one row per
error type it maps (and per branch-worthy variant), so each row pins the whole client-visible answer."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from services.common.deadline import DeadlineExceededError
from services.common.image_input import ImageInputError
from services.gateway.api.errors import (
    CLIENT_ERRORS,
    RETRY_AFTER_SECONDS,
    APIError,
    BodyTooLargeError,
    ServiceUnavailableError,
    error_response,
    to_api_error,
)
from services.gateway.images.provenance_gate import ProvenancePolicyViolation
from services.messages import (
    AdapterLoadError,
    AdapterNotFoundError,
    ContextLengthError,
    EngineDeadError,
    EngineError,
    GrammarError,
    PromptError,
    QueueFullError,
    StepError,
)
from services.provenance import FindingKind, PolicyAction, ProvenanceReport, WatermarkStatus
from services.safety import Action, ContentPolicyViolation, SafetyUnavailableError, SafetyVerdict, Source

IMAGE_PARAM = "messages[0].content[1].image_url"
RETRY = {"retry-after": str(RETRY_AFTER_SECONDS)}


@dataclass(frozen=True)
class Case:
    """What the client must see for `error`: the status, the envelope's four fields, and the headers."""

    error: Exception
    status: int
    type: str
    param: str | None
    code: str | None
    message: str
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names, beyond content-type/-length


def _blocked_image_verdict() -> SafetyVerdict:
    return SafetyVerdict("violence", Action.BLOCK, Source.IMAGE, 0.973)


def _watermarked_report() -> ProvenanceReport:
    return ProvenanceReport(
        PolicyAction.BLOCK,
        (FindingKind.INVISIBLE_WATERMARK,),
        False,
        None,
        None,
        False,
        (),
        WatermarkStatus.DETECTED,
        watermark_payload="stable-diffusion-xl",
    )


CLIENT_CASES: dict[str, Case] = {
    "api-error-passes-through-with-its-headers": Case(
        APIError(
            401,
            "invalid API key",
            type="authentication_error",
            code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        ),
        401,
        "authentication_error",
        None,
        "invalid_api_key",
        "invalid API key",
        {"www-authenticate": "Bearer"},
    ),
    "image-input-names-its-field": Case(
        ImageInputError("image is empty (0 bytes)", IMAGE_PARAM),
        400,
        "invalid_request_error",
        IMAGE_PARAM,
        "invalid_image",
        "image is empty (0 bytes)",
    ),
    "image-input-default-param": Case(
        ImageInputError("image has no pixels (0x4)"),
        400,
        "invalid_request_error",
        "image",
        "invalid_image",
        "image has no pixels (0x4)",
    ),
    "adapter-unloaded-meanwhile-is-model-not-found": Case(
        AdapterNotFoundError("the model 'receipts' does not exist"),
        404,
        "invalid_request_error",
        "model",
        "model_not_found",
        "the model 'receipts' does not exist",
    ),
    "adapter-whose-files-went-away-is-unavailable": Case(
        AdapterLoadError("adapter 'receipts' cannot be served: no adapter_model.safetensors"),
        503,
        "server_error",
        None,
        "adapter_unavailable",
        "adapter 'receipts' cannot be served: no adapter_model.safetensors",
    ),
    "context-length-names-max-tokens": Case(
        ContextLengthError("prompt plus max_tokens is 9000 tokens; the context is 8192", "max_tokens"),
        400,
        "invalid_request_error",
        "max_tokens",
        "context_length_exceeded",
        "prompt plus max_tokens is 9000 tokens; the context is 8192",
    ),
    "context-length-default-param": Case(
        ContextLengthError("the prompt is 9000 tokens; the context is 8192"),
        400,
        "invalid_request_error",
        "messages",
        "context_length_exceeded",
        "the prompt is 9000 tokens; the context is 8192",
    ),
    "grammar-blames-response-format": Case(
        GrammarError("the JSON schema cannot be used: Unknown format: credit-card"),
        400,
        "invalid_request_error",
        "response_format",
        "invalid_response_format",
        "the JSON schema cannot be used: Unknown format: credit-card",
    ),
    "prompt-blames-messages-without-a-code": Case(
        PromptError("2 images in the messages but 1 embedding"),
        400,
        "invalid_request_error",
        "messages",
        None,
        "2 images in the messages but 1 embedding",
    ),
    "queue-full-is-429-with-retry-after": Case(
        QueueFullError("the decoder queue is full"),
        429,
        "rate_limit_error",
        None,
        "server_busy",
        "the decoder queue is full; retry shortly",
        RETRY,
    ),
    "content-policy-names-category-not-score": Case(
        ContentPolicyViolation(_blocked_image_verdict(), "messages"),
        400,
        "invalid_request_error",
        "messages",
        "content_policy_violation",
        "the image was refused by the content policy (category: violence)",
    ),
    "content-policy-on-the-answer-has-no-param": Case(
        ContentPolicyViolation(SafetyVerdict("self-harm", Action.BLOCK, Source.ANSWER, 1.0), None),
        400,
        "invalid_request_error",
        None,
        "content_policy_violation",
        "the answer was refused by the content policy (category: self-harm)",
    ),
    "provenance-policy-names-the-image": Case(
        ProvenancePolicyViolation(_watermarked_report(), IMAGE_PARAM),
        400,
        "invalid_request_error",
        IMAGE_PARAM,
        "provenance_policy_violation",
        "the image was refused by the provenance policy (findings: invisible_watermark)",
    ),
    "step-error-is-503-engine-error": Case(
        StepError("the decoder failed while generating this answer"),
        503,
        "server_error",
        None,
        "engine_error",
        "the decoder failed while generating this answer; retry shortly",
        RETRY,
    ),
    "service-unavailable-is-503-overloaded": Case(
        ServiceUnavailableError("the encoder or decoder pool is full or restarting"),
        503,
        "server_error",
        None,
        "overloaded",
        "the encoder or decoder pool is full or restarting; retry shortly",
        RETRY,
    ),
    "engine-dead-is-503-overloaded": Case(
        EngineDeadError("device lost"),
        503,
        "server_error",
        None,
        "overloaded",
        "device lost; retry shortly",
        RETRY,
    ),
    "safety-unavailable-is-503-overloaded": Case(
        SafetyUnavailableError("the image safety model could not load"),
        503,
        "server_error",
        None,
        "overloaded",
        "the image safety model could not load; retry shortly",
        RETRY,
    ),
    "body-too-large-is-413": Case(
        BodyTooLargeError(1024),
        413,
        "invalid_request_error",
        None,
        "request_too_large",
        "request body is larger than 1024 bytes",
    ),
    "timeout-is-504-without-its-message": Case(
        TimeoutError("asyncio.timeout_at(1234.5) in within_deadline"),
        504,
        "server_error",
        None,
        "timeout",
        "the request took too long",
    ),
    "deadline-exceeded-is-a-timeout": Case(
        DeadlineExceededError("the request's deadline passed while it waited for a replica"),
        504,
        "server_error",
        None,
        "timeout",
        "the request took too long",
    ),
}

INTERNAL_ERROR = Case(Exception(), 500, "server_error", None, None, "internal error")
SECRET = "/srv/flashvqa/llm_engine.py line 195: CUDA error at 0x7f3a"

# Exceptions no branch maps, several the siblings of a mapped type (a ValueError is not an ImageInputError,
# a RuntimeError not an EngineDeadError, the EngineError base not one of its refusals).
UNEXPECTED_ERRORS: dict[str, Exception] = {
    "runtime-error": RuntimeError(SECRET),
    "value-error": ValueError(SECRET),
    "key-error": KeyError(SECRET),
    "engine-error-base": EngineError(SECRET),
    "bare-exception": Exception(SECRET),
}


def _rendered(error: Exception) -> tuple[int, dict[str, object], dict[str, str]]:
    response = error_response(to_api_error(error))
    headers = {k: v for k, v in response.headers.items() if k not in ("content-length", "content-type")}
    return response.status_code, json.loads(bytes(response.body)), headers


class TestErrorMapping:
    @pytest.mark.parametrize("case", CLIENT_CASES.values(), ids=CLIENT_CASES.keys())
    def test_client_error_maps_to_its_status_envelope_and_headers(self, case: Case) -> None:
        """Each client error becomes exactly one status, envelope and header set, as sent on the wire."""
        api_error = to_api_error(case.error)
        assert api_error.status == case.status
        assert api_error.detail.model_dump() == {
            "message": case.message,
            "type": case.type,
            "param": case.param,
            "code": case.code,
        }
        status, body, headers = _rendered(case.error)
        assert status == case.status
        assert body == {"error": api_error.detail.model_dump()}
        assert headers == case.headers

    @pytest.mark.parametrize("error", UNEXPECTED_ERRORS.values(), ids=UNEXPECTED_ERRORS.keys())
    def test_unexpected_error_is_a_500_that_leaks_nothing(self, error: Exception) -> None:
        """Anything no branch maps is a bug: a bare 500 `internal error`, its message (paths, device state)
        kept from the client, and no Retry-After (retrying a bug does not help)."""
        status, body, headers = _rendered(error)
        assert status == INTERNAL_ERROR.status
        assert body == {
            "error": {
                "message": INTERNAL_ERROR.message,
                "type": INTERNAL_ERROR.type,
                "param": None,
                "code": None,
            }
        }
        assert SECRET not in json.dumps(body)
        assert headers == {}

    def test_an_api_error_is_returned_as_is(self) -> None:
        """Errors already in API form (auth, rate limit, validation) are not re-wrapped."""
        error = CLIENT_CASES["api-error-passes-through-with-its-headers"].error
        assert to_api_error(error) is error

    def test_every_client_error_type_has_a_row_in_the_table(self) -> None:
        """A type added to CLIENT_ERRORS without a row here fails: each mapped type states its answer."""
        tested = {type(case.error) for case in CLIENT_CASES.values()}
        assert set(CLIENT_ERRORS) - tested == set()

    @pytest.mark.parametrize("case", CLIENT_CASES.values(), ids=CLIENT_CASES.keys())
    def test_every_mapped_error_is_registered_as_a_client_error(self, case: Case) -> None:
        """The app installs its client-error handler for CLIENT_ERRORS only: a mapped type missing there
        would reach the unexpected-error handler and be logged as a bug."""
        assert isinstance(case.error, CLIENT_ERRORS)

    def test_unexpected_errors_are_not_client_errors(self) -> None:
        """The fallback rows really are outside CLIENT_ERRORS (else they would test a mapped branch)."""
        assert not any(isinstance(error, CLIENT_ERRORS) for error in UNEXPECTED_ERRORS.values())
