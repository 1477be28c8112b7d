"""Issue 9 item 2: rate limits on sign-in, the OIDC start and callback, the token exchange and the
API tokens endpoint — 429 with Retry-After and ``{"error": "rate_limited", "detail"}``, counted
per client address and shared by replicas (one database)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from gatehouse.domain import ratelimit
from gatehouse.runtime import Runtime
from gatehouse.web.app import create_app
from helpers import ADMIN_PASSWORD, PUBLIC_URL, csrf_from


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """The subject is the limit, not the database (the limiter's own tests cover both)."""
    return sqlite_url


#: A frozen clock at the start of a window: a minute boundary mid-test cannot reset the count.
FROZEN = 1_700_000_040.0


@pytest.fixture(autouse=True)
def frozen_limiter(runtime: Runtime) -> None:
    runtime.ratelimit = ratelimit.RateLimiter(runtime.db, clock=lambda: FROZEN)


def exhaust(limit: ratelimit.Limit, call: Callable[[], httpx.Response]) -> httpx.Response:
    """Make ``limit.limit`` calls that are not refused, then return the next answer."""
    for i in range(limit.limit):
        response = call()
        assert response.status_code != 429, f"refused early, at call {i + 1}"
    return call()


def assert_rate_limited(response: httpx.Response, *, json_body: bool = True) -> None:
    assert response.status_code == 429, response.text
    assert 1 <= int(response.headers["retry-after"]) <= 61
    if json_body:
        body = response.json()
        assert body["error"] == "rate_limited" and body["detail"]


def test_api_password_sign_in_is_rate_limited_per_address(
    client: TestClient, local_admin: int
) -> None:
    # correct passwords: no lockout rule applies, only the rate limit
    body = {"username": "root", "password": ADMIN_PASSWORD}
    response = exhaust(ratelimit.SIGN_IN, lambda: client.post("/api/v1/auth/local", json=body))
    assert_rate_limited(response)


def test_api_password_sign_in_limit_applies_before_the_password_check(
    client: TestClient, local_admin: int, runtime: Runtime
) -> None:
    for _ in range(ratelimit.SIGN_IN.limit):
        runtime.ratelimit.hit(ratelimit.SIGN_IN, "testclient")
    right = client.post("/api/v1/auth/local", json={"username": "root", "password": ADMIN_PASSWORD})
    assert_rate_limited(right)


def test_console_sign_in_form_is_rate_limited_with_the_page_and_retry_after(
    client: TestClient, runtime: Runtime
) -> None:
    for _ in range(ratelimit.SIGN_IN.limit):
        runtime.ratelimit.hit(ratelimit.SIGN_IN, "testclient")
    page = client.get("/login")
    response = client.post(
        "/login/local",
        data={"username": "root", "password": "x", "csrf_token": csrf_from(page.text)},
    )
    assert_rate_limited(response, json_body=False)
    assert "Too many requests" in response.text and "<form" in response.text


def test_oidc_start_and_callback_are_rate_limited(client: TestClient) -> None:
    start = exhaust(
        ratelimit.OIDC_START, lambda: client.get("/auth/oidc/start", follow_redirects=False)
    )
    assert start.status_code == 429 and start.headers["retry-after"]
    callback = exhaust(
        ratelimit.CALLBACK,
        lambda: client.get("/auth/oidc/callback?state=x&code=y", follow_redirects=False),
    )
    assert callback.status_code == 429 and callback.headers["retry-after"]
    api = client.get("/auth/oidc/callback?state=x&code=y", headers={"Accept": "application/json"})
    assert_rate_limited(api)


def test_token_exchange_is_rate_limited(client: TestClient) -> None:
    response = exhaust(
        ratelimit.TOKEN_EXCHANGE,
        lambda: client.post("/api/v1/auth/token", json={"id_token": "a.b.c"}),
    )
    assert_rate_limited(response)


def test_api_tokens_endpoint_is_rate_limited(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    response = exhaust(
        ratelimit.API_TOKENS,
        lambda: client.delete("/api/v1/tokens/999999", headers=admin_headers),
    )
    assert_rate_limited(response)
    create = client.post("/api/v1/tokens", json={"name": "ci"}, headers=admin_headers)
    assert_rate_limited(create)


def test_limits_are_per_address_behind_a_trusted_proxy(
    runtime: Runtime, settings_overrides: dict[str, Any]
) -> None:
    runtime.settings.trusted_proxies = "testclient"
    app = create_app(runtime=runtime)
    with TestClient(app, base_url=PUBLIC_URL) as client:

        def call(ip: str) -> httpx.Response:
            return client.post(
                "/api/v1/auth/token", json={"id_token": "a.b.c"}, headers={"X-Forwarded-For": ip}
            )

        assert_rate_limited(exhaust(ratelimit.TOKEN_EXCHANGE, lambda: call("203.0.113.7")))
        assert call("203.0.113.8").status_code != 429  # another client is not punished


def test_two_replicas_share_one_count(runtime: Runtime) -> None:
    other = Runtime(runtime.settings)  # a second replica on the same database
    other.ratelimit = ratelimit.RateLimiter(other.db, clock=lambda: FROZEN)
    try:
        for _ in range(ratelimit.TOKEN_EXCHANGE.limit // 2):
            runtime.ratelimit.hit(ratelimit.TOKEN_EXCHANGE, "198.51.100.1")
            other.ratelimit.hit(ratelimit.TOKEN_EXCHANGE, "198.51.100.1")
        with pytest.raises(Exception, match="Too many requests") as caught:
            other.ratelimit.hit(ratelimit.TOKEN_EXCHANGE, "198.51.100.1")
        assert getattr(caught.value, "code", None) == "rate_limited"
    finally:
        other.close()


def test_public_unified_login_url_is_rate_limited(client: TestClient, runtime: Runtime) -> None:
    for _ in range(ratelimit.UNIFIED_LOGIN_URL.limit):
        runtime.ratelimit.hit(ratelimit.UNIFIED_LOGIN_URL, "testclient")
    response = client.get("/api/v1/users/unified-login-url", params={"return_to": "/"})
    assert_rate_limited(response)
