"""Every error a request can raise, answered in the OpenAI error envelope: FastAPI's own validation and HTTP
errors rewritten, the client errors mapped by `errors.to_api_error`, and anything else a logged 500."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from services.gateway.api.errors import CLIENT_ERRORS, APIError, BodyTooLargeError, error_response, to_api_error

logger = logging.getLogger(__name__)


def add_error_handlers(app: FastAPI) -> None:
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
