"""Tools and IdPs that keep claims out of tokens, against the real test IdP:

* the exchange asks UserInfo (with the tool's IdP access token) when the ID token lacks the
  claim users are matched by;
* ``POST /api/v1/auth/token/renew`` continues a tool's sign-in when the IdP's refresh brought
  no new ID token (OIDC Core 12.2), and refuses everything that does not prove both halves.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from gatehouse.runtime import Runtime
from gatehouse.store.models import AuditEvent, User
from idp.fixture import CLI_CLIENT_ID, OpenIDProvider
from idp_helpers import id_token_for, save_idp_config


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """The subject is the exchange, not the database: SQLite only."""
    return sqlite_url


def exchange(client: TestClient, tokens: dict[str, Any], **extra: str) -> httpx.Response:
    return client.post("/api/v1/auth/token", json={"id_token": tokens["id_token"], **extra})


def renew(client: TestClient, previous: str, idp_access_token: str) -> httpx.Response:
    return client.post(
        "/api/v1/auth/token/renew",
        json={"previous_token": previous, "idp_access_token": idp_access_token},
    )


def refreshed(provider: OpenIDProvider, tokens: dict[str, Any]) -> dict[str, Any]:
    """The tool's refresh grant at the IdP."""
    response = httpx.post(
        provider.endpoint("token"),
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": CLI_CLIENT_ID,
        },
        trust_env=False,
    )
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


def signed_in(client: TestClient, provider: OpenIDProvider) -> tuple[dict[str, Any], str]:
    """alice's IdP tokens and the Gatehouse token they were exchanged for."""
    tokens = id_token_for(provider, "alice")
    response = exchange(client, tokens, idp_access_token=tokens["access_token"])
    assert response.status_code == 200, response.text
    return tokens, str(response.json()["access_token"])


def last_audit(runtime: Runtime, action: str) -> AuditEvent:
    with runtime.db.session() as db:
        row = db.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id.desc())
        ).first()
        assert row is not None
        db.expunge(row)
        return row


def test_exchange_asks_userinfo_when_the_id_token_lacks_the_matching_claim(
    client: TestClient,
    runtime: Runtime,
    alice: int,
    idp_factory: Callable[..., OpenIDProvider],
) -> None:
    provider = idp_factory(claims_in_id_token=False)
    save_idp_config(runtime, provider)
    without = exchange(client, id_token_for(provider, "alice"))
    assert without.status_code == 403
    assert without.json()["error"] == "missing_claim"
    tokens = id_token_for(provider, "alice")
    with_userinfo = exchange(client, tokens, idp_access_token=tokens["access_token"])
    assert with_userinfo.status_code == 200, with_userinfo.text
    claims = runtime.tokens.verify(with_userinfo.json()["access_token"])
    assert claims["sub"] == str(alice)
    with runtime.db.session() as db:
        user = db.get(User, alice)
        assert user is not None and user.idp_subject == "alice-sub"


def test_exchange_refuses_userinfo_that_names_another_subject(
    client: TestClient,
    runtime: Runtime,
    alice: int,
    idp_factory: Callable[..., OpenIDProvider],
) -> None:
    provider = idp_factory(claims_in_id_token=False)
    save_idp_config(runtime, provider)
    alices = id_token_for(provider, "alice")
    bobs = id_token_for(provider, "bob")
    response = exchange(client, alices, idp_access_token=bobs["access_token"])
    assert response.status_code == 401
    assert response.json()["error"] == "userinfo_sub_mismatch"


def test_renewal_continues_a_sign_in_when_the_refresh_brings_no_id_token(
    client: TestClient,
    runtime: Runtime,
    alice: int,
    idp_factory: Callable[..., OpenIDProvider],
) -> None:
    provider = idp_factory(id_token_on_refresh=False)
    save_idp_config(runtime, provider)
    tokens, first = signed_in(client, provider)
    answer = refreshed(provider, tokens)
    assert "id_token" not in answer
    response = renew(client, first, answer["access_token"])
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    second = response.json()["access_token"]
    old, new = runtime.tokens.verify(first), runtime.tokens.verify(second)
    assert new["sub"] == str(alice) and new["jti"] != old["jti"]
    assert new["auth_time"] == old["auth_time"], "a renewal does not extend the sign-in"
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {second}"})
    assert me.status_code == 200 and me.json()["username"] == "alice"
    row = last_audit(runtime, "token.renew")
    assert row.outcome == "success" and row.actor == "alice"


