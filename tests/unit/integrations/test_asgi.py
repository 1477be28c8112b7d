"""GatehouseAuthMiddleware without a reachable Gatehouse, and its header parsing."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from gatehouse.integrations.asgi import GatehouseAuthMiddleware, GatehouseUser
from idp.fixture import free_port


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


def protected(**kwargs: object) -> TestClient:
    app = Starlette(routes=[Route("/{path:path}", hello)])
    unreachable = f"http://127.0.0.1:{free_port()}"
    wrapped = GatehouseAuthMiddleware(app, gatehouse_url=unreachable, **kwargs)  # type: ignore[arg-type]
    return TestClient(wrapped)


def test_middleware_fails_closed_with_503_when_gatehouse_is_unreachable() -> None:
    response = protected().get("/secret", headers={"Cookie": "gatehouse_session=abc"})
    assert response.status_code == 503
    assert response.json()["error"] == "unavailable"
    assert response.text != "hello"


def test_middleware_lets_public_paths_through_without_asking_gatehouse() -> None:
    assert protected(public_paths=["/healthz"]).get("/healthz").text == "hello"


def test_gatehouse_user_decodes_percent_encoded_identity_headers() -> None:
    user = GatehouseUser.from_headers(
        httpx.Headers(
            {
                "x-gatehouse-user-id": "7",
                "x-gatehouse-user": "dana",
                "x-gatehouse-email": "dana@example.com",
                "x-gatehouse-name": "Dana %C3%9Cnal%2C ops",
                "x-gatehouse-roles": "Developer,Viewer@prod",
            }
        )
    )
    assert user.display_name == "Dana Ünal, ops"
    assert user.roles == ("Developer", "Viewer@prod")
    assert user.has_role("Developer") and user.has_role("Developer@prod")
    assert user.has_role("Viewer@prod") and not user.has_role("Viewer")
