"""Error rendering: the one ``{"error", "detail"}`` body (or the error page) for every failure.

Its own module so that middleware, routes and adapters can answer with an error without
importing the app (``web.app`` installs the exception handlers that call it).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gatehouse.metrics import ERRORS
from gatehouse.web.templating import render_error


def wants_json(request: Request) -> bool:
    """API, forward-auth and back-channel callers get JSON; browsers get the error page."""
    path = request.url.path
    if path.startswith("/api/") or path.startswith("/auth/verify"):
        return True
    if path.startswith("/auth/oidc/backchannel-logout"):
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def error_response(
    request: Request,
    status: int,
    code: str,
    detail: str,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    """The error as JSON ``{"error": code, "detail": sentence}`` or as the error page; counted."""
    ERRORS.labels(status=str(status), error=code).inc()
    if wants_json(request):
        return JSONResponse(
            {**(extra or {}), "error": code, "detail": detail},
            status_code=status,
            headers={"Cache-Control": "no-store", **(headers or {})},
        )
    return render_error(request, status, code, detail, headers=headers)
