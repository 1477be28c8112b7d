"""POST /api/v1/auth/token, GET /api/v1/auth/idp-config and /api/v1/auth/jwks against the real
test IdP. Each refusal of the exchange has its own test."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import select

from gatehouse.domain import token_exchange
from gatehouse.domain.errors import Unauthenticated
from gatehouse.metrics import TOKEN_EXCHANGE
from gatehouse.runtime import Runtime
from gatehouse.store.models import AuditEvent
from idp.fixture import WEB_CLIENT_ID, OpenIDProvider
from idp_helpers import id_token_for


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """The subject here is the exchange, not the database: SQLite only."""
    return sqlite_url


def exchange(client: TestClient, id_token: str) -> Any:
    return client.post("/api/v1/auth/token", json={"id_token": id_token})


def outcome_count(outcome: str) -> float:
    return TOKEN_EXCHANGE.labels(outcome=outcome)._value.get()


def last_exchange_audit(runtime: Runtime) -> AuditEvent:
    with runtime.db.session() as db:
        row = db.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "token.exchange")
            .order_by(AuditEvent.id.desc())
        ).first()
        assert row is not None
        db.expunge(row)
        return row


def test_idp_config_is_public_cacheable_and_names_the_native_client(
    client: TestClient, active_idp: OpenIDProvider
) -> None:
    response = client.get("/api/v1/auth/idp-config")
    assert response.status_code == 200
    body = response.json()
    assert body["enabled"] is True
    assert body["issuer"] == active_idp.issuer
    assert body["client_id"] == "gatehouse-cli"
    assert body["device_flow"] is True
    assert "openid" in body["scopes"]
    assert response.headers["cache-control"] == "public, max-age=60"
    again = client.get(
        "/api/v1/auth/idp-config", headers={"If-None-Match": response.headers["etag"]}
    )
    assert again.status_code == 304


def test_idp_config_says_disabled_while_oidc_is_off(client: TestClient) -> None:
    body = client.get("/api/v1/auth/idp-config").json()
    assert body == {
        "enabled": False,
        "issuer": None,
        "client_id": None,
        "scopes": [],
        "device_flow": False,
        "display_name": None,
    }


def test_jwks_publishes_the_access_token_signing_key(client: TestClient, runtime: Runtime) -> None:
    keys = client.get("/api/v1/auth/jwks").json()["keys"]
    assert keys and all("d" not in k and k["use"] == "sig" for k in keys)
    token, _ = runtime.tokens.issue("1")
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["kid"] in {k["kid"] for k in keys}
    key_set = {k["kid"]: RSAKey.import_key(k) for k in keys}
    decoded = jwt.decode(token, key_set[header["kid"]], algorithms=[header["alg"]])
    assert decoded.claims["sub"] == "1"


def test_exchange_issues_an_access_token_with_roles_accepted_by_the_api(
    client: TestClient, active_idp: OpenIDProvider, alice: int, runtime: Runtime
) -> None:
    before = outcome_count("ok")
    response = exchange(client, id_token_for(active_idp, "alice")["id_token"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600
    claims = runtime.tokens.verify(body["access_token"])
    assert claims["sub"] == str(alice)
    assert claims["aud"] == runtime.settings.public_url
    assert claims["roles"] == []
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200 and me.json()["username"] == "alice"
    assert outcome_count("ok") == before + 1
    audit_row = last_exchange_audit(runtime)
    assert audit_row.outcome == "success" and audit_row.actor == "alice"


def test_exchange_refuses_an_id_token_presented_a_second_time(
    client: TestClient, active_idp: OpenIDProvider, alice: int, runtime: Runtime
) -> None:
    raw = id_token_for(active_idp, "alice")["id_token"]
    assert exchange(client, raw).status_code == 200
    again = exchange(client, raw)
    assert again.status_code == 401
    assert again.json()["error"] == "token_replayed"
    assert last_exchange_audit(runtime).reason == "token_replayed"
    replica = Runtime(runtime.settings)  # the store is the database: every replica knows
    replica.start()
    try:
        with pytest.raises(Unauthenticated) as refused:
            token_exchange.exchange_id_token(replica.signin, raw, ip=None)
    finally:
        replica.close()
    assert refused.value.code == "token_replayed"
    fresh = id_token_for(active_idp, "alice")["id_token"]
    assert exchange(client, fresh).status_code == 200


def test_a_second_exchange_passes_only_with_proof_that_the_idp_stands_behind_the_user(
    client: TestClient, active_idp: OpenIDProvider, alice: int
) -> None:
    """An IdP may answer a refresh in the same second with a byte-identical ID token (the test
    IdP does: no jti, same iat); the refresh's access token then proves it through UserInfo."""
    tokens = id_token_for(active_idp, "alice")
    assert exchange(client, tokens["id_token"]).status_code == 200
    bobs = id_token_for(active_idp, "bob")["access_token"]
    with_bobs = client.post(
        "/api/v1/auth/token", json={"id_token": tokens["id_token"], "idp_access_token": bobs}
    )
    assert with_bobs.status_code == 401
    assert with_bobs.json()["error"] == "userinfo_sub_mismatch"
    with_alices = client.post(
        "/api/v1/auth/token",
        json={"id_token": tokens["id_token"], "idp_access_token": tokens["access_token"]},
    )
    assert with_alices.status_code == 200, with_alices.text


