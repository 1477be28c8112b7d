"""The IdP settings model at its two doors: the JSON API and the console form."""

from __future__ import annotations

import html
from typing import Any

import pytest
from fastapi.testclient import TestClient

from helpers import console_login, csrf_from

BODY = {
    "display_name": "Acme IdP",
    "issuer": "https://idp.example.com",
    "client_id": "web",
    "client_secret": "web-secret",
}


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """Validation does not touch the database's dialect: SQLite only."""
    return sqlite_url


@pytest.mark.parametrize(
    "changes",
    [
        {"surprise": 1},
        {"clock_skew_seconds": 601},
        {"display_name": "x" * 101},
        {"scopes": [f"s{i}" for i in range(51)]},
        {"group_role_rules": [{"group": "devs", "role": "Viewer", "colour": "red"}]},
    ],
)
def test_put_refuses_a_body_of_the_wrong_shape_with_422(
    client: TestClient, admin_headers: dict[str, str], changes: dict[str, Any]
) -> None:
    response = client.put("/api/v1/idp", json={**BODY, **changes}, headers=admin_headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_request" and response.json()["detail"]


@pytest.mark.parametrize(
    ("changes", "field", "detail"),
    [
        ({"display_name": "   "}, "display_name", "display_name is required."),
        ({"scopes": ["openid", "a b"]}, "scopes", "Each scope is one word"),
        ({"groups_claim": "a b"}, "groups_claim", "groups_claim must be a claim name."),
        (
            {"group_role_rules": [{"group": "devs", "role": "Boss"}]},
            "group_role_rules",
            "Unknown role 'Boss'",
        ),
        ({"ca_bundle_pem": "nope"}, "ca_bundle_pem", "The CA bundle is not a valid PEM"),
    ],
)
def test_put_refuses_a_rule_with_400_naming_the_field(
    client: TestClient,
    admin_headers: dict[str, str],
    changes: dict[str, Any],
    field: str,
    detail: str,
) -> None:
    response = client.put("/api/v1/idp", json={**BODY, **changes}, headers=admin_headers)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_idp_config" and body["field"] == field
    assert body["detail"].startswith(detail)


def test_get_answers_in_the_same_shape_before_and_after_the_first_save(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    empty = client.get("/api/v1/idp", headers=admin_headers).json()
    assert empty["version"] is None and empty["issuer"] is None and empty["client_id"] is None
    assert empty["scopes"] == ["openid", "profile", "email"]
    assert empty["clock_skew_seconds"] == 60 and empty["client_secret_set"] is False
    rules = [{"group": "devs", "role": "developer"}]
    saved = client.put(
        "/api/v1/idp",
        json={**BODY, "scopes": ["email"], "group_role_rules": rules},
        headers=admin_headers,
    )
    assert saved.status_code == 200, saved.text
    got = client.get("/api/v1/idp", headers=admin_headers).json()
    assert got == saved.json()
    assert got["version"] == 1 and got["scopes"] == ["openid", "email"]
    assert got["group_role_rules"] == [{"group": "devs", "role": "Developer", "environment": None}]
    assert set(empty) == set(got) and "client_secret" not in got


def test_console_form_shows_a_rule_error_inline_and_keeps_the_input(
    client: TestClient, local_admin: int
) -> None:
    assert console_login(client, return_to="/settings/idp").status_code == 303
    page = client.get("/settings/idp")
    form = {
        "csrf_token": csrf_from(page.text),
        "version": "0",
        "display_name": "Acme IdP",
        "issuer": "https://idp.example.com",
        "client_id": "web",
        "client_secret": "web-secret",
        "scopes": "openid profile",
        "group_role_rules": "devs = Boss",
        "clock_skew_seconds": "",
    }
    response = client.post("/settings/idp", data=form, follow_redirects=False)
    assert response.status_code == 400
    text = html.unescape(response.text)
    assert "id=\"idp-error\">Unknown role 'Boss' in a group rule" in text
    assert 'value="Acme IdP"' in text and "devs = Boss" in text
    assert (
        'id="clock_skew_seconds" name="clock_skew_seconds" inputmode="numeric" value="60"' in text
    )
    form["group_role_rules"] = "devs = developer"
    saved = client.post("/settings/idp", data=form, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    assert "devs = Developer" in client.get("/settings/idp").text
