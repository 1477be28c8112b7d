"""``/api/docs``: Swagger UI for ``/openapi.json``, served from the installed package.

The Swagger UI assets come from the ``fastapi-offline`` distribution (a maintained package that
ships the current ``swagger-ui-dist`` build), mounted under ``/static/swagger-ui/``; nothing is
loaded from a CDN, so the page works on networks without internet access. FastAPI's own docs
page starts Swagger UI with an inline script, which Gatehouse's CSP (no ``'unsafe-inline'``)
blocks: ours starts it from ``/static/api-docs.js``, so the page runs under the same policy as
every console page.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

from gatehouse.web.templating import TEMPLATES

SWAGGER_ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/static/swagger-ui"
router = APIRouter(include_in_schema=False)


def mount_assets(app: FastAPI) -> None:
    """Serve the package's Swagger UI build (before the ``/static`` mount, which would shadow
    it); ``/static/`` responses are cacheable, unlike everything else."""
    app.mount(ASSETS_URL, StaticFiles(directory=SWAGGER_ASSETS), name="swagger-ui")


@router.get("/api/docs")
def api_docs(request: Request) -> Response:
    return TEMPLATES.TemplateResponse(
        request,
        "api_docs.html",
        {"assets": ASSETS_URL, "openapi_url": request.app.openapi_url},
    )
