"""``/api/docs``: Swagger UI from the installed package, no CDN, no inline script."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    return sqlite_url


def test_api_docs_page_loads_swagger_ui_from_gatehouse_under_the_strict_csp(
    client: TestClient,
) -> None:
    page = client.get("/api/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert "/static/swagger-ui/swagger-ui-bundle.js" in sources
    assert "/static/swagger-ui/swagger-ui.css" in sources
    assert "/static/api-docs.js" in sources
    assert all(s.startswith("/") for s in sources), sources  # nothing from another origin
    # every <script> has a src: nothing inline for the CSP to block
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page.text) == []
    assert 'data-openapi-url="/openapi.json"' in page.text


def test_swagger_ui_assets_are_served_and_cacheable(client: TestClient) -> None:
    bundle = client.get("/static/swagger-ui/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and "SwaggerUIBundle" in bundle.text
    assert "no-store" not in bundle.headers.get("cache-control", "")
    style = client.get("/static/swagger-ui/swagger-ui.css")
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    init = client.get("/static/api-docs.js")
    assert init.status_code == 200 and "SwaggerUIBundle(" in init.text
    assert client.get("/openapi.json").json()["info"]["title"] == "Gatehouse"
