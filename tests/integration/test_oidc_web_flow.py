"""The OIDC web flow against the real IdP (oidc-provider): sign-in and keeping tokens fresh, on
SQLite and PostgreSQL (the refresh takes a row lock on PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from gatehouse.domain.signin.common import open_claims
from gatehouse.runtime import Runtime
from gatehouse.store.models import AuditEvent, User
from gatehouse.store.models import Session as SessionRow
from idp.fixture import OpenIDProvider
from idp.plugin import running_idp
from idp_helpers import configure_idp, me, sign_in

pytestmark = pytest.mark.idp


@pytest.fixture(scope="module")
def short_lived_idp() -> Iterator[OpenIDProvider]:
    """ID and access tokens that live 2 seconds: every console request has to refresh."""
    with running_idp(
        web_redirect_uris=["http://127.0.0.1:8000/auth/oidc/callback"],
        ttl={"IdToken": 2, "AccessToken": 2},
    ) as provider:
        yield provider


def _live_session(runtime: Runtime, user_id: int) -> SessionRow:
    with runtime.db.session() as db:
        return db.scalars(
            select(SessionRow).where(SessionRow.user_id == user_id, SessionRow.method == "oidc")
        ).one()


def test_happy_path_pre_created_user_signs_in_and_is_bound(
    client: TestClient,
    runtime: Runtime,
    admin_headers: dict[str, str],
    idp: OpenIDProvider,
    make_user: Any,
) -> None:
    configure_idp(client, admin_headers, idp)
    user_id = make_user("alice", email="alice@example.com")
    response = sign_in(client, idp, "alice", return_to="/account")
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/account"
    body = me(client).json()
    assert body["username"] == "alice"
    with runtime.db.session() as db:
        user = db.get(User, user_id)
        assert user is not None
        assert (user.idp_issuer, user.idp_subject) == (idp.issuer, "alice-sub")
    row = _live_session(runtime, user_id)
    assert row.revoked_at is None and row.idp_sid and row.refresh_token_enc is not None
    assert row.id_token_enc is not None and b"alice" not in row.id_token_enc  # encrypted
    assert row.id_token_expires_at is not None


def test_session_kept_alive_by_refresh_past_id_token_lifetime(
    client: TestClient,
    runtime: Runtime,
    admin_headers: dict[str, str],
    short_lived_idp: OpenIDProvider,
    make_user: Any,
) -> None:
    configure_idp(client, admin_headers, short_lived_idp)
    user_id = make_user("alice")
    assert sign_in(client, short_lived_idp, "alice").status_code == 303
    first_expiry = _live_session(runtime, user_id).id_token_expires_at
    assert first_expiry is not None
    time.sleep(2.5)  # past the first ID token's exp (no leeway games: exp + 0.5 s)
    assert me(client).status_code == 200
    row = _live_session(runtime, user_id)
    assert row.revoked_at is None
    assert row.id_token_expires_at is not None and row.id_token_expires_at > first_expiry
    time.sleep(2.5)
    assert me(client).status_code == 200


def test_refresh_refused_at_idp_ends_session_at_next_request(
    client: TestClient,
    runtime: Runtime,
    admin_headers: dict[str, str],
    short_lived_idp: OpenIDProvider,
    make_user: Any,
) -> None:
    configure_idp(client, admin_headers, short_lived_idp)
    user_id = make_user("bob")
    assert sign_in(client, short_lived_idp, "bob").status_code == 303
    assert me(client).status_code == 200
    short_lived_idp.disable_user("bob-sub")
    try:
        assert me(client).status_code == 401
        row = _live_session(runtime, user_id)
        assert row.revoked_at is not None and row.revoked_reason == "idp_refused_refresh"
        page = client.get("/account", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
        # the browser is told why, and the home page's "recent problems" reads the audit row
        assert "ended at the identity provider" in client.get(page.headers["location"]).text
        with runtime.db.session() as db:
            failed = db.scalars(
                select(AuditEvent).where(AuditEvent.action == "session.refresh_failed")
            ).one()
        assert (failed.reason, failed.target_id) == ("idp_refused_refresh", str(user_id))
    finally:
        short_lived_idp.enable_user("bob-sub")


def _stored_claims(runtime: Runtime, row: SessionRow) -> dict[str, Any]:
    assert row.id_token_claims_enc is not None
    return dict(open_claims(runtime.box, row.id_token_claims_enc))


def test_verified_id_token_claims_are_stored_at_sign_in_and_replaced_at_refresh(
    client: TestClient,
    runtime: Runtime,
    admin_headers: dict[str, str],
    short_lived_idp: OpenIDProvider,
    make_user: Any,
) -> None:
    configure_idp(client, admin_headers, short_lived_idp)
    user_id = make_user("alice")
    assert sign_in(client, short_lived_idp, "alice").status_code == 303
    row = _live_session(runtime, user_id)
    assert row.id_token_claims_enc is not None and b"alice" not in row.id_token_claims_enc
    first = _stored_claims(runtime, row)
    assert (first["iss"], first["sub"]) == (short_lived_idp.issuer, "alice-sub")
    assert row.id_token_expires_at is not None
    assert first["exp"] == int(row.id_token_expires_at.timestamp())
    time.sleep(2.5)  # the tokens are due: the next request refreshes them
    assert me(client).status_code == 200
    refreshed = _stored_claims(runtime, _live_session(runtime, user_id))
    assert (refreshed["iss"], refreshed["sub"]) == (first["iss"], first["sub"])
    assert refreshed["exp"] > first["exp"]


def test_session_without_stored_claims_reauthenticates_instead_of_refreshing(
    client: TestClient,
    runtime: Runtime,
    admin_headers: dict[str, str],
    short_lived_idp: OpenIDProvider,
    make_user: Any,
) -> None:
    """A session from before the claims were stored is never refreshed on a re-decoded token:
    it ends at its next refresh and the console signs in again with prompt=none."""
    configure_idp(client, admin_headers, short_lived_idp)
    user_id = make_user("carol")
    assert sign_in(client, short_lived_idp, "carol").status_code == 303
    with runtime.db.session() as db:
        db.execute(
            update(SessionRow).where(SessionRow.user_id == user_id).values(id_token_claims_enc=None)
        )
    time.sleep(2.5)
    page = client.get("/account", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"].startswith("/auth/oidc/start?prompt=none")
    row = _live_session(runtime, user_id)
    assert row.revoked_at is not None and row.revoked_reason == "reauth_required"
