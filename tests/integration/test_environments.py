"""A console, two environment servers (real `gatehouse serve` processes) and the real IdP.

The tests share one cluster and run in file order: password sign-in and propagation first,
then OIDC activation (refused while prod reports an old version), the web flow on each
environment, the console going away, and finally deregistration.
"""

from __future__ import annotations

import base64
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from gatehouse.domain.crypto import SecretBox
from idp.fixture import OpenIDProvider, free_port
from idp.plugin import require_idp
from idp_helpers import idp_config

INTERVAL = 1.0
ROOT_PASSWORD = "root-break-glass-password-1"
CURRENT = (
    "platform_server=11.18.1,lifetime=11.16.1,service_studio=11.53.13,"
    "integration_studio=11.14.17,factory_configuration=11.1.1"
)
OLD = CURRENT.replace("platform_server=11.18.1", "platform_server=11.17.0")
CLI = [sys.executable, "-m", "gatehouse.cli"]


@dataclass
class Server:
    name: str
    port: int
    data: Path
    env: dict[str, str]
    args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *extra: str) -> None:
        log = (self.data / "server.log").open("ab")
        self.proc = subprocess.Popen(
            [*CLI, "serve", "--port", str(self.port), *self.args, *extra],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for(lambda: _healthy(self.url), 30, f"{self.name} did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for(check: Callable[[], Any], timeout: float, message: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.1)


def base_env(data: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    env.update(
        GATEHOUSE_DATA_DIR=str(data),
        GATEHOUSE_PUBLIC_URL=f"http://127.0.0.1:{port}",
        GATEHOUSE_ALLOW_INSECURE_HTTP="true",
        GATEHOUSE_LOG_LEVEL="WARNING",
        GATEHOUSE_SECRET_KEY=f"secret-of-{data.name}-" + "k" * 32,
        **extra,
    )
    return env


@dataclass
class Cluster:
    console: Server
    dev: Server
    prod: Server
    idp: OpenIDProvider
    admin: dict[str, str]

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {**self.admin, **kw.pop("headers", {})}
        return httpx.request(method, f"{self.console.url}{path}", headers=headers, **kw)

    @property
    def envs(self) -> tuple[Server, Server]:
        return self.dev, self.prod


def password_token(server: Server, username: str, password: str) -> str | None:
    response = httpx.post(
        f"{server.url}/api/v1/auth/local", json={"username": username, "password": password}
    )
    return str(response.json()["access_token"]) if response.status_code == 200 else None


def me(server: Server, token: str) -> httpx.Response:
    return httpx.get(f"{server.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"})


def sync_status(server: Server) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{server.url}/api/v1/sync/status").json()
    return body


def web_sign_in(server: Server, provider: OpenIDProvider, username: str) -> httpx.Response:
    """The browser flow on ``server``: start, IdP login form, callback, then /api/v1/me."""
    with httpx.Client(base_url=server.url, follow_redirects=False) as browser:
        start = browser.get("/auth/oidc/start", params={"return_to": "/"})
        assert start.status_code == 302, start.text
        location = provider.login(
            start.headers["location"],
            username,
            f"{username}-password",
            client=provider.new_browser(),
        )
        parts = urlsplit(location)
        assert f"{parts.scheme}://{parts.netloc}" == server.url, location
        done = browser.get(f"{parts.path}?{parts.query}")
        assert done.status_code in (302, 303), done.text
        return browser.get("/api/v1/me")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_idp()
    root = tmp_path_factory.mktemp("cluster")
    ports = {name: free_port() for name in ("console", "dev", "prod")}
    provider = OpenIDProvider(
        web_redirect_uris=[f"http://127.0.0.1:{p}/auth/oidc/callback" for p in ports.values()]
    )
    provider.start()
    servers: list[Server] = []
    try:
        data = root / "console"
        data.mkdir()
        console = Server("console", ports["console"], data, base_env(data, ports["console"]))
        subprocess.run(
            [*CLI, "admin", "bootstrap", "--username", "root", "--password-stdin"],
            input=ROOT_PASSWORD + "\n",
            env=console.env,
            check=True,
            capture_output=True,
            text=True,
        )
        console.start()
        servers.append(console)
        token = password_token(console, "root", ROOT_PASSWORD)
        admin = {"Authorization": f"Bearer {token}"}
        envs: dict[str, Server] = {}
        for name, versions in (("dev", CURRENT), ("prod", OLD)):
            reg = httpx.post(
                f"{console.url}/api/v1/environments",
                json={"name": name, "base_url": f"http://127.0.0.1:{ports[name]}", "kind": name},
                headers=admin,
            )
            assert reg.status_code == 201, reg.text
            data = root / name
            data.mkdir()
            server = Server(
                name,
                ports[name],
                data,
                base_env(
                    data,
                    ports[name],
                    GATEHOUSE_SYNC_INTERVAL_SECONDS=str(INTERVAL),
                    GATEHOUSE_COMPONENT_VERSIONS=versions,
                ),
                ["--role", "environment", "--console", console.url],
            )
            server.start("--join-token", reg.json()["join_token"])
            servers.append(server)
            envs[name] = server
        cluster = Cluster(console, envs["dev"], envs["prod"], provider, admin)
        for server in cluster.envs:
            wait_for(lambda s=server: sync_status(s)["revision"] is not None, 15, "no sync")
        yield cluster
    finally:
        for server in reversed(servers):
            server.stop()
        provider.stop()


def test_user_created_on_console_signs_in_on_both_environments_within_one_interval(
    cluster: Cluster,
) -> None:
    created = cluster.api(
        "POST",
        "/api/v1/users",
        json={"username": "dana", "email": "dana@example.com", "password": "dana-password-123"},
    )
    assert created.status_code == 201, created.text
    started = time.monotonic()
    for server in cluster.envs:
        wait_for(
            lambda s=server: password_token(s, "dana", "dana-password-123"),
            2 * INTERVAL + 2,
            f"dana cannot sign in on {server.name}",
        )
    assert time.monotonic() - started < 2 * INTERVAL + 2


def test_role_change_at_console_propagates_per_environment(cluster: Cluster) -> None:
    user = cluster.api("GET", "/api/v1/users", params={"q": "dana"}).json()["items"][0]
    put = cluster.api(
        "PUT",
        f"/api/v1/users/{user['id']}/roles",
        json={
            "roles": [
                {"role": "Administrator", "environment": "dev"},
                {"role": "Viewer", "environment": "prod"},
            ]
        },
    )
    assert put.status_code == 200, put.text
    expected = {"dev": (200, "Administrator"), "prod": (403, "Viewer")}
    for server in cluster.envs:
        token = password_token(server, "dana", "dana-password-123")
        assert token is not None
        status, role = expected[server.name]

        def propagated(s: Server = server, t: str = token, r: str = role) -> bool:
            return [g["role"] for g in me(s, t).json()["roles"]] == [r]

        wait_for(propagated, 2 * INTERVAL + 2, f"roles did not reach {server.name}")
        users = httpx.get(
            f"{server.url}/api/v1/users", headers={"Authorization": f"Bearer {token}"}
        )
        assert users.status_code == status


def test_disabling_at_console_ends_access_on_both_environments(cluster: Cluster) -> None:
    tokens = {s.name: password_token(s, "dana", "dana-password-123") for s in cluster.envs}
    user = cluster.api("GET", "/api/v1/users", params={"q": "dana"}).json()["items"][0]
    assert (
        cluster.api("PATCH", f"/api/v1/users/{user['id']}", json={"status": "disabled"}).status_code
        == 200
    )
    started = time.monotonic()
    for server in cluster.envs:
        token = tokens[server.name]
        assert token is not None
        wait_for(
            lambda s=server, t=token: me(s, t).status_code == 401,
            2 * INTERVAL + 2,
            f"dana still has access on {server.name}",
        )
        assert password_token(server, "dana", "dana-password-123") is None
    assert time.monotonic() - started < 2 * INTERVAL + 2


def test_activation_refused_while_prod_reports_an_old_version_then_allowed(
    cluster: Cluster,
) -> None:
    current = cluster.api("GET", "/api/v1/idp")
    put = cluster.api(
        "PUT",
        "/api/v1/idp",
        json=idp_config(cluster.idp),
        headers={"If-Match": current.headers["ETag"]},
    )
    assert put.status_code == 200, put.text
    test = cluster.api("POST", "/api/v1/idp/test")
    assert test.status_code == 200 and test.json()["ok"], test.text
    report = cluster.api("GET", "/api/v1/environments/prerequisites").json()
    marks = {e["name"]: (e["mark"], e["failing_components"]) for e in report["environments"]}
    assert marks == {"dev": ("pass", []), "prod": ("fail", ["platform_server"])}
    refused = cluster.api("POST", "/api/v1/idp/activate")
    assert refused.status_code == 409, refused.text
    assert "prod reports platform_server 11.17.0, needs >= 11.18.1" in refused.text

    cluster.prod.stop()
    cluster.prod.env["GATEHOUSE_COMPONENT_VERSIONS"] = CURRENT
    cluster.prod.start()  # no join token: it keeps its credential
    wait_for(
        lambda: cluster.api("GET", "/api/v1/environments/prerequisites").json()["ok"],
        10,
        "prod never reported its new versions",
    )
    allowed = cluster.api("POST", "/api/v1/idp/activate")
    assert allowed.status_code == 200, allowed.text


def test_idp_user_signs_in_through_each_environment_web_flow(cluster: Cluster) -> None:
    created = cluster.api(
        "POST", "/api/v1/users", json={"username": "alice", "email": "alice@example.com"}
    )
    assert created.status_code == 201, created.text
    for server in cluster.envs:
        wait_for(
            lambda s=server: sync_status(s)["revision"] is not None and _has_user(s, "alice"),
            2 * INTERVAL + 2,
            f"alice did not reach {server.name}",
        )
        response = web_sign_in(server, cluster.idp, "alice")
        assert response.status_code == 200, response.text
        assert response.json()["username"] == "alice"


def _has_user(server: Server, username: str) -> bool:
    token = password_token(server, "root", ROOT_PASSWORD)
    users = httpx.get(
        f"{server.url}/api/v1/users",
        params={"q": username},
        headers={"Authorization": f"Bearer {token}"},
    )
    return users.status_code == 200 and users.json()["total"] == 1


def test_environments_keep_signing_in_and_report_staleness_without_console(
    cluster: Cluster,
) -> None:
    cluster.console.stop()
    try:
        for server in cluster.envs:
            status = wait_for(
                lambda s=server: (st := sync_status(s))["stale"] and st,
                3 * INTERVAL + 10,
                f"{server.name} never reported staleness",
            )
            assert status["last_error"] == "console_unreachable"
            assert status["seconds_since_sync"] > 3 * INTERVAL
            assert httpx.get(f"{server.url}/readyz").status_code == 200
            assert password_token(server, "root", ROOT_PASSWORD) is not None
            response = web_sign_in(server, cluster.idp, "alice")
            assert response.status_code == 200, response.text
    finally:
        cluster.console.start()


def test_deregistered_environment_gets_401(cluster: Cluster) -> None:
    envs = cluster.api("GET", "/api/v1/environments").json()["items"]
    dev_id = next(e["id"] for e in envs if e["name"] == "dev")
    credential = _stored_credential(cluster.dev)
    changes = f"{cluster.console.url}/api/v1/sync/changes"
    auth = {"Authorization": f"Bearer {credential}"}
    assert httpx.get(changes, headers=auth).status_code == 200
    assert cluster.api("DELETE", f"/api/v1/environments/{dev_id}").status_code == 204
    assert httpx.get(changes, headers=auth).status_code == 401
    wait_for(
        lambda: sync_status(cluster.dev)["last_error"] == "credential_rejected",
        2 * INTERVAL + 2,
        "dev did not notice its deregistration",
    )


def _stored_credential(server: Server) -> str:
    """The credential as the environment keeps it: encrypted under its own key."""
    import json

    with sqlite3.connect(server.data / "gatehouse.db") as conn:
        (raw,) = conn.execute("SELECT value FROM key_values WHERE key='sync.credential'").fetchone()
    blob = base64.b64decode(json.loads(raw)["credential_enc"])
    box = SecretBox(server.env["GATEHOUSE_SECRET_KEY"].encode())
    assert b"ghe_" not in blob
    return box.decrypt_str(blob, context="sync-credential")
