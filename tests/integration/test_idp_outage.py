"""Issue 9 item 4: the real IdP stops and restarts during a run.

Existing console sessions and Gatehouse tokens go on until their own expiry; a new sign-in shows
a readable "identity provider unavailable" page (503); local admins still sign in; ``/readyz``
stays ready; the failures are counted in ``/metrics``; no session is lost.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from gatehouse.runtime import Runtime
from gatehouse.store.models import AuditEvent, utcnow
from gatehouse.store.models import Session as SessionRow
from helpers import ADMIN_PASSWORD, PUBLIC_URL, console_login
from idp.plugin import IdPFactory
from idp_helpers import configure_idp, id_token_for, me, sign_in

pytestmark = pytest.mark.idp
CALLBACK = "http://127.0.0.1:8000/auth/oidc/callback"


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """SQLite only: the subject is the IdP, not the database."""
    return sqlite_url


def metric(client: TestClient, name: str, **labels: str) -> float:
    text = client.get("/metrics").text
    selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
    match = re.search(rf"^{name}\{{{re.escape(selector)}\}} ([0-9.e+]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def total(client: TestClient, name: str) -> float:
    """The sum of a counter over all its labels."""
    text = client.get("/metrics").text
    return sum(float(v) for v in re.findall(rf"^{name}\{{[^}}]*\}} ([0-9.e+]+)$", text, re.M))


def live_sessions(runtime: Runtime) -> list[str]:
    with runtime.db.session() as db:
        return sorted(db.scalars(select(SessionRow.id_hash).where(SessionRow.revoked_at.is_(None))))


def test_idp_stopped_and_restarted_sessions_and_tokens_survive_new_sign_ins_get_a_503_page(
    app: Any,
    client: TestClient,
    runtime: Runtime,
    admin_headers: dict[str, str],
    idp_factory: IdPFactory,
    make_user: Any,
) -> None:
    provider = idp_factory(web_redirect_uris=[CALLBACK])
    configure_idp(client, admin_headers, provider)
    make_user("alice", email="alice@example.com")
    assert sign_in(client, provider, "alice").status_code == 303
    tool_token = client.post(
        "/api/v1/auth/token", json={"id_token": id_token_for(provider, "alice")["id_token"]}
    ).json()["access_token"]
    sessions_before = live_sessions(runtime)
    assert len(sessions_before) == 1
    # the page of an OIDC session lets its sign-out form go on to the IdP (CSP form-action)
    csp = client.get("/account").headers["content-security-policy"]
    assert f"form-action 'self' {provider.base_url.rstrip('/')}" in csp

    provider.kill()  # -- the IdP is down ---------------------------------------------------
    refresh_failures = metric(client, "gatehouse_oidc_refresh_total", outcome="idp_unavailable")
    with runtime.db.session() as db:  # the tokens are due: the next request must refresh
        db.execute(update(SessionRow).values(access_token_expires_at=utcnow()))
    assert me(client).json()["username"] == "alice"  # refresh failed, session kept
    assert me(client).status_code == 200
    with runtime.db.session() as db:  # audited for the home page, not on every request
        failed = list(
            db.scalars(select(AuditEvent).where(AuditEvent.action == "session.refresh_failed"))
        )
    assert [e.reason for e in failed] == ["idp_unavailable"]
    assert (
        metric(client, "gatehouse_oidc_refresh_total", outcome="idp_unavailable") > refresh_failures
    )
    bearer = client.get("/api/v1/me", headers={"Authorization": f"Bearer {tool_token}"})
    assert bearer.json()["username"] == "alice"  # a tool's token runs to its own expiry
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"

    unreachable = total(client, "gatehouse_idp_unavailable_total")
    with TestClient(app, base_url=PUBLIC_URL) as newcomer:
        # discovery is still cached: the start probes the IdP instead of sending the browser
        # to a dead authorization endpoint, and the page says why
        cached = newcomer.get("/auth/oidc/start", follow_redirects=False)
        assert cached.status_code == 503 and "Identity provider unavailable" in cached.text
        assert "127.0.0.1: connection refused" in cached.text
        runtime.idp.invalidate()  # a replica that never reached the IdP
        page = newcomer.get("/auth/oidc/start", follow_redirects=False)
        assert page.status_code == 503 and page.headers["retry-after"]
        assert "Identity provider unavailable" in page.text
        assert "text/html" in page.headers["content-type"] and "Traceback" not in page.text
        assert total(newcomer, "gatehouse_idp_unavailable_total") > unreachable
        # break-glass: local admins sign in, in the console and through the API
        assert console_login(newcomer).status_code == 303
        assert newcomer.get("/api/v1/me").json()["username"] == "root"
        api = newcomer.post(
            "/api/v1/auth/local", json={"username": "root", "password": ADMIN_PASSWORD}
        )
        assert api.status_code == 200

    provider.restart()  # -- the IdP is back (its in-memory grants are gone) ---------------
    assert set(sessions_before) <= set(live_sessions(runtime))  # no session lost
    assert me(client).json()["username"] == "alice"
    with TestClient(app, base_url=PUBLIC_URL) as later:
        assert sign_in(later, provider, "alice").status_code == 303  # sign-ins work again
    assert client.get("/readyz").status_code == 200
