"""The gateway's HTTP surface: thin routes over the ChatService."""

from __future__ import annotations

import asyncio
import base64
import logging
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, File, Form, Header, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from services.common.image_input import ImageInputError
from services.gateway.admission import Admitted
from services.gateway.body_limit import BodySizeLimit
from services.gateway.errors import CLIENT_ERRORS, APIError, BodyTooLargeError, error_response, to_api_error
from services.gateway.gateway import Gateway
from services.gateway.in_flight_limit import InFlightLimit
from services.gateway.metrics_endpoint import CONTENT_TYPE as METRICS_CONTENT_TYPE
from services.gateway.metrics_endpoint import metrics_text
from services.gateway.protocol import (
    ChatCompletionRequest,
    ChatMessage,
    ImagePart,
    ImageURL,
    ModelCard,
    ModelList,
    ResponseFormat,
    StreamOptions,
    TextPart,
    new_completion_id,
    parse_response_format,
)
from services.gateway.request_report import RequestReport
from services.gateway.responses import completion_events, completion_response
from services.gateway.telemetry_middleware import RequestTelemetry

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"  # the web page: plain files, no build step


def create_app(gateway: Gateway, behind_serve_proxy: bool = False) -> FastAPI:
    app = FastAPI(title="flashvqa", summary="Image question answering, OpenAI-compatible")
    app.state.gateway = gateway
    app.add_middleware(BodySizeLimit, max_bytes=gateway.options.max_body_bytes)
    if gateway.options.max_in_flight is not None:  # outside the body limit: refuses before a byte is read
        app.add_middleware(
            InFlightLimit,
            max_in_flight=gateway.options.max_in_flight,
            retry_after_ms=gateway.options.overload_retry_after_ms,
        )
    # Added last, so outermost: it also sees what the body limit refuses.
    app.add_middleware(RequestTelemetry, proxy_sets_request_id=behind_serve_proxy)
    _add_error_handlers(app)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(
        body: ChatCompletionRequest,
        gateway: Annotated[Gateway, Depends(_gateway)],
        admitted: Annotated[Admitted, Depends(_admit)],
        deadline: Annotated[float, Depends(_deadline)],
    ) -> JSONResponse | StreamingResponse:
        return await _complete(gateway, body, admitted, deadline)

    @app.post("/v1/vqa", response_model=None)
    async def vqa(
        gateway: Annotated[Gateway, Depends(_gateway)],
        admitted: Annotated[Admitted, Depends(_admit)],
        deadline: Annotated[float, Depends(_deadline)],
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

    @app.get("/v1/models")
    async def models(
        gateway: Annotated[Gateway, Depends(_gateway)], authorization: Annotated[str | None, Header()] = None
    ) -> ModelList:
        gateway.admission.authenticate(authorization)
        return ModelList(data=[ModelCard(id=gateway.options.model_name)])

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(await metrics_text(), media_type=METRICS_CONTENT_TYPE)

    @app.get("/health")
    async def health(gateway: Annotated[Gateway, Depends(_gateway)]) -> dict[str, str]:
        """200 while the gateway can serve; `degraded` when Redis is configured but unreachable."""
        return await gateway.health()

    return app


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


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def _admit(
    gateway: Annotated[Gateway, Depends(_gateway)], authorization: Annotated[str | None, Header()] = None
) -> Admitted:
    return await gateway.admission.admit(authorization)


async def _deadline(
    gateway: Annotated[Gateway, Depends(_gateway)],
    x_request_timeout: Annotated[
        float | None, Header(gt=0, allow_inf_nan=False, description="seconds; the server's default otherwise")
    ] = None,
) -> float:
    """The request's deadline in event loop time: the client's timeout, capped by the server's maximum."""
    options = gateway.options
    timeout = min(x_request_timeout or options.request_timeout_s, options.max_request_timeout_s)
    return asyncio.get_running_loop().time() + timeout


async def _complete(
    gateway: Gateway, body: ChatCompletionRequest, admitted: Admitted, deadline: float
) -> JSONResponse | StreamingResponse:
    completion_id = new_completion_id()
    model = gateway.options.model_name
    report = RequestReport()
    outputs = gateway.chat.outputs(body, completion_id, admitted.tenant, deadline, report)
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


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        location = [str(part) for part in first["loc"] if part not in ("body", "query", "path", "header")]
        # A tagged union names its tag before the field ("json_schema", "json_schema"): the client sent one.
        location = [part for index, part in enumerate(location) if index == 0 or part != location[index - 1]]
        param = ".".join(location) or None
        code = "invalid_response_format" if location[:1] == ["response_format"] else None
        return error_response(APIError(400, f"{param or 'request'}: {first['msg']}", param=param, code=code))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        # FastAPI wraps what failed while reading the body in a bare "error parsing the body".
        if isinstance(error.__cause__, BodyTooLargeError):
            return error_response(to_api_error(error.__cause__))
        if isinstance(error.__cause__, UnicodeDecodeError):
            return error_response(
                APIError(
                    400, f"request body is not UTF-8 JSON ({error.__cause__.reason} at byte {error.__cause__.start})"
                )
            )
        kind = "not_found_error" if error.status_code == 404 else "invalid_request_error"
        return error_response(APIError(error.status_code, str(error.detail), type=kind))

    async def client_error(_: Request, error: Exception) -> JSONResponse:
        return error_response(to_api_error(error))

    for error_class in CLIENT_ERRORS:
        app.add_exception_handler(error_class, client_error)

    @app.exception_handler(Exception)
    async def unexpected_error(_: Request, error: Exception) -> JSONResponse:
        logger.exception("request failed", exc_info=error)
        return error_response(to_api_error(error))
