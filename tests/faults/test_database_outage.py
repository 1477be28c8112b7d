"""Issue 9 item 5: the real PostgreSQL stops and restarts during a run.

While it is down the API answers 503 ``database_unavailable`` (JSON, no trace) and pages say so;
a write cut off mid-transaction leaves nothing half-written (a user and its audit row commit
together or not at all); when the server is back, Gatehouse serves again without a restart, and
no session, user or audit row is lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pg_fault_server import OwnPostgres
from sqlalchemy import event, func, select

from gatehouse.runtime import Runtime
from gatehouse.store.models import AuditEvent, User
from gatehouse.store.models import Session as SessionRow
from gatehouse.web.app import create_app
from helpers import ADMIN_PASSWORD, PUBLIC_URL, console_login, make_settings

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_runtime(tmp_path: Path, own_postgres: OwnPostgres) -> Iterator[Runtime]:
    rt = Runtime(make_settings(tmp_path, own_postgres.url))
    rt.start()
    rt.users.ttl = 0.0
    rt.bootstrap_admin("root", ADMIN_PASSWORD)
    try:
        yield rt
    finally:
        rt.close()


def counts(rt: Runtime) -> dict[str, Any]:
    with rt.db.session() as db:
        return {
            "users": sorted(db.scalars(select(User.username))),
            "audit": db.scalar(select(func.count()).select_from(AuditEvent)),
            "sessions": sorted(
                db.scalars(select(SessionRow.id_hash).where(SessionRow.revoked_at.is_(None)))
            ),
        }


def assert_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"]
    body = response.json()
    assert body["error"] == "database_unavailable"
    assert "not reachable" in body["detail"]
    assert "Traceback" not in response.text and "psycopg" not in response.text


def test_postgres_stop_and_restart_503_then_resume_with_nothing_lost_or_half_written(
    pg_runtime: Runtime, own_postgres: OwnPostgres
) -> None:
    app = create_app(runtime=pg_runtime)
    with TestClient(app, base_url=PUBLIC_URL) as api, TestClient(app, base_url=PUBLIC_URL) as web:
        token = api.post(
            "/api/v1/auth/local", json={"username": "root", "password": ADMIN_PASSWORD}
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        created = api.post(
            "/api/v1/users",
            json={"username": "alice", "email": "alice@example.com", "display_name": "Alice"},
            headers=headers,
        )
        assert created.status_code == 201, created.text
        assert console_login(web).status_code == 303
        assert web.get("/api/v1/me").status_code == 200
        before = counts(pg_runtime)
        assert before["users"] == ["alice", "root"] and len(before["sessions"]) == 1

        # -- the database goes away --------------------------------------------------------
        own_postgres.stop()
        assert_unavailable(api.get("/api/v1/users", headers=headers))
        assert_unavailable(
            api.post(
                "/api/v1/users",
                json={"username": "bob", "display_name": "Bob"},
                headers=headers,
            )
        )
        assert_unavailable(
            api.post("/api/v1/auth/local", json={"username": "root", "password": ADMIN_PASSWORD})
        )
        assert_unavailable(api.get("/readyz"))
        assert api.get("/healthz").status_code == 200  # alive: the process is fine
        page = web.get("/users")
        assert page.status_code == 503 and "text/html" in page.headers["content-type"]
        assert "database is not reachable" in page.text and "Traceback" not in page.text

        # -- it comes back: same process, same pool ------------------------------------------
        own_postgres.start()
        assert api.get("/readyz").status_code == 200
        assert api.get("/api/v1/users", headers=headers).status_code == 200
        assert web.get("/api/v1/me").json()["username"] == "root"  # the session survived
        after = counts(pg_runtime)
        assert after["users"] == before["users"]  # bob was never half-created
        assert after["sessions"] == before["sessions"]
        assert after["audit"] >= before["audit"]


def test_write_cut_off_mid_transaction_leaves_neither_user_nor_audit_row(
    pg_runtime: Runtime, own_postgres: OwnPostgres
) -> None:
    """The server dies between the user INSERT and its audit INSERT (same transaction)."""
    app = create_app(runtime=pg_runtime)
    with TestClient(app, base_url=PUBLIC_URL) as api:
        token = api.post(
            "/api/v1/auth/local", json={"username": "root", "password": ADMIN_PASSWORD}
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        before = counts(pg_runtime)
        seen: list[str] = []

        def crash_on_audit(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if statement.startswith("INSERT INTO audit_events") and any(
                s.startswith("INSERT INTO users") for s in seen
            ):
                own_postgres.stop("immediate")  # the database dies right now
            seen.append(statement)

        event.listen(pg_runtime.db.engine, "before_cursor_execute", crash_on_audit)
        try:
            response = api.post(
                "/api/v1/users",
                json={"username": "carol", "display_name": "Carol"},
                headers=headers,
            )
        finally:
            event.remove(pg_runtime.db.engine, "before_cursor_execute", crash_on_audit)
        assert any(s.startswith("INSERT INTO users") for s in seen)
        assert_unavailable(response)
        own_postgres.start()
        after = counts(pg_runtime)
        assert "carol" not in after["users"]
        assert after == before  # no user, no audit row, no session lost
        again = api.post(
            "/api/v1/users", json={"username": "carol", "display_name": "Carol"}, headers=headers
        )
        assert again.status_code == 201, again.text  # and the retry succeeds, no restart