def test_renewal_accepts_an_expired_token_of_a_recent_sign_in(
    client: TestClient, runtime: Runtime, active_idp: OpenIDProvider, alice: int
) -> None:
    tokens, _ = signed_in(client, active_idp)
    now = int(time.time())
    expired, _ = runtime.tokens.issue(
        str(alice),
        {
            "method": "oidc",
            "client_id": CLI_CLIENT_ID,
            "auth_time": now - 3600,
            "iat": now - 700,
            "nbf": now - 700,
            "exp": now - 100,
            "roles": [],
        },
    )
    answer = refreshed(active_idp, tokens)
    response = renew(client, expired, answer["access_token"])
    assert response.status_code == 200, response.text


def test_renewal_refuses_a_sign_in_older_than_a_console_session(
    client: TestClient, runtime: Runtime, active_idp: OpenIDProvider, alice: int
) -> None:
    tokens, _ = signed_in(client, active_idp)
    too_old = int(time.time() - runtime.settings.session_max_hours * 3600 - 5)
    previous, _ = runtime.tokens.issue(
        str(alice), {"method": "oidc", "client_id": CLI_CLIENT_ID, "auth_time": too_old}
    )
    response = renew(client, previous, tokens["access_token"])
    assert response.status_code == 401
    assert response.json()["error"] == "sign_in_too_old"
    assert last_audit(runtime, "token.renew").reason == "sign_in_too_old"


@pytest.mark.parametrize(
    "extra",
    [
        {"method": "password", "auth_time": "now"},
        {"method": "oidc", "client_id": "gatehouse-web", "auth_time": "now"},
        {"method": "oidc", "client_id": CLI_CLIENT_ID},
    ],
    ids=["password-sign-in", "another-client", "no-sign-in-time"],
)
def test_renewal_refuses_tokens_that_do_not_come_from_a_tools_sign_in(
    client: TestClient,
    runtime: Runtime,
    active_idp: OpenIDProvider,
    alice: int,
    extra: dict[str, Any],
) -> None:
    tokens, _ = signed_in(client, active_idp)
    claims = {k: int(time.time()) if v == "now" else v for k, v in extra.items()}
    previous, _ = runtime.tokens.issue(str(alice), claims)
    response = renew(client, previous, tokens["access_token"])
    assert response.status_code == 401
    assert response.json()["error"] in ("not_renewable", "invalid_token")


def test_renewal_refuses_a_token_not_signed_by_this_server(
    client: TestClient, active_idp: OpenIDProvider, alice: int
) -> None:
    tokens, first = signed_in(client, active_idp)
    header, payload, signature = first.split(".")
    forged = f"{header}.{payload}.{signature[:-6]}AAAAAA"
    response = renew(client, forged, tokens["access_token"])
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


def test_renewal_refuses_an_idp_access_token_of_another_user_or_none_at_all(
    client: TestClient, active_idp: OpenIDProvider, alice: int
) -> None:
    _, first = signed_in(client, active_idp)
    bobs = id_token_for(active_idp, "bob")
    other = renew(client, first, bobs["access_token"])
    assert other.status_code == 401
    assert other.json()["error"] == "userinfo_sub_mismatch"
    garbage = renew(client, first, "not-an-access-token")
    assert garbage.status_code == 401
    assert garbage.json()["error"] == "userinfo_refused"


def test_renewal_refuses_a_user_disabled_since(
    client: TestClient, runtime: Runtime, active_idp: OpenIDProvider, alice: int
) -> None:
    tokens, first = signed_in(client, active_idp)
    with runtime.db.session() as db:
        user = db.get(User, alice)
        assert user is not None
        user.status = "disabled"
    runtime.users.invalidate(alice)
    response = renew(client, first, refreshed(active_idp, tokens)["access_token"])
    assert response.status_code == 403
    assert response.json()["error"] == "account_disabled"


def test_renewal_refuses_an_identity_unlinked_since(
    client: TestClient, runtime: Runtime, active_idp: OpenIDProvider, alice: int
) -> None:
    tokens, first = signed_in(client, active_idp)
    with runtime.db.session() as db:
        user = db.get(User, alice)
        assert user is not None
        user.idp_subject = None
        user.idp_issuer = None
    response = renew(client, first, tokens["access_token"])
    assert response.status_code == 403
    assert response.json()["error"] == "identity_changed"
