"""End to end: real nginx in front of small apps, Gatehouse as their user provider, a full sign-in
through the real oidc-provider.

Topology (one host, as docs/forward-auth-nginx.md prescribes for the host-only session cookie):

    browser ──> nginx :N ──/auth/, /login, /static/──────────> Gatehouse (uvicorn :G)
                       ├──/ (auth_request /auth/verify)────────> echo app (uvicorn :A)
                       └──/mw/ (no auth_request)───────────────> echo app + GatehouseAuthMiddleware
                                                                  (verifies against :G directly)
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gatehouse.domain import apps
from gatehouse.domain.audit import Actor
from gatehouse.domain.users import RoleGrant
from gatehouse.integrations.asgi import GatehouseAuthMiddleware
from gatehouse.runtime import Runtime
from gatehouse.web.app import create_app
from helpers import make_settings, serving
from idp.fixture import OpenIDProvider, free_port
from idp_helpers import save_idp_config

pytestmark = [pytest.mark.nginx, pytest.mark.idp]

#: The Cookie header without Gatehouse's session cookie (as in docs/forward-auth-nginx.md).
COOKIE_REGEX = (
    '"~^(?<before>(?:.*;\\s*)?)(?:__Host-)?gatehouse_session=[^;]*(?:;\\s*)?(?<after>.*)$"'
)
NGINX_CONF = """
worker_processes 1;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;

    upstream gatehouse {{ server 127.0.0.1:{gatehouse_port}; }}
    upstream echo      {{ server 127.0.0.1:{app_port}; }}
    upstream mw        {{ server 127.0.0.1:{mw_port}; }}

    map $http_cookie $cookie_without_gatehouse {{
        default $http_cookie;
        {cookie_regex} "$before$after";
    }}

    server {{
        listen 127.0.0.1:{nginx_port};

        location ~ ^/(auth/|login|logout|static/|account|api/) {{
            proxy_pass http://gatehouse;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Forwarded-Uri $request_uri;
        }}

        location = /_gatehouse/verify {{
            internal;
            proxy_pass http://gatehouse/auth/verify;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Forwarded-Uri $request_uri;
        }}

        location = /_gatehouse/verify-developer {{
            internal;
            proxy_pass http://gatehouse/auth/verify?role=Developer;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Host $http_host;
        }}

        location @gatehouse_sign_in {{
            rewrite ^ /auth/verify?redirect=1? break;
            proxy_pass http://gatehouse;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Forwarded-Uri $request_uri;
        }}

        location /mw/ {{
            proxy_pass http://mw;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}

        location /admin-only/ {{
            auth_request /_gatehouse/verify-developer;
            error_page 401 = @gatehouse_sign_in;
            proxy_pass http://echo;
        }}

        location / {{
            auth_request /_gatehouse/verify;
            error_page 401 = @gatehouse_sign_in;
            auth_request_set $gatehouse_user  $upstream_http_x_gatehouse_user;
            auth_request_set $gatehouse_id    $upstream_http_x_gatehouse_user_id;
            auth_request_set $gatehouse_email $upstream_http_x_gatehouse_email;
            auth_request_set $gatehouse_roles $upstream_http_x_gatehouse_roles;
            proxy_set_header X-Gatehouse-User    $gatehouse_user;
            proxy_set_header X-Gatehouse-User-Id $gatehouse_id;
            proxy_set_header X-Gatehouse-Email   $gatehouse_email;
            proxy_set_header X-Gatehouse-Roles   $gatehouse_roles;
            proxy_set_header Cookie $cookie_without_gatehouse;
            proxy_set_header Host $http_host;
            proxy_pass http://echo;
        }}
    }}
}}
"""


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None
    )
    if found is None:
        message = "nginx is not installed (apt-get install nginx-light); .ci/run installs it"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def serve(app: Any, port: int) -> AbstractContextManager[None]:
    """Serve an ASGI app with uvicorn in a thread, behind nginx (proxy headers trusted)."""
    return serving(app, port, log_level="warning", lifespan="on", proxy_headers=True)


async def echo(request: Request) -> JSONResponse:
    """What the protected app received: identity headers, cookies, and request.user."""
    user = request.scope.get("user")
    return JSONResponse(
        {
            "path": request.url.path,
            "query": request.url.query,
            "headers": {k: v for k, v in request.headers.items() if k.startswith("x-gatehouse")},
            "cookies": sorted(request.cookies),
            "user": None
            if user is None
            else {
                "username": user.username,
                "email": user.email,
                "roles": list(user.roles),
                "scopes": list(request.auth.scopes),
            },
        }
    )


def echo_app() -> Starlette:
    return Starlette(routes=[Route("/{path:path}", echo)])


class Stack:
    def __init__(self, base: str, gatehouse: str, runtime: Runtime, idp: OpenIDProvider) -> None:
        self.base = base
        self.gatehouse = gatehouse
        self.runtime = runtime
        self.idp = idp


@pytest.fixture
def stack(
    tmp_path: Path, sqlite_url: str, idp_factory: Callable[..., OpenIDProvider]
) -> Iterator[Stack]:
    binary = nginx_binary()
    nginx_port, gatehouse_port, app_port, mw_port = (free_port() for _ in range(4))
    base = f"http://127.0.0.1:{nginx_port}"
    provider = idp_factory(web_redirect_uris=[f"{base}/auth/oidc/callback"])
    runtime = Runtime(
        make_settings(tmp_path, sqlite_url, public_url=base, trusted_proxies="127.0.0.1")
    )
    runtime.start()
    save_idp_config(runtime, provider)
    with runtime.db.session() as db:
        from gatehouse.domain import users

        users.create_user(
            db,
            Actor.system("test"),
            username="alice",
            email="alice@example.com",
            display_name="Alice Anderson",
            roles=[RoleGrant("Developer")],
        )
        users.create_user(
            db,
            Actor.system("test"),
            username="bob",
            email="bob@example.com",
            roles=[RoleGrant("Viewer")],
        )
        apps.register_app(
            db,
            Actor.system("test"),
            name="Echo",
            allowed_origins=[base],
            allow_insecure_http=True,
        )
    gatehouse_url = f"http://127.0.0.1:{gatehouse_port}"
    mw_app = GatehouseAuthMiddleware(echo_app(), gatehouse_url=gatehouse_url, app_url=base)
    conf_dir = tmp_path / "nginx"
    conf_dir.mkdir()
    (conf_dir / "nginx.conf").write_text(
        NGINX_CONF.format(
            tmp=conf_dir,
            cookie_regex=COOKIE_REGEX,
            nginx_port=nginx_port,
            gatehouse_port=gatehouse_port,
            app_port=app_port,
            mw_port=mw_port,
        )
    )
    with (
        serve(create_app(runtime=runtime), gatehouse_port),
        serve(echo_app(), app_port),
        serve(mw_app, mw_port),
    ):
        proc = subprocess.Popen(
            [
                binary,
                "-p",
                str(conf_dir),
                "-c",
                "nginx.conf",
                "-g",
                f"daemon off; pid {conf_dir}/nginx.pid; error_log stderr;",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            try:
                wait_for_port(nginx_port)
            except RuntimeError:
                proc.kill()
                output = proc.communicate(timeout=5)[0].decode(errors="replace")
                pytest.fail(f"nginx did not start:\n{output}", pytrace=False)
            yield Stack(base, gatehouse_url, runtime, provider)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            runtime.close()


def sign_in_through_redirects(
    stack: Stack, browser: httpx.Client, url: str, username: str
) -> httpx.Response:
    """Follow redirects as a browser does, signing in at the IdP on the way."""
    seen: list[str] = []
    for _ in range(12):
        response = browser.get(url)
        seen.append(f"{response.status_code} {url}")
        if response.status_code not in (301, 302, 303, 307, 308):
            return response
        location = urljoin(url, response.headers["location"])
        if location.startswith(stack.idp.base_url):
            location = stack.idp.login(location, username, f"{username}-password", client=browser)
        url = location
    raise AssertionError("too many redirects:\n" + "\n".join(seen))


def test_nginx_auth_request_signs_in_through_idp_and_app_gets_identity_headers(
    stack: Stack,
) -> None:
    browser = stack.idp.new_browser()
    first = browser.get(f"{stack.base}/reports/q3?year=2026&x=a%26b")
    assert first.status_code == 302
    assert first.headers["location"].startswith(f"{stack.base}/auth/oidc/start?return_to=")

    page = sign_in_through_redirects(
        stack, browser, f"{stack.base}/reports/q3?year=2026&x=a%26b", "alice"
    )
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["path"] == "/reports/q3"
    assert body["query"] == "year=2026&x=a%26b"
    headers = body["headers"]
    assert headers["x-gatehouse-user"] == "alice"
    assert headers["x-gatehouse-email"] == "alice@example.com"
    assert headers["x-gatehouse-roles"] == "Developer"
    assert headers["x-gatehouse-user-id"].isdigit()
    # The session cookie reached Gatehouse through nginx, never the app.
    assert not any("gatehouse_session" in name for name in body["cookies"])
    assert any("gatehouse_session" in c.name for c in browser.cookies.jar)

    # Only Gatehouse's cookie is removed: the app's own cookies still arrive.
    browser.cookies.set("app_pref", "dark", domain="127.0.0.1")
    received = browser.get(f"{stack.base}/prefs").json()["cookies"]
    assert "app_pref" in received
    assert not any("gatehouse_session" in name for name in received)

    # A forged identity header from the client is overwritten by nginx.
    forged = browser.get(f"{stack.base}/x", headers={"X-Gatehouse-User": "root"})
    assert forged.json()["headers"]["x-gatehouse-user"] == "alice"


def test_nginx_role_requirement_refuses_a_signed_in_user_without_the_role(stack: Stack) -> None:
    browser = stack.idp.new_browser()
    sign_in_through_redirects(stack, browser, f"{stack.base}/", "bob")
    assert browser.get(f"{stack.base}/anything").json()["headers"]["x-gatehouse-user"] == "bob"
    assert browser.get(f"{stack.base}/admin-only/x").status_code == 403


def test_nginx_never_redirects_to_a_host_that_is_not_registered(stack: Stack) -> None:
    browser = stack.idp.new_browser()
    response = browser.get(f"{stack.base}/x", headers={"Host": "evil.example"})
    assert response.status_code == 400
    assert "location" not in response.headers


def test_asgi_middleware_signs_in_through_idp_and_sets_request_user(stack: Stack) -> None:
    browser = stack.idp.new_browser()
    anonymous_api = browser.get(f"{stack.base}/mw/data", headers={"Accept": "application/json"})
    assert anonymous_api.status_code == 401

    url = f"{stack.base}/mw/dashboard?tab=2"
    first = browser.get(url, headers={"Accept": "text/html"})
    assert first.status_code == 302
    assert "/auth/oidc/start?return_to=" in first.headers["location"]

    browser.headers["Accept"] = "text/html"
    page = sign_in_through_redirects(stack, browser, url, "alice")
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["path"] == "/mw/dashboard"
    assert body["query"] == "tab=2"
    assert body["user"] == {
        "username": "alice",
        "email": "alice@example.com",
        "roles": ["Developer"],
        "scopes": ["authenticated", "Developer"],
    }

    # Logout ends access through nginx at once (the middleware within its 5 s cache).
    account = browser.get(f"{stack.base}/account")
    token = account.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    browser.post(f"{stack.base}/logout", data={"csrf_token": token})
    assert browser.get(f"{stack.base}/x").status_code == 302
