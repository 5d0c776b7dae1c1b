"""The OpenAI error envelope and the error that carries it: imports no model code, so the Serve proxy's door
(`proxy_door.py`) can answer in it too."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    error: ErrorDetail


RETRY_AFTER_SECONDS = 1


class APIError(Exception):
    """An error to send to the client in the OpenAI envelope."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.detail = ErrorDetail(message=message, type=type, param=param, code=code)
        self.headers = headers or {}


def error_response(error: APIError) -> JSONResponse:
    body = ErrorResponse(error=error.detail).model_dump()
    return JSONResponse(body, status_code=error.status, headers=error.headers)
