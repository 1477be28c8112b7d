"""Registered apps: API, console page, the unified login URL, and redirects after sign-in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from gatehouse.runtime import Runtime
from gatehouse.store.models import AuditEvent
from helpers import console_login, csrf_from

APP = {"name": "Wiki", "allowed_origins": ["https://wiki.example.com"]}


def register(client: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = client.post("/api/v1/apps", json={**APP, **body}, headers=headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def login_url(client: TestClient, return_to: str) -> Any:
    return client.get("/api/v1/users/unified-login-url", params={"return_to": return_to})


def test_admin_registers_lists_updates_and_deletes_an_app_with_audit(
    client: TestClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    created = register(
        client,
        admin_headers,
        allowed_origins=["HTTPS://Wiki.Example.com:443/", "https://bücher.example"],
    )
    assert created["allowed_origins"] == [
        "https://wiki.example.com",
        "https://xn--bcher-kva.example",
    ]
    listed = client.get("/api/v1/apps", headers=admin_headers).json()
    assert [a["name"] for a in listed] == ["Wiki"]
    patched = client.patch(
        f"/api/v1/apps/{created['id']}",
        json={"allowed_origins": ["https://wiki2.example.com"]},
        headers=admin_headers,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["allowed_origins"] == ["https://wiki2.example.com"]
    assert (
        client.get(f"/api/v1/apps/{created['id']}", headers=admin_headers).json()["name"] == "Wiki"
    )
    assert client.delete(f"/api/v1/apps/{created['id']}", headers=admin_headers).status_code == 204
    assert client.get(f"/api/v1/apps/{created['id']}", headers=admin_headers).status_code == 404
    with runtime.db.session() as db:
        actions = list(db.scalars(select(AuditEvent.action).where(AuditEvent.target_type == "app")))
    assert actions == ["app.registered", "app.updated", "app.deleted"]


@pytest.mark.parametrize(
    "origins",
    [
        ["https://*.example.com"],
        ["http://wiki.example.com"],
        ["https://user@wiki.example.com"],
        ["https://wiki.example.com."],
        ["https://wiki.example.com?next=/"],
        [],
    ],
)
def test_register_app_refuses_non_exact_origins(
    client: TestClient, admin_headers: dict[str, str], origins: list[str]
) -> None:
    response = client.post(
        "/api/v1/apps", json={"name": "Bad", "allowed_origins": origins}, headers=admin_headers
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_origin"


def test_register_app_refuses_a_duplicate_name(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    register(client, admin_headers)
    response = client.post("/api/v1/apps", json=APP, headers=admin_headers)
    assert response.status_code == 409
    assert response.json()["error"] == "app_name_taken"


def test_apps_api_is_for_administrators_only(
    client: TestClient, admin_headers: dict[str, str], make_user: Callable[..., int]
) -> None:
    make_user("dana", password="dana-password-long-1")
    token = client.post(
        "/api/v1/auth/local", json={"username": "dana", "password": "dana-password-long-1"}
    ).json()["access_token"]
    dana = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/apps", headers=dana).status_code == 403
    assert client.post("/api/v1/apps", json=APP, headers=dana).status_code == 403
    assert client.get("/api/v1/apps").status_code == 401


def test_unified_login_url_is_public_and_uses_local_sign_in_while_oidc_is_off(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    register(client, admin_headers)
    response = login_url(client, "https://wiki.example.com/page?x=1")
    assert response.status_code == 200, response.text
    url = urlsplit(response.json()["url"])
    assert (url.scheme, url.netloc, url.path) == ("http", "127.0.0.1:8000", "/login")
    assert parse_qs(url.query) == {"return_to": ["https://wiki.example.com/page?x=1"]}


def test_unified_login_url_runs_the_idp_flow_while_oidc_is_active(
    client: TestClient, admin_headers: dict[str, str], set_oidc_active: Callable[[bool], None]
) -> None:
    register(client, admin_headers)
    set_oidc_active(True)
    url = urlsplit(login_url(client, "https://wiki.example.com/").json()["url"])
    assert url.path == "/auth/oidc/start"
    assert parse_qs(url.query) == {"return_to": ["https://wiki.example.com/"]}


def test_unified_login_url_accepts_a_plain_gatehouse_path(client: TestClient) -> None:
    url = login_url(client, "/users?q=a").json()["url"]
    assert url == "http://127.0.0.1:8000/login?return_to=%2Fusers%3Fq%3Da"


@pytest.mark.parametrize(
    "value",
    [
        "https://evil.example/",
        "//evil.example",
        "https://wiki.example.com@evil.example/",
        "https://wiki.example.com:8443/",
        "http://wiki.example.com/",
        "javascript:alert(1)",
        "/%2F%2Fevil.example",
        "",
    ],
)
def test_unified_login_url_refuses_unregistered_targets(
    client: TestClient, admin_headers: dict[str, str], value: str
) -> None:
    register(client, admin_headers)
    response = login_url(client, value)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_return_to"
    assert body["detail"]


def test_unified_login_url_stops_working_once_the_app_is_deleted(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    app = register(client, admin_headers)
    assert login_url(client, "https://wiki.example.com/").status_code == 200
    client.delete(f"/api/v1/apps/{app['id']}", headers=admin_headers)
    assert login_url(client, "https://wiki.example.com/").status_code == 400


def test_local_sign_in_returns_to_a_registered_app_and_never_elsewhere(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    register(client, admin_headers)
    client.cookies.clear()
    ok = console_login(client, return_to="https://wiki.example.com/after")
    assert ok.status_code == 303
    assert ok.headers["location"] == "https://wiki.example.com/after"
    client.cookies.clear()
    evil = console_login(client, return_to="https://evil.example/after")
    assert evil.headers["location"] == "/"
    # Already signed in: /login forwards at once, with the same rule.
    assert (
        client.get(
            "/login", params={"return_to": "https://wiki.example.com/x"}, follow_redirects=False
        ).headers["location"]
        == "https://wiki.example.com/x"
    )
    assert (
        client.get(
            "/login", params={"return_to": "//evil.example"}, follow_redirects=False
        ).headers["location"]
        == "/"
    )


def test_console_apps_page_shows_empty_state_registers_and_deletes_after_confirmation(
    client: TestClient, local_admin: int
) -> None:
    console_login(client)
    page = client.get("/apps")
    assert page.status_code == 200
    assert 'id="apps-empty"' in page.text
    bad = client.post(
        "/apps",
        data={
            "name": "Wiki",
            "allowed_origins": "https://*.example.com",
            "csrf_token": csrf_from(page.text),
        },
    )
    assert bad.status_code == 400
    assert 'id="err-origins"' in bad.text
    created = client.post(
        "/apps",
        data={
            "name": "Wiki",
            "allowed_origins": "https://wiki.example.com\nhttps://wiki.example.org\n",
            "csrf_token": csrf_from(page.text),
        },
        follow_redirects=False,
    )
    assert created.status_code == 303
    listing = client.get("/apps").text
    assert "https://wiki.example.org" in listing and 'id="apps-table"' in listing
    app_id = client.get("/api/v1/apps").json()[0]["id"]
    confirm = client.get(f"/apps/{app_id}/delete")
    assert "Delete app Wiki?" in confirm.text
    deleted = client.post(
        f"/apps/{app_id}/delete",
        data={"csrf_token": csrf_from(confirm.text)},
        follow_redirects=False,
    )
    assert deleted.status_code == 303
    assert 'id="apps-empty"' in client.get("/apps").text


def test_console_apps_page_refuses_a_post_without_csrf_token(
    client: TestClient, local_admin: int
) -> None:
    console_login(client)
    response = client.post(
        "/apps", data={"name": "Wiki", "allowed_origins": "https://w.example.com"}
    )
    assert response.status_code == 403
    assert client.get("/api/v1/apps").json() == []
