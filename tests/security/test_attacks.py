"""Issue 9, attacker-style: CSRF on every state-changing console route, security headers on every
HTML page, no-store on every API answer, cookie tossing / session fixation, oversized and deeply
nested bodies, unicode tricks in usernames, and no ``Server`` header from ``gatehouse serve``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from security_helpers import app_routes, fill
from sqlalchemy import func, select

from gatehouse.runtime import Runtime
from gatehouse.store.models import AuditEvent, User
from gatehouse.web.app import create_app
from gatehouse.web.deps import session_cookie_name
from helpers import ADMIN_PASSWORD, PUBLIC_URL, console_login, make_settings

#: Not browser forms: the back-channel receiver (its own signed token) and forward auth (a
#: read-only check that answers every method, for reverse proxies).
NOT_BROWSER_FORMS = {"/auth/oidc/backchannel-logout", "/auth/verify"}
#: Public, non-personal, cacheable on purpose (tools fetch them; they carry no secret).
PUBLIC_CACHEABLE = {"/api/v1/auth/idp-config", "/api/v1/auth/jwks"}


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    return sqlite_url


@pytest.fixture
def signed_in(client: TestClient, local_admin: int) -> TestClient:
    response = console_login(client)
    assert response.status_code == 303, response.text
    return client


def audit_count(runtime: Runtime) -> int:
    with runtime.db.session() as db:
        return int(db.scalar(select(func.count()).select_from(AuditEvent)) or 0)


# -- CSRF ------------------------------------------------------------------------------------
def test_every_console_post_without_a_csrf_token_is_refused(
    app: Any, signed_in: TestClient, runtime: Runtime, local_admin: int
) -> None:
    posts = [
        r.path
        for r in app_routes(app)
        if r.method == "POST" and not r.path.startswith("/api/") and r.path not in NOT_BROWSER_FORMS
    ]
    assert "/logout" in posts and "/users/new" in posts and len(posts) >= 20
    before = audit_count(runtime)
    for path in posts:
        url = fill(path, str(local_admin))
        for data in ({}, {"csrf_token": "forged-" + "0" * 60}):
            response = signed_in.post(url, data=data, follow_redirects=False)
            assert response.status_code == 403, (path, response.status_code, response.text[:200])
            assert "csrf_failed" in response.text or "did not come from this site" in response.text
    assert audit_count(runtime) == before  # nothing happened
    assert signed_in.get("/api/v1/me").status_code == 200  # and /logout did not sign us out


def test_cross_site_origin_is_refused_even_with_a_valid_token(
    signed_in: TestClient, runtime: Runtime
) -> None:
    page = signed_in.get("/users/new")
    from helpers import csrf_from

    response = signed_in.post(
        "/users/new",
        data={"csrf_token": csrf_from(page.text), "username": "eve", "display_name": "Eve"},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert response.status_code == 403
    with runtime.db.session() as db:
        assert db.scalar(select(User).where(User.username == "eve")) is None


def test_cookie_authenticated_api_writes_need_the_csrf_header(
    app: Any, signed_in: TestClient, local_admin: int
) -> None:
    writes = [
        r
        for r in app_routes(app)
        if r.path.startswith("/api/v1/")
        and r.method in ("POST", "PUT", "PATCH", "DELETE")
        and not r.path.startswith(("/api/v1/auth/", "/api/v1/sync/"))
        and r.path != "/api/v1/users/unified-login-url"
    ]
    assert len(writes) >= 15
    for route in writes:
        response = signed_in.request(route.method, fill(route.path, str(local_admin)), json={})
        assert response.status_code == 403, (route, response.text)
        assert response.json()["error"] == "csrf_failed"


# -- headers ---------------------------------------------------------------------------------
def _html_pages(app: Any, client: TestClient, user_id: int) -> list[httpx.Response]:
    pages = []
    for route in app_routes(app):
        if route.method != "GET" or route.path.startswith("/api/") or route.in_schema:
            continue
        response = client.get(fill(route.path, str(user_id)), follow_redirects=False)
        if response.headers.get("content-type", "").startswith("text/html"):
            pages.append(response)
    pages.append(client.get("/no/such/page"))  # error pages are pages too
    return pages


def assert_page_headers(response: httpx.Response) -> None:
    where = str(response.request.url)
    csp = response.headers.get("content-security-policy", "")
    directives = {d.strip().split(" ")[0]: d.strip() for d in csp.split(";") if d.strip()}
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, where
    assert directives.get("frame-ancestors") == "frame-ancestors 'none'", where
    assert directives.get("script-src") == "script-src 'self'", where
    assert directives.get("object-src") == "object-src 'none'", where
    assert directives.get("base-uri") == "base-uri 'none'", where
    assert directives.get("form-action", "").startswith("form-action 'self'"), where
    assert response.headers["x-content-type-options"] == "nosniff", where
    assert response.headers["referrer-policy"] in ("no-referrer", "same-origin", "strict-origin")
    assert response.headers["x-frame-options"] == "DENY", where
    assert response.headers["cross-origin-opener-policy"] == "same-origin", where
    assert "no-store" in response.headers["cache-control"], where


def test_security_headers_on_every_html_page_signed_in_and_anonymous(
    app: Any, client: TestClient, local_admin: int
) -> None:
    anonymous = _html_pages(app, client, local_admin)
    assert console_login(client).status_code == 303
    signed_in = _html_pages(app, client, local_admin)
    assert len(signed_in) >= 15, [r.request.url for r in signed_in]
    for response in anonymous + signed_in:
        assert_page_headers(response)
        assert "strict-transport-security" not in response.headers  # http public URL


def test_hsts_on_every_answer_when_the_public_url_is_https(tmp_path: Path, sqlite_url: str) -> None:
    rt = Runtime(make_settings(tmp_path, sqlite_url, public_url="https://gatehouse.example"))
    try:
        with TestClient(create_app(runtime=rt), base_url="https://gatehouse.example") as c:
            for path in ("/login", "/healthz", "/api/v1/me", "/static/gatehouse.css"):
                hsts = c.get(path).headers.get("strict-transport-security", "")
                assert hsts.startswith("max-age=31536000") and "includeSubDomains" in hsts, path
            assert session_cookie_name(rt).startswith("__Host-")
    finally:
        rt.close()


def test_every_api_answer_is_no_store_except_public_metadata(
    app: Any, client: TestClient, admin_headers: dict[str, str], local_admin: int
) -> None:
    checked = 0
    for route in app_routes(app):
        if route.method != "GET" or not route.path.startswith(("/api/", "/auth/verify")):
            continue
        response = client.get(fill(route.path, str(local_admin)), headers=admin_headers)
        cache = response.headers.get("cache-control", "")
        if route.path in PUBLIC_CACHEABLE:
            assert cache.startswith("public"), route
            continue
        assert "no-store" in cache, (route, response.status_code, cache)
        checked += 1
    assert checked >= 15
    for response in (
        client.post("/api/v1/auth/local", json={"username": "root", "password": ADMIN_PASSWORD}),
        client.post("/api/v1/tokens", json={"name": "t"}, headers=admin_headers),
        client.get("/api/v1/nothing-here", headers=admin_headers),
    ):
        assert "no-store" in response.headers["cache-control"], response.request.url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_gatehouse_serve_sends_no_server_header(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "GATEHOUSE_DATA_DIR": str(tmp_path / "data"),
        "GATEHOUSE_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gatehouse.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        answers = [
            health,
            httpx.get(f"http://127.0.0.1:{port}/login"),
            httpx.get(f"http://127.0.0.1:{port}/api/v1/me"),
            httpx.get(f"http://127.0.0.1:{port}/nope"),
        ]
        for response in answers:
            assert "server" not in response.headers, response.headers
            assert "x-powered-by" not in response.headers
    finally:
        proc.terminate()
        proc.wait(timeout=15)


# -- sessions --------------------------------------------------------------------------------
def test_tossed_session_cookie_is_replaced_and_revoked_at_sign_in(
    app: Any, runtime: Runtime, local_admin: int, make_user: Any
) -> None:
    """Cookie tossing: the attacker plants their own valid session in the victim's browser; the
    victim's sign-in must not keep (or reuse) it."""
    name = session_cookie_name(runtime)
    with TestClient(app, base_url=PUBLIC_URL) as attacker:
        assert console_login(attacker).status_code == 303
        planted = attacker.cookies[name]
    with TestClient(app, base_url=PUBLIC_URL) as victim:
        victim.cookies.set(name, planted, domain="127.0.0.1")
        signed = console_login(victim)
        assert signed.status_code == 303
        assert signed.cookies[name] != planted
    with TestClient(app, base_url=PUBLIC_URL) as replay:
        replay.cookies.set(name, planted)
        assert replay.get("/api/v1/me").status_code == 401


