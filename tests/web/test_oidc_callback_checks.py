"""Web-level checks of the callback and the IdP API, against the session-scoped real IdP."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from gatehouse.domain.signin.logout import _seen_jti
from gatehouse.runtime import Runtime
from gatehouse.store.models import AuditEvent, IdPConfig
from helpers import console_login, csrf_from
from idp.fixture import OpenIDProvider
from idp_helpers import callback, configure_idp, idp_config, start_location

pytestmark = pytest.mark.idp


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    return sqlite_url


@pytest.fixture
def active(
    client: TestClient, admin_headers: dict[str, str], idp: OpenIDProvider
) -> dict[str, str]:
    configure_idp(client, admin_headers, idp)
    return admin_headers


def _callback_location(client: TestClient, idp: OpenIDProvider, return_to: str = "/") -> str:
    return idp.login(start_location(client, return_to), "alice", "alice-password")


def _get(client: TestClient, location: str, **replace: str | None) -> Any:
    parts = urlsplit(location)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    for name, value in replace.items():
        if value is None:
            query.pop(name, None)
        else:
            query[name] = value
    return client.get(f"{parts.path}?{urlencode(query)}", follow_redirects=False)


def test_start_redirects_with_state_nonce_and_pkce_s256(
    client: TestClient, active: dict[str, str], idp: OpenIDProvider
) -> None:
    response = client.get("/auth/oidc/start", follow_redirects=False)
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["response_type"] == ["code"] and query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == ["http://127.0.0.1:8000/auth/oidc/callback"]
    assert query["state"][0] and query["nonce"][0] and query["code_challenge"][0]
    assert "offline_access" in query["scope"][0].split()  # the IdP lists it


def test_callback_state_is_one_time(
    client: TestClient, active: dict[str, str], idp: OpenIDProvider, make_user: Any
) -> None:
    make_user("alice")
    location = _callback_location(client, idp)
    assert _get(client, location).status_code == 303
    replay = _get(client, location)
    assert replay.status_code == 400 and "bad_state" in replay.text


def test_callback_rejects_unknown_state(
    client: TestClient, active: dict[str, str], idp: OpenIDProvider
) -> None:
    location = _callback_location(client, idp)
    response = _get(client, location, state="forged-state-value")
    assert response.status_code == 400 and "bad_state" in response.text


def test_callback_rejects_a_flow_started_in_another_browser(
    app: Any, client: TestClient, active: dict[str, str], idp: OpenIDProvider
) -> None:
    location = _callback_location(client, idp)
    with TestClient(app, base_url="http://127.0.0.1:8000") as other:
        response = _get(other, location)
    assert response.status_code == 400 and "browser_mismatch" in response.text


def test_callback_rejects_missing_iss_when_discovery_advertises_it(
    client: TestClient, active: dict[str, str], idp: OpenIDProvider
) -> None:
    assert idp.metadata()["authorization_response_iss_parameter_supported"] is True
    location = _callback_location(client, idp)
    response = _get(client, location, iss=None)
    assert response.status_code == 400 and "iss_missing" in response.text


def test_callback_rejects_iss_of_another_provider(
    client: TestClient, active: dict[str, str], idp: OpenIDProvider
) -> None:
    location = _callback_location(client, idp)
    response = _get(client, location, iss="https://evil.example")
    assert response.status_code == 400 and "iss_mismatch" in response.text


def test_callback_refuses_flow_started_under_an_old_config_version(
    client: TestClient, active: dict[str, str], idp: OpenIDProvider, make_user: Any
) -> None:
    make_user("alice")
    location = _callback_location(client, idp)
    etag = client.get("/api/v1/idp", headers=active).headers["ETag"]
    changed = client.put(
        "/api/v1/idp",
        json={"display_name": "Renamed", "issuer": idp.issuer, "client_id": "gatehouse-web"},
        headers={**active, "If-Match": etag},
    )
    assert changed.status_code == 200
    response = _get(client, location)
    assert response.status_code == 400 and "config_changed" in response.text


def test_idp_error_response_becomes_a_readable_page(
    client: TestClient, active: dict[str, str], idp: OpenIDProvider
) -> None:
    start = client.get("/auth/oidc/start", follow_redirects=False).headers["location"]
    state = parse_qs(urlsplit(start).query)["state"][0]
    response = client.get(
        "/auth/oidc/callback",
        params={"error": "access_denied", "state": state, "iss": idp.issuer},
    )
    assert response.status_code == 403 and "access denied" in response.text


@pytest.mark.parametrize(
    "return_to",
    ["//evil.example/", "https://evil.example/", "/\\evil.example", "%2F%2Fevil.example", "x"],
)
def test_return_to_open_redirect_attempts_are_ignored(
    client: TestClient, active: dict[str, str], idp: OpenIDProvider, make_user: Any, return_to: str
) -> None:
    make_user("alice")
    response = _get(client, _callback_location(client, idp, return_to))
    assert response.status_code == 303 and response.headers["location"] == "/"


def test_start_when_oidc_is_not_active_shows_a_page(client: TestClient) -> None:
    response = client.get("/auth/oidc/start", follow_redirects=False)
    assert response.status_code == 409 and "Single sign-on is off" in response.text


def test_backchannel_logout_refuses_a_bad_token_with_400_no_store(
    client: TestClient, active: dict[str, str]
) -> None:
    response = client.post("/auth/oidc/backchannel-logout", data={"logout_token": "a.b.c"})
    assert response.status_code == 400
    assert response.headers["cache-control"] == "no-store"
    missing = client.post("/auth/oidc/backchannel-logout", data={})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"


def test_logout_token_jti_is_recorded_once(runtime: Runtime) -> None:
    seen = _seen_jti(runtime.signin, "https://idp.example")
    assert seen("jti-1", 2_000_000_000) is False
    assert seen("jti-1", 2_000_000_000) is True
    assert _seen_jti(runtime.signin, "https://other.example")("jti-1", 2_000_000_000) is False


# -- the configuration API ------------------------------------------------------------------


def test_idp_put_is_versioned_write_only_and_detects_stale_if_match(
    client: TestClient, runtime: Runtime, admin_headers: dict[str, str], idp: OpenIDProvider
) -> None:
    empty = client.get("/api/v1/idp", headers=admin_headers)
    assert empty.json()["version"] is None and empty.headers["ETag"] == '"0"'
    body = idp_config(idp, display_name="A")
    first = client.put("/api/v1/idp", json=body, headers={**admin_headers, "If-Match": '"0"'})
    assert first.status_code == 200 and first.headers["ETag"] == '"1"'
    assert "client_secret" not in first.json() and first.json()["client_secret_set"] is True
    assert "web-secret" not in first.text
    # no secret given: the previous one is kept
    second = client.put(
        "/api/v1/idp",
        json={**body, "client_secret": None, "display_name": "B"},
        headers={**admin_headers, "If-Match": '"1"'},
    )
    assert second.json()["version"] == 2 and second.json()["client_secret_set"] is True
    stale = client.put("/api/v1/idp", json=body, headers={**admin_headers, "If-Match": '"1"'})
    assert stale.status_code == 412 and stale.json()["error"] == "precondition_failed"
    with runtime.db.session() as db:
        rows = list(db.scalars(select(IdPConfig).order_by(IdPConfig.version)))
        assert [r.version for r in rows] == [1, 2] and rows[1].created_by == "root"
        assert rows[0].client_secret_enc == rows[1].client_secret_enc
        assert b"web-secret" not in rows[0].client_secret_enc
        events = list(db.scalars(select(AuditEvent).where(AuditEvent.action == "idp.config_saved")))
        assert len(events) == 2 and "web-secret" not in str(events[0].details)


@pytest.mark.parametrize(
    ("issuer", "code"),
    [
        ("http://idp.example.com", "insecure_issuer"),
        ("https://idp.example.com?x=1", "invalid_issuer"),
    ],
)
def test_idp_put_refuses_insecure_or_invalid_issuer(
    client: TestClient, admin_headers: dict[str, str], issuer: str, code: str
) -> None:
    body = {"display_name": "A", "issuer": issuer, "client_id": "c", "client_secret": "s"}
    response = client.put("/api/v1/idp", json=body, headers=admin_headers)
    assert response.status_code == 400 and response.json()["error"] == code
    assert response.json()["field"] == "issuer"


def test_idp_test_reports_each_check_with_a_sentence(
    client: TestClient, admin_headers: dict[str, str], idp: OpenIDProvider
) -> None:
    client.put("/api/v1/idp", json=idp_config(idp, display_name="A"), headers=admin_headers)
    report = client.post("/api/v1/idp/test", headers=admin_headers).json()
    names = [c["name"] for c in report["checks"]]
    assert names[:4] == ["discovery", "issuer", "endpoints", "signing_algs"]
    assert {"jwks", "client_auth", "pkce", "scopes", "logout", "redirect_uri"} <= set(names)
    assert report["ok"] and all(c["detail"] for c in report["checks"])


def test_test_sign_in_shows_claims_and_mapped_user_without_a_session(
    client: TestClient, runtime: Runtime, local_admin: int, idp: OpenIDProvider, make_user: Any
) -> None:
    assert console_login(client).status_code == 303
    form = {
        "csrf_token": csrf_from(client.get("/settings/idp").text),
        "version": "0",
        "display_name": "Test IdP",
        "issuer": idp.issuer,
        "client_id": "gatehouse-web",
        "client_secret": "web-secret",
        "token_endpoint_auth_method": "client_secret_basic",
        "scopes": "openid profile email",
        "user_claim": "preferred_username",
        "group_role_rules": "developers = Developer",
    }
    saved = client.post("/settings/idp", data=form, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    make_user("alice")
    start = client.get("/auth/oidc/start?purpose=test", follow_redirects=False)
    location = idp.login(start.headers["location"], "alice", "alice-password")
    result = callback(client, location)
    assert result.status_code == 200
    assert 'id="mapped-user">alice<' in result.text and "alice-sub" in result.text
    from gatehouse.store.models import Session as SessionRow
    from gatehouse.store.models import User

    with runtime.db.session() as db:
        alice = db.scalars(select(User).where(User.username == "alice")).one()
        assert alice.idp_subject is None  # a test sign-in binds nothing
        assert db.scalars(select(SessionRow).where(SessionRow.user_id == alice.id)).first() is None
    page = client.get("/settings/idp")
    assert "caller_is_local_admin" in page.text and "Test sign-in" in page.text
