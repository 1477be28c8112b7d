"""Issue 3 acceptance against the real IdP: refusals, logout, key rotation, outage, IdP variants."""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from gatehouse.domain import users
from gatehouse.domain.audit import Actor
from gatehouse.runtime import Runtime
from gatehouse.store.models import AuditEvent, User
from gatehouse.store.models import Session as SessionRow
from helpers import ADMIN_PASSWORD
from idp.fixture import WEB_POST_CLIENT_ID, WEB_POST_CLIENT_SECRET, OpenIDProvider
from idp.plugin import IdPFactory
from idp_helpers import callback, configure_idp, idp_config, me, sign_in, start_location

pytestmark = pytest.mark.idp
CALLBACK = "http://127.0.0.1:8000/auth/oidc/callback"


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """SQLite only: the subject is the IdP, not the database."""
    return sqlite_url


def csrf_token(client: TestClient) -> str:
    page = client.get("/account")
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


def test_unknown_user_refused_with_a_page_to_ask_an_administrator(
    client: TestClient, admin_headers: dict[str, str], idp: OpenIDProvider
) -> None:
    configure_idp(client, admin_headers, idp)
    response = sign_in(client, idp, "mallory")
    assert response.status_code == 403
    assert "Ask an administrator" in response.text and "unknown_user" in response.text
    assert me(client).status_code == 401


def test_disabled_user_refused(
    client: TestClient,
    runtime: Runtime,
    admin_headers: dict[str, str],
    idp: OpenIDProvider,
    make_user: Any,
) -> None:
    configure_idp(client, admin_headers, idp)
    user_id = make_user("bob")
    with runtime.db.session() as db:
        user = users.get_user(db, user_id)
        users.update_user(
            db, Actor.system("test"), user, status="disabled", fields_set=frozenset({"status"})
        )
    response = sign_in(client, idp, "bob")
    assert response.status_code == 403 and "account_disabled" in response.text
    assert me(client).status_code == 401


def test_binding_cannot_move_when_username_changes_at_the_idp(
    client: TestClient,
    runtime: Runtime,
    admin_headers: dict[str, str],
    idp_factory: IdPFactory,
    make_user: Any,
) -> None:
    provider = idp_factory(web_redirect_uris=[CALLBACK])
    configure_idp(client, admin_headers, provider)
    alice_id = make_user("alice")
    make_user("carol")
    assert sign_in(client, provider, "alice").status_code == 303
    client.cookies.clear()
    # alice is renamed "carol" at the IdP: still the Gatehouse user alice (iss+sub binding) ...
    provider.upsert_user("alice-sub", username="carol-new")
    provider.upsert_user("alice-sub", extra_claims={"preferred_username": "carol"})
    response = callback(
        client,
        provider.login(start_location(client), "carol-new", "alice-password"),
    )
    assert response.status_code == 303
    assert me(client).json()["id"] == alice_id
    # ... and a second IdP account named alice cannot reach the bound user
    client.cookies.clear()
    provider.upsert_user("eve-sub", username="eve", password="eve-password")
    provider.upsert_user("eve-sub", extra_claims={"preferred_username": "alice"})
    response = callback(client, provider.login(start_location(client), "eve", "eve-password"))
    assert response.status_code == 403 and "already_bound" in response.text


def test_rp_initiated_logout_sends_browser_to_end_session_endpoint(
    client: TestClient, admin_headers: dict[str, str], idp: OpenIDProvider, make_user: Any
) -> None:
    configure_idp(client, admin_headers, idp)
    make_user("alice")
    browser = idp.new_browser()
    assert sign_in(client, idp, "alice", browser=browser).status_code == 303
    # The IdP is shared with other tests: follow this browser's IdP session only.
    before = {s["id"] for s in idp.sessions() if s["sub"] == "alice-sub"}
    response = client.post(
        "/logout", data={"csrf_token": csrf_token(client)}, follow_redirects=False
    )
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith(idp.endpoint("end_session"))
    query = parse_qs(urlsplit(location).query)
    assert query["post_logout_redirect_uri"] == ["http://127.0.0.1:8000/login"]
    assert query["id_token_hint"][0].count(".") == 2
    assert me(client).status_code == 401
    final = idp.end_session(location, browser)
    assert final.startswith("http://127.0.0.1:8000/login")
    after = {s["id"] for s in idp.sessions() if s["sub"] == "alice-sub"}
    assert len(after) == len(before) - 1 and after < before


