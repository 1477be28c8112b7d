"""Local password sign-in: lockout and its expiry, IP throttling, timing of unknown users."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from gatehouse.domain import passwords
from gatehouse.runtime import Runtime
from gatehouse.store.models import AuditEvent, LoginAttempt
from helpers import ADMIN_PASSWORD


def _login(client: TestClient, username: str, password: str) -> object:
    return client.post("/api/v1/auth/local", json={"username": username, "password": password})


def test_lockout_after_five_failures_says_when_to_retry(
    client: TestClient, local_admin: int
) -> None:
    for _ in range(5):
        r = _login(client, "root", "wrong-password-123")
        assert r.status_code == 401
        assert r.json()["error"] == "invalid_credentials"
    r = _login(client, "root", ADMIN_PASSWORD)  # even the right password is refused now
    assert r.status_code == 429
    body = r.json()
    assert body["error"] == "locked_out"
    assert "Try again in" in body["detail"]
    assert int(r.headers["Retry-After"]) > 0


def test_lockout_expires_after_the_window(
    client: TestClient, local_admin: int, runtime: Runtime
) -> None:
    for _ in range(5):
        _login(client, "root", "wrong-password-123")
    assert _login(client, "root", ADMIN_PASSWORD).status_code == 429
    with runtime.db.session() as db:  # let five minutes pass
        for attempt in db.scalars(select(LoginAttempt)):
            attempt.at = attempt.at - timedelta(minutes=5, seconds=1)
    assert _login(client, "root", ADMIN_PASSWORD).status_code == 200


def test_success_resets_the_account_counter(client: TestClient, local_admin: int) -> None:
    for _ in range(4):
        _login(client, "root", "wrong-password-123")
    assert _login(client, "root", ADMIN_PASSWORD).status_code == 200
    for _ in range(4):
        _login(client, "root", "wrong-password-123")
    assert _login(client, "root", ADMIN_PASSWORD).status_code == 200


def test_unknown_usernames_lock_out_like_known_ones(client: TestClient, local_admin: int) -> None:
    for _ in range(5):
        assert _login(client, "ghost", "whatever-password").status_code == 401
    r = _login(client, "ghost", "whatever-password")
    assert r.status_code == 429
    assert r.json()["error"] == "locked_out"


def test_client_ip_is_throttled_across_accounts(
    client: TestClient, local_admin: int, runtime: Runtime
) -> None:
    limit = runtime.lockout.ip_attempts
    for i in range(limit):
        _login(client, f"user{i}", "wrong-password-123")
    r = _login(client, "root", ADMIN_PASSWORD)
    assert r.status_code == 429
    assert r.json()["error"] == "rate_limited"


def test_unknown_user_costs_the_same_time_as_known_user(
    production_argon2: Any, client: TestClient, make_user: Callable[..., int]
) -> None:
    make_user("root", password=ADMIN_PASSWORD, local_admin=True)
    assert passwords.hash_password("x" * 12).startswith("$argon2id$v=19$m=65536,t=3,p=4$")

    def timed(username: str) -> float:
        best = 1e9
        for _ in range(3):
            start = time.perf_counter()
            _login(client, username, "wrong-password-123")
            best = min(best, time.perf_counter() - start)
        return best

    known, unknown = timed("root"), timed("nobody-here")
    # Both run one argon2id verification; the unknown path must not be measurably cheaper.
    assert unknown > known * 0.5


def test_sign_in_failures_and_success_are_audited(
    client: TestClient, local_admin: int, runtime: Runtime
) -> None:
    _login(client, "root", "wrong-password-123")
    _login(client, "nobody", "wrong-password-123")
    _login(client, "root", ADMIN_PASSWORD)
    with runtime.db.session() as db:
        rows = list(
            db.scalars(
                select(AuditEvent)
                .where(AuditEvent.action == "login.password")
                .order_by(AuditEvent.id)
            )
        )
    assert [(r.outcome, r.reason) for r in rows] == [
        ("failure", "bad_password"),
        ("failure", "unknown_user"),
        ("success", None),
    ]
    assert all(r.ip for r in rows)


def test_disabled_user_cannot_sign_in(
    client: TestClient, make_user: Callable[..., int], admin_headers: dict[str, str]
) -> None:
    uid = make_user("dev1", password="dev1-password-123")
    client.patch(f"/api/v1/users/{uid}", json={"status": "disabled"}, headers=admin_headers)
    r = _login(client, "dev1", "dev1-password-123")
    assert r.status_code == 401
    assert r.json()["error"] == "account_disabled"


def test_audit_rows_cannot_be_updated_through_any_api(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    for method in ("put", "patch", "delete"):
        r = getattr(client, method)("/api/v1/audit", headers=admin_headers)
        assert r.status_code == 405
