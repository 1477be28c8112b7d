"""API tokens: lifecycle, scopes, expiry, revocation, disabled owners, format, console page."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from gatehouse.domain import api_tokens
from gatehouse.runtime import Runtime
from gatehouse.store.models import ApiToken, AuditEvent
from helpers import ADMIN_PASSWORD, console_login, csrf_from

TOKEN_RE = re.compile(r"^gth_[0-9A-Za-z]{42}$")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def create(client: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    body.setdefault("name", "ci")
    response = client.post("/api/v1/tokens", json=body, headers=headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


@pytest.fixture
def user_headers(
    client: TestClient, make_user: Callable[..., int], admin_headers: dict[str, str]
) -> dict[str, str]:
    """A non-admin user signed in through the password API (OIDC is off)."""
    make_user("dana", password="dana-password-long-1")
    response = client.post(
        "/api/v1/auth/local", json={"username": "dana", "password": "dana-password-long-1"}
    )
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])


def test_token_secret_has_scannable_format_and_only_its_hash_is_stored(
    client: TestClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    created = create(client, admin_headers, scopes=["read"])
    secret = created["token"]
    assert TOKEN_RE.match(secret)
    assert created["prefix"] == secret[:12]
    assert api_tokens.is_well_formed(secret)
    with runtime.db.session() as db:
        row = db.get(ApiToken, created["id"])
        assert row is not None
        assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
        dump = repr([getattr(row, c.key) for c in ApiToken.__table__.columns])
        assert secret not in dump
    listed = client.get("/api/v1/tokens", headers=admin_headers).json()["items"]
    assert [t["id"] for t in listed] == [created["id"]]
    assert "token" not in listed[0]


def test_checksum_rejects_a_mistyped_token_without_lookup() -> None:
    secret = api_tokens.generate_secret()
    flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    assert api_tokens.is_well_formed(secret)
    assert not api_tokens.is_well_formed(flipped)
    assert not api_tokens.is_well_formed(secret[:-1])


def test_read_only_token_reads_but_is_refused_on_writes(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    token = create(client, admin_headers, scopes=["read"])["token"]
    me = client.get("/api/v1/me", headers=bearer(token))
    assert me.status_code == 200
    assert me.json()["auth_method"] == "api_token"
    write = client.post("/api/v1/users", json={"username": "newbie"}, headers=bearer(token))
    assert write.status_code == 403
    assert write.json()["error"] == "insufficient_scope"


def test_admin_routes_need_the_admin_scope(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    write_only = create(client, admin_headers, name="w", scopes=["read", "write"])["token"]
    refused = client.get("/api/v1/users", headers=bearer(write_only))
    assert refused.status_code == 403
    assert refused.json()["error"] == "insufficient_scope"
    admin = create(client, admin_headers, name="a", scopes=["write", "admin"])
    assert admin["scopes"] == ["read", "write", "admin"]
    assert client.get("/api/v1/users", headers=bearer(admin["token"])).status_code == 200
    made = client.post("/api/v1/users", json={"username": "eve"}, headers=bearer(admin["token"]))
    assert made.status_code == 201, made.text


def test_non_admin_cannot_grant_admin_scope(
    client: TestClient, user_headers: dict[str, str]
) -> None:
    response = client.post(
        "/api/v1/tokens", json={"name": "x", "scopes": ["admin"]}, headers=user_headers
    )
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"


def test_token_cannot_mint_tokens(client: TestClient, admin_headers: dict[str, str]) -> None:
    token = create(client, admin_headers, scopes=["write", "admin"])["token"]
    response = client.post("/api/v1/tokens", json={"name": "child"}, headers=bearer(token))
    assert response.status_code == 403
    assert response.json()["error"] == "token_cannot_create_tokens"


@pytest.mark.parametrize(
    "body",
    [
        {"expires_in_days": 366},
        {"expires_at": (datetime.now(UTC) + timedelta(days=400)).isoformat()},
        {"expires_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat()},
        {"scopes": ["root"]},
        {"name": ""},
    ],
)
def test_invalid_token_requests_are_refused(
    client: TestClient, admin_headers: dict[str, str], body: dict[str, Any]
) -> None:
    response = client.post("/api/v1/tokens", json={"name": "t", **body}, headers=admin_headers)
    assert response.status_code in (400, 422), response.text
    assert "error" in response.json()


def test_expired_token_is_refused(
    client: TestClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    created = create(client, admin_headers)
    with runtime.db.session() as db:
        row = db.get(ApiToken, created["id"])
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    client.app.state.runtime.api_tokens.forget()  # type: ignore[attr-defined]
    response = client.get("/api/v1/me", headers=bearer(created["token"]))
    assert response.status_code == 401
    assert response.json()["error"] == "token_expired"


def test_revoked_token_is_refused_and_revocation_is_audited(
    client: TestClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    created = create(client, admin_headers)
    assert client.get("/api/v1/me", headers=bearer(created["token"])).status_code == 200
    revoked = client.delete(f"/api/v1/tokens/{created['id']}", headers=admin_headers)
    assert revoked.status_code == 204
    response = client.get("/api/v1/me", headers=bearer(created["token"]))
    assert response.status_code == 401
    assert response.json()["error"] == "token_revoked"
    with runtime.db.session() as db:
        actions = set(db.scalars(select(AuditEvent.action)))
    assert {"api_token.created", "api_token.revoked"} <= actions


def test_revocation_on_another_replica_takes_effect_within_the_cache_ttl(
    client: TestClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    created = create(client, admin_headers)
    verifier = client.app.state.runtime.api_tokens  # type: ignore[attr-defined]
    assert client.get("/api/v1/me", headers=bearer(created["token"])).status_code == 200
    with runtime.db.session() as db:  # another replica revokes: our cache is not told
        row = db.get(ApiToken, created["id"])
        assert row is not None
        row.revoked_at = datetime.now(UTC)
    verifier.ttl = 0.0  # the TTL (3 s) has passed
    assert client.get("/api/v1/me", headers=bearer(created["token"])).status_code == 401


def test_disabled_user_tokens_stop_at_once(
    client: TestClient, admin_headers: dict[str, str], user_headers: dict[str, str]
) -> None:
    token = create(client, user_headers, scopes=["read", "write"])["token"]
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200
    me = client.get("/api/v1/me", headers=user_headers).json()
    disabled = client.patch(
        f"/api/v1/users/{me['id']}", json={"status": "disabled"}, headers=admin_headers
    )
    assert disabled.status_code == 200, disabled.text
    response = client.get("/api/v1/me", headers=bearer(token))
    assert response.status_code == 401
    assert response.json()["error"] == "account_disabled"


def test_last_use_is_recorded_at_most_once_a_minute(
    client: TestClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    created = create(client, admin_headers)
    for _ in range(3):
        assert client.get("/api/v1/me", headers=bearer(created["token"])).status_code == 200
    with runtime.db.session() as db:
        row = db.get(ApiToken, created["id"])
        assert row is not None and row.last_used_at is not None
        first = row.last_used_at
    verifier = client.app.state.runtime.api_tokens  # type: ignore[attr-defined]
    assert list(verifier._touched.values()) == [pytest.approx(first.timestamp(), abs=2)]


def test_users_see_only_their_tokens_and_admins_see_all(
    client: TestClient, admin_headers: dict[str, str], user_headers: dict[str, str]
) -> None:
    mine = create(client, user_headers, name="mine")
    theirs = create(client, admin_headers, name="theirs")
    own = client.get("/api/v1/tokens", headers=user_headers).json()["items"]
    assert [t["id"] for t in own] == [mine["id"]]
    assert client.get("/api/v1/tokens?all=true", headers=user_headers).status_code == 403
    assert client.delete(f"/api/v1/tokens/{theirs['id']}", headers=user_headers).status_code == 404
    everyone = client.get("/api/v1/tokens?all=true", headers=admin_headers).json()["items"]
    assert {t["id"] for t in everyone} == {mine["id"], theirs["id"]}


def test_console_page_shows_the_secret_once_and_revokes(
    client: TestClient, local_admin: int
) -> None:
    assert console_login(client).status_code == 303
    page = client.get("/tokens")
    assert page.status_code == 200
    created = client.post(
        "/tokens",
        data={
            "csrf_token": csrf_from(page.text),
            "name": "laptop",
            "days": "7",
            "scope_write": "on",
        },
    )
    assert created.status_code == 201
    secret = re.search(r'id="secret"[^>]*value="(gth_[0-9A-Za-z]+)"', created.text)
    assert secret, created.text
    assert created.headers["cache-control"] == "no-store"
    again = client.get("/tokens")
    assert secret.group(1) not in again.text
    assert "laptop" in again.text
    me = client.get("/api/v1/me", headers=bearer(secret.group(1)))
    assert me.status_code == 200
    token_id = re.search(r'action="/tokens/(\d+)/revoke"', again.text)
    assert token_id
    revoked = client.post(
        f"/tokens/{token_id.group(1)}/revoke",
        data={"csrf_token": csrf_from(again.text)},
        follow_redirects=False,
    )
    assert revoked.status_code == 303
    assert client.get("/api/v1/me", headers=bearer(secret.group(1))).status_code == 401


def test_admin_password_is_never_needed_for_automation(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    """Sanity: the fixture password works only through /auth/local, never as a bearer."""
    response = client.get("/api/v1/me", headers=bearer(ADMIN_PASSWORD))
    assert response.status_code == 401
