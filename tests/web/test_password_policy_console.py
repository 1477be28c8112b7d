"""The password policy table (a)-(e) through the console forms, in both modes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from gatehouse.domain.users import find_by_username
from gatehouse.runtime import Runtime
from helpers import console_login, csrf_from

PASSWORD = "user-password-1234"


@pytest.fixture
def admin_client(client: TestClient, local_admin: int) -> TestClient:
    console_login(client)
    return client


def _create(client: TestClient, **fields: str) -> object:
    token = csrf_from(client.get("/users/new").text)
    return client.post("/users/new", data={"csrf_token": token, **fields}, follow_redirects=False)


@pytest.mark.parametrize("active", [False, True])
def test_rule_a_console_create_non_admin_with_password(
    admin_client: TestClient,
    set_oidc_active: Callable[[bool], None],
    runtime: Runtime,
    active: bool,
) -> None:
    set_oidc_active(active)
    r = _create(admin_client, username="dev1", password=PASSWORD)
    with runtime.db.session() as db:
        created = find_by_username(db, "dev1")
    if active:
        assert r.status_code == 409
        assert (
            "only local admins have a Gatehouse password" in r.text
            or "created without a password" in r.text
        )
        assert 'id="err-password"' in r.text  # inline, next to the field
        assert created is None
    else:
        assert r.status_code == 303
        assert created is not None and created.password_hash is not None


@pytest.mark.parametrize("active", [False, True])
def test_rule_a_console_create_local_admin_with_password(
    admin_client: TestClient,
    set_oidc_active: Callable[[bool], None],
    active: bool,
) -> None:
    set_oidc_active(active)
    r = _create(admin_client, username="ops2", password=PASSWORD, local_admin="on")
    assert r.status_code == 303


@pytest.mark.parametrize("active", [False, True])
def test_rule_b_console_set_password_of_non_admin(
    admin_client: TestClient,
    set_oidc_active: Callable[[bool], None],
    make_user: Callable[..., int],
    active: bool,
) -> None:
    uid = make_user("dev1")
    set_oidc_active(active)
    page = admin_client.get(f"/users/{uid}")
    if active:
        # The form is replaced by the reason.
        assert 'id="password-managed"' in page.text and 'id="set-password"' not in page.text
    token = csrf_from(page.text)
    r = admin_client.post(
        f"/users/{uid}/password",
        data={
            "csrf_token": token,
            "password": PASSWORD,
            "confirm_password": PASSWORD,
        },
        follow_redirects=False,
    )
    assert r.status_code == (409 if active else 303)
    if active:
        assert "Only local admins can have a password" in r.text


@pytest.mark.parametrize("active", [False, True])
def test_rule_c_console_password_sign_in_of_non_admin(
    client: TestClient,
    set_oidc_active: Callable[[bool], None],
    make_user: Callable[..., int],
    active: bool,
) -> None:
    make_user("dev1", password=PASSWORD)
    set_oidc_active(active)
    r = console_login(client, "dev1", PASSWORD)
    if active:
        assert r.status_code == 409
        assert "Sign in with" in r.text
    else:
        assert r.status_code == 303


def test_rule_c_console_local_admin_still_signs_in_while_active(
    client: TestClient, local_admin: int, set_oidc_active: Callable[[bool], None]
) -> None:
    set_oidc_active(True)
    assert console_login(client).status_code == 303


@pytest.mark.parametrize("active", [False, True])
def test_rule_d_console_creates_users_without_password_by_default(
    admin_client: TestClient,
    set_oidc_active: Callable[[bool], None],
    runtime: Runtime,
    active: bool,
) -> None:
    set_oidc_active(active)
    form = admin_client.get("/users/new").text
    if active:
        assert "Passwords are managed by" in form
    assert _create(admin_client, username="dev1").status_code == 303
    with runtime.db.session() as db:
        user = find_by_username(db, "dev1")
        assert user is not None and user.password_hash is None


def test_rule_e_console_deactivation_restores_password_sign_in(
    client: TestClient,
    set_oidc_active: Callable[[bool], None],
    make_user: Callable[..., int],
) -> None:
    make_user("dev1", password=PASSWORD)
    set_oidc_active(True)
    assert console_login(client, "dev1", PASSWORD).status_code == 409
    set_oidc_active(False)
    assert console_login(client, "dev1", PASSWORD).status_code == 303


def test_last_admin_controls_are_disabled_and_refused_in_console(
    admin_client: TestClient, local_admin: int
) -> None:
    page = admin_client.get(f"/users/{local_admin}")
    assert "last enabled local admin" in page.text
    r = admin_client.post(
        f"/users/{local_admin}/status",
        data={"csrf_token": csrf_from(page.text), "status": "disabled"},
        follow_redirects=False,
    )
    assert r.status_code == 409
    assert 'id="err-status"' in r.text


def test_users_page_search_sort_and_pagination(
    admin_client: TestClient, make_user: Callable[..., int]
) -> None:
    for i in range(30):
        make_user(f"user{i:02d}")
    page1 = admin_client.get("/users?q=user&sort=username")
    assert "30 users · page 1 of 2" in page1.text
    assert "user00" in page1.text and "user29" not in page1.text
    page2 = admin_client.get("/users?q=user&sort=username&page=2")
    assert "user29" in page2.text
    desc = admin_client.get("/users?q=user&sort=-username")
    assert desc.text.index("user29") < desc.text.index("user28")
    empty = admin_client.get("/users?q=nobody")
    assert "No user matches" in empty.text


def test_first_run_admin_must_change_password_and_file_is_removed(
    client: TestClient, runtime: Runtime
) -> None:
    password = runtime.ensure_initial_admin()
    assert password
    path = runtime.settings.data_dir / "initial-admin-password"
    assert path.read_text().strip() == password
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    r = console_login(client, "admin", password)
    assert r.headers["location"] == "/account/password"
    assert client.get("/users", follow_redirects=False).headers["location"] == "/account/password"
    token = csrf_from(client.get("/account/password").text)
    r = client.post(
        "/account/password",
        data={
            "csrf_token": token,
            "current_password": password,
            "new_password": "a-new-admin-password",
            "confirm_password": "a-new-admin-password",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert not path.exists()
    assert client.get("/users", follow_redirects=False).status_code == 200