def test_exchange_refuses_an_id_token_issued_to_the_web_client(
    client: TestClient, active_idp: OpenIDProvider, alice: int, runtime: Runtime
) -> None:
    web = id_token_for(
        active_idp,
        "alice",
        client_id=WEB_CLIENT_ID,
        redirect_uri="http://127.0.0.1:8000/auth/oidc/callback",
    )
    response = exchange(client, web["id_token"])
    assert response.status_code == 401
    assert response.json()["error"] == "audience_mismatch"
    assert last_exchange_audit(runtime).reason == "audience_mismatch"


def test_exchange_refuses_an_expired_id_token(
    runtime: Runtime, active_idp: OpenIDProvider, alice: int
) -> None:
    raw = id_token_for(active_idp, "alice")["id_token"]
    with pytest.raises(Unauthenticated) as refused:
        token_exchange.exchange_id_token(runtime.signin, raw, ip=None, now=time.time() + 3600 + 31)
    assert refused.value.code == "token_expired"


def test_exchange_refuses_an_id_token_older_than_five_minutes(
    runtime: Runtime, active_idp: OpenIDProvider, alice: int
) -> None:
    raw = id_token_for(active_idp, "alice")["id_token"]
    token_exchange.exchange_id_token(runtime.signin, raw, ip=None, now=time.time() + 299)
    with pytest.raises(Unauthenticated) as refused:
        token_exchange.exchange_id_token(runtime.signin, raw, ip=None, now=time.time() + 300 + 31)
    assert refused.value.code == "iat_too_old"


def test_exchange_refuses_an_id_token_from_another_issuer(
    client: TestClient,
    active_idp: OpenIDProvider,
    alice: int,
    idp_factory: Callable[..., OpenIDProvider],
) -> None:
    """A real second IdP with the same client and user names: its token is refused before its
    ``iss`` is even compared, because none of the configured IdP's keys signed it."""
    other = idp_factory()
    raw = id_token_for(other, "alice")["id_token"]
    claims = json.loads(base64.urlsafe_b64decode(raw.split(".")[1] + "=="))
    assert claims["iss"] == other.issuer != active_idp.issuer
    assert claims["aud"] == "gatehouse-cli"
    response = exchange(client, raw)
    assert response.status_code == 401
    assert response.json()["error"] == "unknown_kid"


def test_exchange_refuses_a_forged_signature(
    client: TestClient, active_idp: OpenIDProvider, alice: int
) -> None:
    raw = id_token_for(active_idp, "alice")["id_token"]
    header, payload, _ = raw.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged_key = RSAKey.generate_key(2048)
    header_json = json.loads(base64.urlsafe_b64decode(header + "=="))
    forged = jwt.encode(
        {"alg": "RS256", "kid": header_json.get("kid"), "typ": "JWT"}, claims, forged_key
    )
    response = exchange(client, forged)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_signature"
    tampered = exchange(client, f"{header}.{payload[:-4]}AAAA.{raw.split('.')[2]}")
    assert tampered.status_code == 401


def test_exchange_refuses_an_unknown_user(
    client: TestClient, active_idp: OpenIDProvider, runtime: Runtime
) -> None:
    response = exchange(client, id_token_for(active_idp, "bob")["id_token"])
    assert response.status_code == 403
    assert response.json()["error"] == "unknown_user"
    assert last_exchange_audit(runtime).outcome == "failure"


def test_exchange_refuses_a_disabled_user(
    client: TestClient,
    active_idp: OpenIDProvider,
    make_user: Callable[..., int],
    runtime: Runtime,
) -> None:
    from gatehouse.store.models import User

    user_id = make_user("carol")
    with runtime.db.session() as db:
        user = db.get(User, user_id)
        assert user is not None
        user.status = "disabled"
    response = exchange(client, id_token_for(active_idp, "carol")["id_token"])
    assert response.status_code == 403
    assert response.json()["error"] == "account_disabled"


def test_exchange_is_refused_while_oidc_is_inactive(
    client: TestClient,
    active_idp: OpenIDProvider,
    alice: int,
    set_oidc_active: Callable[[bool], None],
) -> None:
    raw = id_token_for(active_idp, "alice")["id_token"]
    set_oidc_active(False)
    response = exchange(client, raw)
    assert response.status_code == 409
    assert response.json()["error"] == "oidc_not_active"