def test_attacker_chosen_session_id_is_never_adopted(client: TestClient, local_admin: int) -> None:
    name = "gatehouse_session"
    client.cookies.set(name, "attacker-chosen-session-id", domain="127.0.0.1")
    signed = console_login(client)
    assert signed.status_code == 303
    assert signed.cookies[name] != "attacker-chosen-session-id"
    assert len(signed.cookies[name]) >= 32


# -- hostile bodies --------------------------------------------------------------------------
def test_oversized_bodies_are_refused_with_413_declared_or_streamed(
    client: TestClient, runtime: Runtime
) -> None:
    limit = runtime.settings.max_body_bytes
    declared = client.post(
        "/api/v1/auth/local",
        content=b"x" * (limit + 1),
        headers={"Content-Type": "application/json"},
    )
    assert declared.status_code == 413 and declared.json()["error"] == "payload_too_large"

    def chunks() -> Any:
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    streamed = client.post(
        "/api/v1/auth/local", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413


@pytest.mark.parametrize("depth", [200, 5000, 100_000])
def test_deeply_nested_json_is_a_client_error_not_a_crash(
    client: TestClient, admin_headers: dict[str, str], depth: int
) -> None:
    body = ("[" * depth + "]" * depth).encode()
    for path in ("/api/v1/users", "/api/v1/auth/local", "/api/v1/tokens"):
        response = client.post(
            path, content=body, headers={**admin_headers, "Content-Type": "application/json"}
        )
        assert 400 <= response.status_code < 500, (path, response.status_code, response.text)
        assert response.json()["error"]


@pytest.mark.parametrize(
    "lookalike",
    [
        "\uff32\uff2f\uff2f\uff34",  # fullwidth ROOT
        "ROOT",
        "root\u200b",  # zero-width space
        "r\u043eot",  # Cyrillic o
        "\u202eroot",  # right-to-left override
        "root\u0000",
    ],
)
def test_unicode_lookalike_usernames_never_reach_or_shadow_another_user(
    client: TestClient, admin_headers: dict[str, str], runtime: Runtime, lookalike: str
) -> None:
    response = client.post(
        "/api/v1/users",
        json={"username": lookalike, "display_name": "x", "email": "x@example.com"},
        headers=admin_headers,
    )
    assert response.status_code in (400, 409, 422), (lookalike, response.text)
    with runtime.db.session() as db:
        assert db.scalar(select(func.count()).select_from(User)) == 1


# -- injection and token games ---------------------------------------------------------------
def test_markup_in_user_fields_is_escaped_on_every_page(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    payload = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    created = client.post(
        "/api/v1/users",
        json={"username": "mallory", "display_name": payload, "email": "m@example.com"},
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text
    assert console_login(client).status_code == 303
    for path in ("/users", f"/users/{created.json()['id']}", "/audit"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert "<script>alert(1)" not in page.text and 'onerror="alert' not in page.text, path
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in client.get("/users").text


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_own_access_tokens_refuse_alg_none_and_hs256_with_the_public_key(
    client: TestClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    real = admin_headers["Authorization"].split(" ", 1)[1]
    header, payload, _ = real.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    kid = json.loads(base64.urlsafe_b64decode(header + "=="))["kid"]
    public = json.dumps(runtime.tokens.jwks()["keys"][0]).encode()
    for alg in ("none", "HS256"):
        forged_header = _b64(json.dumps({"alg": alg, "kid": kid, "typ": "at+jwt"}).encode())
        body = _b64(json.dumps({**claims, "sub": claims["sub"]}).encode())
        signing_input = f"{forged_header}.{body}".encode()
        signature = (
            "" if alg == "none" else _b64(hmac.new(public, signing_input, hashlib.sha256).digest())
        )
        token = f"{forged_header}.{body}.{signature}"
        answer = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401 and answer.json()["error"] == "invalid_token", alg
    tampered = (
        f"{header}.{_b64(json.dumps({**claims, 'sub': '999'}).encode())}.{real.split('.')[2]}"
    )
    answer = client.get("/api/v1/me", headers={"Authorization": f"Bearer {tampered}"})
    assert answer.status_code == 401
