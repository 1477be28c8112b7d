"""Every cell of the password policy table (a)-(e), in both modes, through the API."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from gatehouse.runtime import Runtime
from gatehouse.store.models import User

PASSWORD = "user-password-1234"


def _create(client: TestClient, headers: dict[str, str], **body: object) -> object:
    return client.post("/api/v1/users", json=body, headers=headers)


@pytest.mark.parametrize("active", [False, True])
def test_rule_a_local_admin_created_with_password_in_both_modes(
    client: TestClient,
    admin_headers: dict[str, str],
    set_oidc_active: Callable[[bool], None],
    active: bool,
) -> None:
    set_oidc_active(active)
    r = _create(client, admin_headers, username="ops2", password=PASSWORD, local_admin=True)
    assert r.status_code == 201, r.text
    assert r.json()["has_password"] is True


def test_rule_a_non_admin_with_password_allowed_while_inactive(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    r = _create(client, admin_headers, username="dev1", password=PASSWORD)
    assert r.status_code == 201
    assert r.json()["has_password"] is True


def test_rule_a_non_admin_with_password_refused_while_active(
    client: TestClient,
    admin_headers: dict[str, str],
    set_oidc_active: Callable[[bool], None],
    runtime: Runtime,
) -> None:
    set_oidc_active(True)
    r = _create(client, admin_headers, username="dev1", password=PASSWORD)
    assert r.status_code == 409
    assert r.json()["error"] == "password_not_allowed"
    assert r.json()["detail"]
    with runtime.db.session() as db:  # nothing was created
        assert db.scalar(select(User).where(User.username_key == "dev1")) is None


@pytest.mark.parametrize("active", [False, True])
def test_rule_b_set_password_of_non_admin(
    client: TestClient,
    admin_headers: dict[str, str],
    set_oidc_active: Callable[[bool], None],
    make_user: Callable[..., int],
    active: bool,
) -> None:
    uid = make_user("dev1")
    set_oidc_active(active)
    r = client.put(
        f"/api/v1/users/{uid}/password", json={"password": PASSWORD}, headers=admin_headers
    )
    if active:
        assert r.status_code == 409
        assert r.json()["error"] == "password_not_allowed"
    else:
        assert r.status_code == 204


@pytest.mark.parametrize("active", [False, True])
def test_rule_b_set_password_of_local_admin_allowed_in_both_modes(
    client: TestClient,
    admin_headers: dict[str, str],
    set_oidc_active: Callable[[bool], None],
    make_user: Callable[..., int],
    active: bool,
) -> None:
    uid = make_user("ops2", local_admin=True, password=PASSWORD)
    set_oidc_active(active)
    r = client.put(
        f"/api/v1/users/{uid}/password", json={"password": PASSWORD + "x"}, headers=admin_headers
    )
    assert r.status_code == 204


@pytest.mark.parametrize("active", [False, True])
def test_rule_c_password_sign_in_of_non_admin(
    client: TestClient,
    set_oidc_active: Callable[[bool], None],
    make_user: Callable[..., int],
    active: bool,
) -> None:
    make_user("dev1", password=PASSWORD)
    set_oidc_active(active)
    r = client.post("/api/v1/auth/local", json={"username": "dev1", "password": PASSWORD})
    if active:
        assert r.status_code == 409
        body = r.json()
        assert body["error"] == "password_not_allowed"
        assert "Sign in with" in body["detail"]
    else:
        assert r.status_code == 200
        assert r.json()["token_type"] == "Bearer"


@pytest.mark.parametrize("active", [False, True])
def test_rule_c_local_admin_sign_in_works_in_both_modes(
    client: TestClient, local_admin: int, set_oidc_active: Callable[[bool], None], active: bool
) -> None:
    from helpers import ADMIN_PASSWORD

    set_oidc_active(active)
    r = client.post("/api/v1/auth/local", json={"username": "root", "password": ADMIN_PASSWORD})
    assert r.status_code == 200


def test_rule_c_bearer_token_of_non_admin_password_login_is_not_a_way_around(
    client: TestClient, set_oidc_active: Callable[[bool], None], make_user: Callable[..., int]
) -> None:
    """A token obtained before activation still works until it expires (it is short-lived);
    but no new one can be had."""
    make_user("dev1", password=PASSWORD)
    set_oidc_active(True)
    r = client.post("/api/v1/auth/local", json={"username": "dev1", "password": PASSWORD})
    assert r.status_code == 409


@pytest.mark.parametrize("active", [False, True])
def test_rule_d_new_users_are_created_without_password_by_default(
    client: TestClient,
    admin_headers: dict[str, str],
    set_oidc_active: Callable[[bool], None],
    active: bool,
) -> None:
    set_oidc_active(active)
    r = _create(client, admin_headers, username="dev1", email="dev1@example.com")
    assert r.status_code == 201
    body = r.json()
    assert body["has_password"] is False
    assert body["password_allowed"] is (not active)
    if active:
        assert "managed by" in body["password_policy"]


def test_rule_e_hashes_are_kept_and_deactivation_restores_sign_in(
    client: TestClient,
    set_oidc_active: Callable[[bool], None],
    make_user: Callable[..., int],
    runtime: Runtime,
) -> None:
    uid = make_user("dev1", password=PASSWORD)
    with runtime.db.session() as db:
        before = db.get(User, uid).password_hash  # type: ignore[union-attr]
    set_oidc_active(True)
    assert (
        client.post(
            "/api/v1/auth/local", json={"username": "dev1", "password": PASSWORD}
        ).status_code
        == 409
    )
    with runtime.db.session() as db:
        assert db.get(User, uid).password_hash == before  # type: ignore[union-attr]
    set_oidc_active(False)
    assert (
        client.post(
            "/api/v1/auth/local", json={"username": "dev1", "password": PASSWORD}
        ).status_code
        == 200
    )