def test_backchannel_logout_ends_the_session(live_server: Any, idp_factory: IdPFactory) -> None:
    rt: Runtime = live_server.runtime
    provider = idp_factory(web_redirect_uris=[live_server.url + "/auth/oidc/callback"])
    with rt.db.session() as db:
        users.create_user(
            db,
            Actor.system("t"),
            username="root",
            password=ADMIN_PASSWORD,
            local_admin=True,
        )
        users.create_user(db, Actor.system("t"), username="alice")
    with httpx.Client(base_url=live_server.url, timeout=10) as web:
        token = web.post(
            "/api/v1/auth/local", json={"username": "root", "password": ADMIN_PASSWORD}
        ).json()["access_token"]
        configure_idp(web, {"Authorization": f"Bearer {token}"}, provider)
        start = web.get("/auth/oidc/start", follow_redirects=False).headers["location"]
        location = provider.login(start, "alice", "alice-password")
        parts = urlsplit(location)
        assert web.get(f"{parts.path}?{parts.query}").status_code in (200, 303)
        assert web.get("/api/v1/me").status_code == 200
        result = provider.backchannel_logout("gatehouse-web", "alice-sub")
        assert result["delivered"], result
        assert web.get("/api/v1/me").status_code == 401
    with rt.db.session() as db:
        row = db.scalars(select(SessionRow).where(SessionRow.method == "oidc")).one()
        assert row.revoked_reason == "backchannel_logout"


def test_key_rotation_between_sign_ins(
    client: TestClient,
    runtime: Runtime,
    admin_headers: dict[str, str],
    idp_factory: IdPFactory,
    make_user: Any,
) -> None:
    runtime.idp.jwks_refetch_cooldown = 0.5  # the cooldown itself: unit/oidc/test_jwks.py
    provider = idp_factory(web_redirect_uris=[CALLBACK])
    configure_idp(client, admin_headers, provider)
    make_user("alice")
    make_user("bob")
    assert sign_in(client, provider, "alice").status_code == 303  # keys now cached
    time.sleep(0.6)
    provider.rotate_keys(keep_old=False)
    client.cookies.clear()
    assert sign_in(client, provider, "bob").status_code == 303  # unknown kid: one refetch
    assert me(client).json()["username"] == "bob"


def test_key_rotation_during_a_sign_in(
    client: TestClient,
    runtime: Runtime,
    admin_headers: dict[str, str],
    idp_factory: IdPFactory,
    make_user: Any,
) -> None:
    runtime.idp.jwks_refetch_cooldown = 0.5  # the cooldown itself: unit/oidc/test_jwks.py
    provider = idp_factory(web_redirect_uris=[CALLBACK])
    configure_idp(client, admin_headers, provider)
    make_user("alice")
    make_user("bob")
    assert sign_in(client, provider, "alice").status_code == 303  # keys now cached
    time.sleep(0.6)
    client.cookies.clear()
    location = provider.login(start_location(client), "bob", "bob-password")
    provider.rotate_keys(keep_old=False)  # the ID token will be signed by a key we never saw
    assert callback(client, location).status_code == 303
    assert me(client).json()["username"] == "bob"


def test_activation_refused_for_each_failed_precondition(
    client: TestClient, runtime: Runtime, idp: OpenIDProvider, make_user: Any
) -> None:
    # nobody is a local admin; a global Administrator with a password asks
    make_user("boss", password="boss-password-123", roles=[users.RoleGrant("Administrator")])
    token = client.post(
        "/api/v1/auth/local", json={"username": "boss", "password": "boss-password-123"}
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}

    def refused() -> set[str]:
        response = client.post("/api/v1/idp/activate", headers=headers)
        assert response.status_code == 409, response.text
        body = response.json()
        assert body["error"] == "activation_refused" and body["detail"]
        return {f["name"] for f in body["failed"]}

    from gatehouse.store.models import Environment

    with runtime.db.session() as db:
        db.add(Environment(name="dev", base_url="https://dev.example.com"))
    assert refused() == {
        "config_tested",
        "local_admin_exists",
        "caller_is_local_admin",
        "environments_ready",
    }
    # saved but untested, then tested red (issuer with a trailing slash is another issuer)
    put = client.put(
        "/api/v1/idp",
        json=idp_config(idp, display_name="X", issuer=idp.issuer + "/"),
        headers=headers,
    )
    assert put.status_code == 200, put.text
    assert "config_tested" in refused()
    test = client.post("/api/v1/idp/test", headers=headers).json()
    assert not test["ok"] and {c["name"]: c["ok"] for c in test["checks"]}["issuer"] is False
    assert "config_tested" in refused()
    # a green test clears that one precondition only
    client.put(
        "/api/v1/idp",
        json={"display_name": "X", "issuer": idp.issuer, "client_id": "gatehouse-web"},
        headers=headers,
    )
    assert client.post("/api/v1/idp/test", headers=headers).json()["ok"]
    assert refused() == {"local_admin_exists", "caller_is_local_admin", "environments_ready"}
    with runtime.db.session() as db:
        assert (
            db.scalars(select(AuditEvent).where(AuditEvent.action == "idp.activate")).first()
            is not None
        )


