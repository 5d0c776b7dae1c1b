"""The gateway's HTTP routes: thin, each gets its collaborators through `deps.py` and calls one service."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, File, Form, Header, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError

from services.common.image_input import ImageInputError
from services.gateway.admission.admission import Admitted
from services.gateway.api.errors import APIError
from services.gateway.api.protocol import (
    ChatCompletionRequest,
    ChatMessage,
    ImagePart,
    ImageURL,
    LoadLoRAAdapterRequest,
    LoRAAdapterCard,
    ModelCard,
    ModelList,
    ResponseFormat,
    StreamOptions,
    TextPart,
    UnloadLoRAAdapterRequest,
    new_completion_id,
    parse_response_format,
)
from services.gateway.api.request_report import RequestReport
from services.gateway.api.responses import completion_events, completion_response
from services.gateway.deps import AdmittedDep, DeadlineDep, GatewayDep
from services.gateway.gateway import Gateway
from services.gateway.telemetry.metrics_endpoint import CONTENT_TYPE as METRICS_CONTENT_TYPE
from services.gateway.telemetry.metrics_endpoint import metrics_text

router = APIRouter()


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest,
    gateway: GatewayDep,
    admitted: AdmittedDep,
    deadline: DeadlineDep,
) -> JSONResponse | StreamingResponse:
    return await _complete(gateway, body, admitted, deadline)


@router.post("/v1/vqa", response_model=None)
async def vqa(
    gateway: GatewayDep,
    admitted: AdmittedDep,
    deadline: DeadlineDep,
    image: Annotated[UploadFile, File(description="the picture")],
    question: Annotated[str, Form(min_length=1)],
    stream: Annotated[bool, Form()] = False,
    max_tokens: Annotated[int | None, Form(ge=1)] = None,
    temperature: Annotated[float, Form(ge=0, le=2)] = 0.0,
    top_p: Annotated[float, Form(gt=0, le=1)] = 1.0,
    seed: Annotated[int | None, Form()] = None,
    enable_thinking: Annotated[bool, Form()] = False,
    response_format: Annotated[
        str | None,
        Form(description='the chat completion `response_format`, as JSON text, e.g. {"type": "json_object"}'),
    ] = None,
) -> JSONResponse | StreamingResponse:
    """One picture and one question as multipart form data (for mobile clients); the answer comes
    back in the chat completion format, as JSON or, with `stream=true`, as server-sent events."""
    max_bytes = gateway.options.max_image_bytes
    data = await image.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise APIError(400, f"image is larger than {max_bytes} bytes", param="image")
    data_url = f"data:{image.content_type or 'application/octet-stream'};base64,{base64.b64encode(data).decode()}"
    answer_format = _form_response_format(response_format)
    try:
        body = ChatCompletionRequest(
            messages=[
                ChatMessage(
                    role="user",
                    content=[
                        ImagePart(type="image_url", image_url=ImageURL(url=data_url)),
                        TextPart(type="text", text=question),
                    ],
                )
            ],
            stream=stream,
            stream_options=StreamOptions(include_usage=True) if stream else None,
            max_completion_tokens=max_tokens,
            response_format=answer_format,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            chat_template_kwargs={"enable_thinking": enable_thinking},
        )
    except ValidationError as error:  # what only the whole request checks: seed's range, a format with thinking
        raise RequestValidationError(error.errors()) from None
    try:
        return await _complete(gateway, body, admitted, deadline)
    except ImageInputError as error:  # name the form field the client sent, not the chat message we built
        raise ImageInputError(str(error), "image") from None


@router.get("/v1/models")
async def models(gateway: GatewayDep, authorization: Annotated[str | None, Header()] = None) -> ModelList:
    """The base model and the LoRA adapters this caller may use."""
    tenant = gateway.admission.authenticate(authorization)
    base = gateway.models.base
    ids = await gateway.models.ids(tenant)
    return ModelList(data=[ModelCard(id=name, parent=None if name == base else base) for name in ids])


@router.post("/v1/load_lora_adapter")
async def load_lora_adapter(
    body: LoadLoRAAdapterRequest, gateway: GatewayDep, authorization: Annotated[str | None, Header()] = None
) -> LoRAAdapterCard:
    """Serve the PEFT adapter at `lora_path` as model `lora_name` from every decoder replica (an admin key's
    call when API keys are on). A bad adapter is a 400 and changes nothing."""
    gateway.admission.authenticate_admin(authorization)
    await gateway.models.load(body.lora_name, body.lora_path, body.load_inplace)
    return LoRAAdapterCard(id=body.lora_name, parent=gateway.models.base, status="loaded")


@router.post("/v1/unload_lora_adapter")
async def unload_lora_adapter(
    body: UnloadLoRAAdapterRequest, gateway: GatewayDep, authorization: Annotated[str | None, Header()] = None
) -> LoRAAdapterCard:
    """Stop serving adapter `lora_name`; answers underway finish."""
    gateway.admission.authenticate_admin(authorization)
    await gateway.models.unload(body.lora_name)
    return LoRAAdapterCard(id=body.lora_name, parent=gateway.models.base, status="unloaded")


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    return Response(await metrics_text(), media_type=METRICS_CONTENT_TYPE)


@router.get("/health")
async def health(gateway: GatewayDep) -> dict[str, str]:
    """200 while the gateway can serve; `degraded` when Redis is configured but unreachable."""
    return await gateway.health()


def _form_response_format(text: str | None) -> ResponseFormat | None:
    """The `/v1/vqa` form field, refused as the same field of a chat request would be."""
    if text is None:
        return None
    try:
        return parse_response_format(text)
    except ValidationError as error:
        raise RequestValidationError(
            [detail | {"loc": ("response_format", *detail["loc"])} for detail in error.errors()]
        ) from None


async def _complete(
    gateway: Gateway, body: ChatCompletionRequest, admitted: Admitted, deadline: float
) -> JSONResponse | StreamingResponse:
    completion_id = new_completion_id()
    served = await gateway.models.resolve(body.model, admitted.tenant)
    model = served.id
    report = RequestReport()
    outputs = gateway.chat.outputs(body, served, completion_id, admitted.tenant, deadline, report)
    if not body.stream:
        response = await completion_response(outputs, completion_id, model, body.return_token_ids, report)
        return JSONResponse(response, headers=admitted.headers | report.headers())
    # Wait for the first output before answering 200, so refusals (bad image, queue full) keep their status.
    try:
        first = await anext(outputs)
    except BaseException:
        await outputs.aclose()  # type: ignore[attr-defined]
        raise
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    events = completion_events(
        first, outputs, completion_id, model, include_usage, body.return_token_ids, report.provenance_json()
    )
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", **admitted.headers, **report.headers()},
    )
