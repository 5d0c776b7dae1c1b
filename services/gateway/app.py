"""The gateway's FastAPI app: the door middlewares, the error handlers, the API routes and the web page."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from services.gateway.admission.body_limit import BodySizeLimit
from services.gateway.admission.in_flight_limit import InFlightLimit
from services.gateway.api.error_handlers import add_error_handlers
from services.gateway.gateway import Gateway
from services.gateway.routes import router
from services.gateway.telemetry.telemetry_middleware import RequestTelemetry

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
    add_error_handlers(app)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    return app