def test_after_activation_non_admin_password_refused_and_local_admin_works(
    client: TestClient,
    runtime: Runtime,
    admin_headers: dict[str, str],
    idp: OpenIDProvider,
    make_user: Any,
) -> None:
    dave_id = make_user("dave", password="dave-password-123")
    creds = {"username": "dave", "password": "dave-password-123"}
    assert client.post("/api/v1/auth/local", json=creds).status_code == 200
    from gatehouse.domain import sessions

    with runtime.db.session() as db:
        dave = db.get(User, dave_id)
        assert dave is not None
        sessions.create_session(
            db, dave, method="password", limits=runtime.session_limits, ip=None, user_agent=None
        )
    configure_idp(client, admin_headers, idp)  # activates
    refused = client.post("/api/v1/auth/local", json=creds)
    assert refused.status_code == 409 and refused.json()["error"] == "password_not_allowed"
    admin = client.post("/api/v1/auth/local", json={"username": "root", "password": ADMIN_PASSWORD})
    assert admin.status_code == 200
    with runtime.db.session() as db:
        row = db.scalars(select(SessionRow).where(SessionRow.user_id == dave_id)).one()
        assert row.revoked_reason == "oidc_activated"
    # deactivation (local admin) restores dave's password
    assert client.post("/api/v1/idp/deactivate", headers=admin_headers).json() == {"active": False}
    assert client.post("/api/v1/auth/local", json=creds).status_code == 200


def test_idp_outage_keeps_sessions_shows_unavailable_page_and_local_admin_signs_in(
    client: TestClient,
    runtime: Runtime,
    admin_headers: dict[str, str],
    idp_factory: IdPFactory,
    make_user: Any,
) -> None:
    provider = idp_factory(web_redirect_uris=[CALLBACK])
    configure_idp(client, admin_headers, provider)
    user_id = make_user("alice")
    assert sign_in(client, provider, "alice").status_code == 303
    provider.stop()
    # the tokens are due: the refresh fails on the outage, and the session is kept
    from gatehouse.store.models import utcnow

    with runtime.db.session() as db:
        row = db.scalars(select(SessionRow).where(SessionRow.user_id == user_id)).one()
        row.access_token_expires_at = utcnow()
    assert me(client).status_code == 200
    assert me(client).status_code == 200
    # a replica that never reached the IdP shows a readable page
    runtime.idp.invalidate()
    client.cookies.clear()
    page = client.get("/auth/oidc/start", follow_redirects=False)
    assert page.status_code == 503 and "Identity provider unavailable" in page.text
    assert "local admins can still sign in" in page.text.lower()
    admin = client.post("/api/v1/auth/local", json={"username": "root", "password": ADMIN_PASSWORD})
    assert admin.status_code == 200


def test_issuer_with_a_path(
    client: TestClient, admin_headers: dict[str, str], idp_factory: IdPFactory, make_user: Any
) -> None:
    provider = idp_factory(web_redirect_uris=[CALLBACK], issuer_path="/realms/acme")
    assert provider.issuer.endswith("/realms/acme")
    configure_idp(client, admin_headers, provider)
    make_user("alice")
    assert sign_in(client, provider, "alice").status_code == 303
    assert me(client).json()["username"] == "alice"


def test_client_secret_post(
    client: TestClient, admin_headers: dict[str, str], idp: OpenIDProvider, make_user: Any
) -> None:
    configure_idp(
        client,
        admin_headers,
        idp,
        client_id=WEB_POST_CLIENT_ID,
        client_secret=WEB_POST_CLIENT_SECRET,
        token_endpoint_auth_method="client_secret_post",
    )
    make_user("alice")
    assert sign_in(client, idp, "alice").status_code == 303
    assert me(client).json()["username"] == "alice"


def test_claims_only_in_userinfo(
    client: TestClient,
    runtime: Runtime,
    admin_headers: dict[str, str],
    idp_factory: IdPFactory,
    make_user: Any,
) -> None:
    provider = idp_factory(web_redirect_uris=[CALLBACK], claims_in_id_token=False)
    configure_idp(client, admin_headers, provider, user_claim="email")
    make_user("alice", email="Alice@Example.com")
    assert sign_in(client, provider, "alice").status_code == 303
    assert me(client).json()["username"] == "alice"
    with runtime.db.session() as db:
        event = db.scalars(select(AuditEvent).where(AuditEvent.action == "login.oidc")).one()
        assert event.details["userinfo"] is True
    # carol's address is not verified: email matching refuses her
    make_user("carol", email="carol@example.com")
    client.cookies.clear()
    response = sign_in(client, provider, "carol")
    assert response.status_code == 403 and "email_not_verified" in response.text
