"""The gateway's HTTP surface: thin routes over the ChatService."""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from services.gateway.chat_service import ChatService
from services.gateway.errors import CLIENT_ERRORS, APIError, error_response, to_api_error
from services.gateway.protocol import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatMessage,
    ImagePart,
    ImageURL,
    ModelCard,
    ModelList,
    StreamOptions,
    TextPart,
    new_completion_id,
)
from services.gateway.responses import completion_events, completion_response

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"  # the web page: plain files, no build step


def create_app(service: ChatService) -> FastAPI:
    app = FastAPI(title="flashvqa", summary="Image question answering, OpenAI-compatible")
    app.state.chat_service = service
    _add_error_handlers(app)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(
        body: ChatCompletionRequest, service: Annotated[ChatService, Depends(_service)]
    ) -> ChatCompletionResponse | StreamingResponse:
        return await _complete(service, body)

    @app.post("/v1/vqa", response_model=None)
    async def vqa(
        service: Annotated[ChatService, Depends(_service)],
        image: Annotated[UploadFile, File(description="the picture")],
        question: Annotated[str, Form(min_length=1)],
        stream: Annotated[bool, Form()] = False,
        max_tokens: Annotated[int | None, Form(ge=1)] = None,
        temperature: Annotated[float, Form(ge=0, le=2)] = 0.0,
        top_p: Annotated[float, Form(gt=0, le=1)] = 1.0,
        seed: Annotated[int | None, Form()] = None,
        enable_thinking: Annotated[bool, Form()] = False,
    ) -> ChatCompletionResponse | StreamingResponse:
        """One picture and one question as multipart form data (for mobile clients); the answer comes
        back in the chat completion format, as JSON or, with `stream=true`, as server-sent events."""
        data = await image.read(service.options.max_image_bytes + 1)
        if len(data) > service.options.max_image_bytes:
            raise APIError(400, f"image is larger than {service.options.max_image_bytes} bytes", param="image")
        data_url = f"data:{image.content_type or 'application/octet-stream'};base64,{base64.b64encode(data).decode()}"
        body = ChatCompletionRequest(
            messages=[ChatMessage(role="user", content=[
                ImagePart(type="image_url", image_url=ImageURL(url=data_url)), TextPart(type="text", text=question),
            ])],
            stream=stream,
            stream_options=StreamOptions(include_usage=True) if stream else None,
            max_completion_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            chat_template_kwargs={"enable_thinking": enable_thinking},
        )
        return await _complete(service, body)

    @app.get("/v1/models")
    async def models(service: Annotated[ChatService, Depends(_service)]) -> ModelList:
        return ModelList(data=[ModelCard(id=service.options.model_name)])

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _service(request: Request) -> ChatService:
    service: ChatService = request.app.state.chat_service
    return service


async def _complete(service: ChatService, body: ChatCompletionRequest) -> ChatCompletionResponse | StreamingResponse:
    completion_id = new_completion_id()
    model = service.options.model_name
    outputs = service.outputs(body, completion_id)
    if not body.stream:
        return await completion_response(outputs, completion_id, model, body.return_token_ids)
    # Wait for the first output before answering 200, so refusals (bad image, queue full) keep their status.
    try:
        first = await anext(outputs)
    except BaseException:
        await outputs.aclose()  # type: ignore[attr-defined]
        raise
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    events = completion_events(first, outputs, completion_id, model, include_usage, body.return_token_ids)
    return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        location = [str(part) for part in first["loc"] if part not in ("body", "query", "path")]
        param = ".".join(location) or None
        return error_response(APIError(400, f"{param or 'request'}: {first['msg']}", param=param))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
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
