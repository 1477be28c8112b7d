"""GET /auth/verify: forward auth for reverse proxies."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from gatehouse.domain.users import RoleGrant
from helpers import console_login

FORWARDED = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "wiki.example.com",
    "X-Forwarded-Uri": "/docs/page?x=1&y=2",
}


@pytest.fixture
def wiki(client: TestClient, admin_headers: dict[str, str]) -> None:
    response = client.post(
        "/api/v1/apps",
        json={"name": "Wiki", "allowed_origins": ["https://wiki.example.com"]},
        headers=admin_headers,
    )
    assert response.status_code == 201, response.text


def bearer_for(client: TestClient, username: str, password: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/local", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_verify_answers_identity_headers_for_a_session_cookie(
    client: TestClient, local_admin: int
) -> None:
    console_login(client)
    response = client.get("/auth/verify")
    assert response.status_code == 200
    assert response.headers["x-gatehouse-user"] == "root"
    assert response.headers["x-gatehouse-user-id"] == str(local_admin)
    assert response.headers["x-gatehouse-roles"] == "Administrator"
    assert response.headers["x-gatehouse-auth-method"] == "session"
    assert response.headers["cache-control"] == "no-store"
    assert response.content == b""


def test_verify_answers_identity_headers_for_a_bearer_token(
    client: TestClient, local_admin: int, make_user: Callable[..., int]
) -> None:
    make_user(
        "dana",
        password="dana-password-long-1",
        email="dana@example.com",
        display_name="Dana Ünal, ops",
        roles=[RoleGrant("Developer"), RoleGrant("Viewer", None)],
    )
    response = client.get(
        "/auth/verify", headers=bearer_for(client, "dana", "dana-password-long-1")
    )
    assert response.status_code == 200
    assert response.headers["x-gatehouse-user"] == "dana"
    assert response.headers["x-gatehouse-email"] == "dana@example.com"
    # Non-ASCII and commas are percent-encoded: nothing can split or smuggle a header.
    assert response.headers["x-gatehouse-name"] == "Dana%20%C3%9Cnal%2C ops".replace("%20", " ")
    assert sorted(response.headers["x-gatehouse-roles"].split(",")) == ["Developer", "Viewer"]
    assert response.headers["x-gatehouse-auth-method"] == "bearer"


def test_verify_accepts_an_api_token(client: TestClient, admin_headers: dict[str, str]) -> None:
    created = client.post(
        "/api/v1/tokens", json={"name": "proxy-check", "scopes": ["read"]}, headers=admin_headers
    )
    assert created.status_code == 201, created.text
    response = client.get(
        "/auth/verify", headers={"Authorization": f"Bearer {created.json()['token']}"}
    )
    assert response.status_code == 200
    assert response.headers["x-gatehouse-user"] == "root"
    assert response.headers["x-gatehouse-auth-method"] == "api_token"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Basic cm9vdDpwdw=="},
        {"Cookie": "gatehouse_session=forged"},
    ],
)
def test_verify_refuses_without_a_valid_credential(
    client: TestClient, headers: dict[str, str]
) -> None:
    response = client.get("/auth/verify", headers=headers)
    assert response.status_code == 401
    assert response.headers["cache-control"] == "no-store"
    assert "x-gatehouse-user" not in response.headers
    assert response.json()["error"] == "unauthenticated"


def test_verify_refuses_a_revoked_session(client: TestClient, local_admin: int) -> None:
    console_login(client)
    assert client.get("/auth/verify").status_code == 200
    page = client.get("/account")
    from helpers import csrf_from

    client.post("/logout", data={"csrf_token": csrf_from(page.text)}, follow_redirects=False)
    assert client.get("/auth/verify").status_code == 401


def test_verify_answers_403_when_the_required_role_is_missing(
    client: TestClient, local_admin: int, make_user: Callable[..., int]
) -> None:
    make_user("vic", password="vic-password-long-1", roles=[RoleGrant("Viewer")])
    vic = bearer_for(client, "vic", "vic-password-long-1")
    assert client.get("/auth/verify?role=Viewer", headers=vic).status_code == 200
    assert client.get("/auth/verify?role=Viewer@prod", headers=vic).status_code == 200
    denied = client.get("/auth/verify?role=Developer", headers=vic)
    assert denied.status_code == 403
    assert denied.json()["error"] == "missing_role"
    assert "x-gatehouse-user" not in denied.headers


def test_verify_is_answered_for_any_method_the_proxy_forwards(
    client: TestClient, local_admin: int
) -> None:
    console_login(client)
    for method in ("HEAD", "POST", "PUT", "DELETE"):
        assert client.request(method, "/auth/verify").status_code == 200, method


def test_verify_redirect_mode_sends_browser_to_unified_login_url(
    client: TestClient, wiki: None, set_oidc_active: Callable[[bool], None]
) -> None:
    client.cookies.clear()
    response = client.get("/auth/verify?redirect=1", headers=FORWARDED, follow_redirects=False)
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert location.path == "/login"
    assert parse_qs(location.query) == {"return_to": ["https://wiki.example.com/docs/page?x=1&y=2"]}
    set_oidc_active(True)
    response = client.get("/auth/verify?redirect=1", headers=FORWARDED, follow_redirects=False)
    assert urlsplit(response.headers["location"]).path == "/auth/oidc/start"


@pytest.mark.parametrize(
    "override",
    [
        {"X-Forwarded-Host": "evil.example"},
        {"X-Forwarded-Host": "wiki.example.com@evil.example"},
        {"X-Forwarded-Host": "wiki.example.com:8443"},
        {"X-Forwarded-Host": "wiki.example.com, evil.example"},
        {"X-Forwarded-Proto": "http"},
        {"X-Forwarded-Proto": "javascript"},
        {"X-Forwarded-Host": "wiki.example.com."},
        {"X-Forwarded-Host": "WIKI.example.com"},
        {"X-Forwarded-Uri": "evil"},
        {"X-Forwarded-Host": ""},
    ],
)
def test_verify_redirect_mode_never_redirects_to_an_unregistered_url(
    client: TestClient, wiki: None, override: dict[str, str]
) -> None:
    client.cookies.clear()
    headers = {**FORWARDED, **override}
    response = client.get("/auth/verify?redirect=1", headers=headers, follow_redirects=False)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.json()["error"] == "invalid_return_to"


def test_verify_redirect_mode_answers_401_to_api_clients(client: TestClient, wiki: None) -> None:
    response = client.get(
        "/auth/verify?redirect=1",
        headers={**FORWARDED, "Authorization": "Bearer expired"},
        follow_redirects=False,
    )
    assert response.status_code == 401


def test_unified_login_url_route_is_not_captured_by_the_users_route(client: TestClient) -> None:
    response = client.get("/api/v1/users/unified-login-url", params={"return_to": "/"})
    assert response.status_code == 200
    assert response.json() == {"url": "http://127.0.0.1:8000/login?return_to=%2F"}
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/v1/users/unified-login-url" in paths
    assert "/auth/verify" in paths
