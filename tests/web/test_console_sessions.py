"""Console sessions: cookie flags, id rotation, idle and absolute timeouts, CSRF."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from gatehouse.domain.crypto import sha256_hex
from gatehouse.runtime import Runtime
from gatehouse.store.models import Session as SessionRow
from gatehouse.store.models import User
from gatehouse.web.app import create_app
from helpers import ADMIN_PASSWORD, console_login, csrf_from, make_settings

COOKIE = "gatehouse_session"


def test_session_cookie_is_httponly_and_samesite_lax(client: TestClient, local_admin: int) -> None:
    r = console_login(client)
    assert r.status_code == 303
    header = r.headers["set-cookie"]
    assert header.startswith(f"{COOKIE}=")
    assert "HttpOnly" in header
    assert "SameSite=lax" in header or "SameSite=Lax" in header
    assert "Path=/" in header


@pytest.fixture
def https_client(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[TestClient, Runtime]]:
    rt = Runtime(make_settings(tmp_path, sqlite_url, public_url="https://gatehouse.example.com"))
    rt.start()
    from gatehouse.domain import users
    from gatehouse.domain.audit import Actor

    with rt.db.session() as db:
        users.create_user(
            db, Actor.system("t"), username="root", password=ADMIN_PASSWORD, local_admin=True
        )
    with TestClient(create_app(runtime=rt), base_url="https://gatehouse.example.com") as c:
        yield c, rt
    rt.close()


def test_https_cookie_is_secure_and_host_prefixed(https_client: tuple[TestClient, Runtime]) -> None:
    client, _rt = https_client
    r = console_login(client)
    header = r.headers["set-cookie"]
    assert header.startswith("__Host-gatehouse_session=")
    assert "Secure" in header and "HttpOnly" in header and "Path=/" in header
    assert "Domain" not in header
    assert "Strict-Transport-Security" in client.get("/login").headers


def test_session_id_is_rotated_at_sign_in(
    client: TestClient, local_admin: int, runtime: Runtime
) -> None:
    console_login(client)
    first = client.cookies.get(COOKIE)
    console_login(client)  # signing in again, e.g. after a fixation attempt
    second = client.cookies.get(COOKIE)
    assert first and second and first != second
    with runtime.db.session() as db:
        old = db.get(SessionRow, sha256_hex(first))
        assert old is not None and old.revoked_at is not None


def test_planted_session_cookie_is_not_adopted(client: TestClient, local_admin: int) -> None:
    client.cookies.set(COOKIE, "attacker-chosen-value", domain="127.0.0.1")
    console_login(client)
    assert client.cookies.get(COOKIE) != "attacker-chosen-value"


def test_only_a_hash_of_the_session_id_is_stored(
    client: TestClient, local_admin: int, runtime: Runtime
) -> None:
    console_login(client)
    raw = client.cookies.get(COOKIE)
    with runtime.db.session() as db:
        ids = list(db.scalars(select(SessionRow.id_hash)))
    assert raw not in ids and sha256_hex(raw) in ids


def test_idle_timeout_ends_the_session(
    client: TestClient, local_admin: int, runtime: Runtime
) -> None:
    console_login(client)
    assert client.get("/users", follow_redirects=False).status_code == 200
    with runtime.db.session() as db:
        row = db.scalars(select(SessionRow).where(SessionRow.revoked_at.is_(None))).one()
        row.last_seen_at = row.last_seen_at - timedelta(minutes=31)
    r = client.get("/users", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    with runtime.db.session() as db:
        assert db.scalars(select(SessionRow)).one().revoked_reason == "idle_timeout"


def _idle(runtime: Runtime, minutes: int = 31) -> None:
    with runtime.db.session() as db:
        row = db.scalars(select(SessionRow).where(SessionRow.revoked_at.is_(None))).one()
        row.last_seen_at = row.last_seen_at - timedelta(minutes=minutes)


def test_the_browser_is_told_its_session_ended_after_inactivity(
    client: TestClient, local_admin: int, runtime: Runtime
) -> None:
    console_login(client)
    _idle(runtime)
    r = client.get("/users?q=x", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?return_to=%2Fusers%3Fq%3Dx"
    assert COOKIE not in client.cookies  # the dead cookie is dropped: the notice shows once
    page = client.get(r.headers["location"])
    assert "Your session ended after 30 minutes of inactivity — sign in again." in page.text
    assert "session ended" not in client.get("/login").text


def test_the_notice_names_the_absolute_limit(
    client: TestClient, local_admin: int, runtime: Runtime
) -> None:
    console_login(client)
    with runtime.db.session() as db:
        row = db.scalars(select(SessionRow)).one()
        row.expires_at = row.created_at
    page = client.get("/account")
    assert "Your session reached its limit of 12 hours — sign in again." in page.text


def test_a_form_posted_after_its_session_ended_is_kept_for_the_same_user_only(
    client: TestClient, local_admin: int, runtime: Runtime, make_user: Callable[..., int]
) -> None:
    make_user("other", password="other-password-123", local_admin=True)
    console_login(client)
    form = client.get("/users/new")
    _idle(runtime)
    typed = {
        "csrf_token": csrf_from(form.text),
        "username": "dave",
        "email": "dave@example.com",
        "display_name": "Dave <Davis>",
        "password": "never-kept-password-1",
    }
    r = client.post(
        "/users/new",
        data=typed,
        headers={"Referer": "http://127.0.0.1:8000/users/new"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/login?return_to=%2Fusers%2Fnew"
    notice = client.get("/login").text
    assert "inactivity" in notice and "What you typed is kept" in notice
    with runtime.db.session() as db:  # nothing was created
        assert db.scalar(select(User).where(User.username == "dave")) is None
    draft = client.cookies.get("gatehouse_draft")
    assert draft and "dave" not in draft  # sealed, not readable by the browser

    # another local admin signing in on this browser does not get it
    console_login(client, "other", "other-password-123")
    assert 'id="form-draft"' not in client.get("/users/new").text
    client.post("/logout", data={"csrf_token": csrf_from(client.get("/account").text)})

    console_login(client, return_to="/users/new")
    page = client.get("/users/new")
    assert 'id="form-draft"' in page.text and "filled in again" in page.text
    kept = page.text.split('id="form-draft">')[1].split("</script>")[0]
    assert "dave@example.com" in kept and "never-kept" not in kept and "csrf" not in kept
    assert "<Davis>" not in kept  # escaped inside the script element
    assert 'id="form-draft"' not in client.get("/users/new").text  # put back once


def test_a_forged_form_on_an_ended_session_is_refused_and_nothing_is_kept(
    client: TestClient, local_admin: int, runtime: Runtime
) -> None:
    console_login(client)
    _idle(runtime)
    r = client.post(
        "/users/new", data={"csrf_token": "forged", "username": "x"}, follow_redirects=False
    )
    assert r.status_code == 403 and "gatehouse_draft" not in client.cookies


def test_absolute_lifetime_ends_an_active_session(
    client: TestClient, local_admin: int, runtime: Runtime
) -> None:
    console_login(client)
    with runtime.db.session() as db:
        row = db.scalars(select(SessionRow)).one()
        row.expires_at = row.created_at + timedelta(seconds=1)
        row.created_at = row.created_at - timedelta(hours=12)
        row.expires_at = row.created_at + timedelta(hours=12)
    r = client.get("/users", follow_redirects=False)
    assert r.status_code == 303
    with runtime.db.session() as db:
        assert db.scalars(select(SessionRow)).one().revoked_reason == "expired"


@pytest.mark.parametrize(
    "settings_overrides", [{"session_idle_minutes": 1, "session_max_hours": 2}]
)
def test_timeouts_are_configurable(
    client: TestClient, local_admin: int, runtime: Runtime, settings_overrides: dict[str, Any]
) -> None:
    console_login(client)
    with runtime.db.session() as db:
        row = db.scalars(select(SessionRow)).one()
        assert abs((row.expires_at - row.created_at) - timedelta(hours=2)) < timedelta(seconds=5)
        row.last_seen_at = row.last_seen_at - timedelta(seconds=61)
    assert client.get("/users", follow_redirects=False).status_code == 303


def test_form_without_csrf_token_is_refused_and_changes_nothing(
    client: TestClient, local_admin: int, runtime: Runtime
) -> None:
    console_login(client)
    r = client.post("/users/new", data={"username": "sneaky"}, follow_redirects=False)
    assert r.status_code == 403
    assert "did not come from this site" in r.text
    r = client.post(
        "/users/new", data={"username": "sneaky", "csrf_token": "forged"}, follow_redirects=False
    )
    assert r.status_code == 403
    from gatehouse.domain.users import find_by_username

    with runtime.db.session() as db:
        assert find_by_username(db, "sneaky") is None


def test_cross_site_origin_is_refused(client: TestClient, local_admin: int) -> None:
    console_login(client)
    token = csrf_from(client.get("/users/new").text)
    r = client.post(
        "/users/new",
        data={"username": "x1", "csrf_token": token},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert r.status_code == 403


def test_login_form_needs_csrf_too(client: TestClient, local_admin: int) -> None:
    r = client.post(
        "/login/local",
        data={"username": "root", "password": ADMIN_PASSWORD},
        follow_redirects=False,
    )
    assert r.status_code == 403


def test_cookie_authenticated_api_write_needs_csrf_header(
    client: TestClient, local_admin: int
) -> None:
    console_login(client)
    r = client.post("/api/v1/users", json={"username": "viacookie"})
    assert r.status_code == 403 and r.json()["error"] == "csrf_failed"
    assert client.get("/api/v1/me").status_code == 200  # reads are fine


def test_logout_ends_the_session(client: TestClient, local_admin: int, runtime: Runtime) -> None:
    console_login(client)
    token = csrf_from(client.get("/users").text)
    r = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/users", follow_redirects=False).status_code == 303
    with runtime.db.session() as db:
        assert db.scalars(select(SessionRow)).one().revoked_reason == "logout"


def test_return_to_only_accepts_local_paths(client: TestClient, local_admin: int) -> None:
    r = console_login(client, return_to="//evil.example/x")
    assert r.headers["location"] == "/"
    r = console_login(client, return_to="/audit?x=1")
    assert r.headers["location"] == "/audit?x=1"


def test_activation_of_oidc_ends_password_sessions_of_non_admins(
    client: TestClient,
    make_user: Callable[..., int],
    set_oidc_active: Callable[[bool], None],
    runtime: Runtime,
) -> None:
    make_user("dev1", password="dev1-password-123")
    console_login(client, "dev1", "dev1-password-123")
    assert client.get("/account", follow_redirects=False).status_code == 200
    set_oidc_active(True)
    assert client.get("/account", follow_redirects=False).status_code == 303
