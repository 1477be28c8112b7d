"""Helpers for the OIDC integration tests: configure Gatehouse against the real test IdP and run
the browser side of the web flow.

``configure_idp`` drives the public API (PUT, test, activate) exactly as an administrator would;
``sign_in`` runs Gatehouse's start URL, the IdP's login form (``provider.login``), then the
callback on the TestClient (which keeps the cookies).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from idp.fixture import WEB_CLIENT_ID, WEB_CLIENT_SECRET, OpenIDProvider

ADMIN_PASSWORD = "break-glass-password-1"


def idp_body(provider: OpenIDProvider, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "display_name": "Test IdP",
        "issuer": provider.issuer,
        "client_id": WEB_CLIENT_ID,
        "client_secret": WEB_CLIENT_SECRET,
        "native_client_id": "gatehouse-cli",
        "scopes": ["openid", "profile", "email"],
    }
    body.update(overrides)
    return body


def configure_idp(
    client: TestClient,
    headers: dict[str, str],
    provider: OpenIDProvider,
    *,
    activate: bool = True,
    **overrides: Any,
) -> dict[str, Any]:
    """PUT the configuration, test it (must be green), and activate it."""
    current = client.get("/api/v1/idp", headers=headers)
    assert current.status_code == 200, current.text
    put = client.put(
        "/api/v1/idp",
        json=idp_body(provider, **overrides),
        headers={**headers, "If-Match": current.headers["ETag"]},
    )
    assert put.status_code == 200, put.text
    test = client.post("/api/v1/idp/test", headers=headers)
    assert test.status_code == 200 and test.json()["ok"], test.text
    if activate:
        act = client.post("/api/v1/idp/activate", headers=headers)
        assert act.status_code == 200, act.text
    result: dict[str, Any] = put.json()
    return result


def start_location(client: TestClient, return_to: str = "/", **params: str) -> str:
    response = client.get(
        "/auth/oidc/start", params={"return_to": return_to, **params}, follow_redirects=False
    )
    assert response.status_code == 302, response.text
    return response.headers["location"]


def callback(client: TestClient, location: str) -> httpx.Response:
    """Request the IdP's redirect back (``http://127.0.0.1:8000/auth/oidc/callback?...``)."""
    parts = urlsplit(location)
    return client.get(f"{parts.path}?{parts.query}", follow_redirects=False)


def sign_in(
    client: TestClient,
    provider: OpenIDProvider,
    username: str,
    *,
    return_to: str = "/",
    browser: httpx.Client | None = None,
) -> httpx.Response:
    """The whole web flow for ``username``; returns Gatehouse's answer to the callback."""
    location = provider.login(
        start_location(client, return_to),
        username,
        f"{username}-password",
        client=browser or provider.new_browser(),
    )
    return callback(client, location)


def me(client: TestClient) -> httpx.Response:
    return client.get("/api/v1/me")


@pytest.fixture(name="database_url")
def sqlite_database_url(sqlite_url: str) -> str:
    """Import into a module to run it on SQLite only (its subject is the IdP, not the DB)."""
    return sqlite_url
