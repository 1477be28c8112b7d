"""The console's home page: what an administrator sees at a glance, drawn on the server."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from gatehouse.domain import environments
from gatehouse.domain.audit import Actor
from gatehouse.runtime import Runtime
from gatehouse.store.models import AuditEvent, utcnow
from helpers import console_login


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """SQLite only: the figures have their unit test on both databases (test_dashboard)."""
    return sqlite_url


def _seed(runtime: Runtime) -> None:
    now = utcnow()
    with runtime.db.session() as db:
        for minutes, outcome, reason in (
            (10, "success", None),
            (20, "success", None),
            (30, "failure", "unknown_user"),
            (90, "failure", "unknown_user"),
            (95, "failure", "access_denied"),
            (100, "failure", "idp_unavailable"),
        ):
            db.add(
                AuditEvent(
                    at=now - timedelta(minutes=minutes),
                    actor="anonymous",
                    action="login.oidc",
                    outcome=outcome,
                    reason=reason,
                    details={},
                )
            )
        db.add(
            AuditEvent(
                at=now,
                actor="session",
                action="session.refresh_failed",
                outcome="failure",
                reason="idp_refused_refresh",
                details={},
            )
        )
        environments.register(
            db,
            Actor.system("t"),
            name="dev",
            base_url="https://dev.example.com",
            kind="dev",
            allow_insecure_http=False,
        )


def test_admins_see_sso_environments_charts_and_problems(
    client: TestClient, local_admin: int, runtime: Runtime
) -> None:
    _seed(runtime)
    console_login(client)
    page = client.get("/")
    assert page.status_code == 200
    html = page.text
    assert "<h1>Overview</h1>" in html
    assert re.search(r'id="live-version">none<', html)  # single sign-on is off
    assert "dev" in html and "status-pending" in html and "has not reported" in html
    # the hourly chart: two hours with sign-ins, successes and failures as separate bars
    hourly = html.split('id="signins-chart"')[1].split("</figure>")[0]
    # the six seeded, and root's own password sign-in
    assert "7 sign-ins in the last 24 hours, 4 failed." in hourly
    assert hourly.count('class="ok"') >= 1 and hourly.count('class="fail"') >= 1
    reasons = html.split('id="reasons-chart"')[1].split("</figure>")[0]
    assert re.findall(r">(\w+)</text>", reasons)[::2] == [
        "unknown_user",
        "access_denied",
        "idp_unavailable",
    ]
    problems = html.split('id="problems"')[1].split("</section>")[0]
    assert "Session refresh failed" in problems and "idp_refused_refresh" in problems
    assert "Identity provider unreachable at sign-in" in problems
    # drawn on the server, under the strict CSP: no script, no inline style, nothing remote
    assert "style=" not in html and "<script>" not in html
    assert "unsafe-inline" not in page.headers["content-security-policy"]


def test_the_home_page_is_for_administrators(
    client: TestClient, make_user: Callable[..., int]
) -> None:
    make_user("dev1", password="dev1-password-123", local_admin=False)
    assert client.get("/", follow_redirects=False).headers["location"] == "/login?return_to=%2F"
    console_login(client, "dev1", "dev1-password-123")
    assert client.get("/", follow_redirects=False).headers["location"] == "/account"
