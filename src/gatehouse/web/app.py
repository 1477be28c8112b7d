"""The app factory: routes, error mapping in one place, and the security middleware."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response

from gatehouse import __version__, lifecycle
from gatehouse.domain.errors import DomainError, TooManyAttempts
from gatehouse.runtime import Runtime
from gatehouse.settings import Settings, load_settings
from gatehouse.web import api_docs, logredact, routes
from gatehouse.web.console.forms import DRAFT_COOKIE, DRAFT_SECONDS, LoginRequired
from gatehouse.web.deps import session_cookie_name
from gatehouse.web.errors import error_response, wants_json
from gatehouse.web.middleware import SecurityMiddleware
from gatehouse.web.templating import flash

log = logging.getLogger("gatehouse.web")
STATIC = Path(__file__).parent / "static"


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",))
        msg = err.get("msg", "is invalid")
        if err.get("type") == "extra_forbidden":
            msg = "is not a known field"
        parts.append(f"{loc or 'body'}: {msg}")
    return "; ".join(parts) or "The request is not valid."


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        response = RedirectResponse(exc.detail, status_code=303)
        rt: Runtime = request.app.state.runtime
        if exc.notice:
            flash(response, request, exc.notice, "info")
        if exc.clear_session:
            response.delete_cookie(session_cookie_name(rt), path="/")
        if exc.draft:
            response.set_cookie(
                DRAFT_COOKIE,
                exc.draft,
                max_age=DRAFT_SECONDS,
                path="/",
                httponly=True,
                secure=rt.settings.https,
                samesite="lax",
            )
        return response

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> Response:
        headers = None
        if isinstance(exc, TooManyAttempts):
            headers = {"Retry-After": str(exc.retry_after)}
        if exc.status == 401 and wants_json(request):
            headers = {**(headers or {}), "WWW-Authenticate": 'Bearer realm="gatehouse"'}
        return error_response(request, exc.status, exc.code, exc.detail, headers, exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        return error_response(request, 422, "invalid_request", _describe_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
        detail = exc.detail if isinstance(exc.detail, str) else "Request refused."
        if exc.status_code == 404 and detail == "Not Found":
            detail = "There is nothing at this address."
        return error_response(
            request,
            exc.status_code,
            codes.get(exc.status_code, "http_error"),
            detail,
            dict(exc.headers) if exc.headers else None,
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    async def _db_down(request: Request, exc: Exception) -> Response:
        log.error("database error: %s", type(exc).__name__)
        return error_response(
            request,
            503,
            "database_unavailable",
            "The database is not reachable right now; nothing was changed. Try again shortly.",
            {"Retry-After": "5"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(
            request,
            500,
            "internal_error",
            "Something went wrong on our side; it has been logged. Nothing was changed.",
        )


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """Build the ASGI app. ``runtime.start()`` (migrations, keys) runs at start-up, then the
    background services of :func:`gatehouse.lifecycle.background_services` until shutdown.

    ``app.state`` holds the runtime only: every service is reached through it (``web.deps``),
    none is installed on the app."""
    if runtime is None:
        runtime = Runtime(settings or load_settings())
    rt = runtime

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not rt.started:
            rt.start()
        with lifecycle.running(lifecycle.background_services(rt)):
            yield

    app = FastAPI(
        title="Gatehouse",
        version=__version__,
        description="Single sign-on for IT users through your Identity Provider (OIDC).",
        lifespan=lifespan,
        docs_url=None,  # web/api_docs.py: Swagger UI from the package, under our CSP
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.runtime = rt
    install_error_handlers(app)
    logredact.install()
    app.add_middleware(SecurityMiddleware, settings=rt.settings)
    api_docs.mount_assets(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    routes.include_all(app, rt)
    _document_errors(app)
    return app


def _document_errors(app: FastAPI) -> None:
    """Make /openapi.json describe our real error body instead of FastAPI's default 422 shape."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Error"] = {
            "type": "object",
            "required": ["error", "detail"],
            "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
        }
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        for path_item in schema.get("paths", {}).values():
            for op in path_item.values():
                if not isinstance(op, dict) or "responses" not in op:
                    continue
                responses = op["responses"]
                if "422" in responses:
                    responses["422"] = {"description": "Invalid request", **ref}
                responses.setdefault("4XX", {"description": "Client error", **ref})
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
