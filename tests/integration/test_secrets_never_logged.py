"""No secret in any log line: a full web sign-in through the real IdP, the tools' token exchange,
API token use, a password sign-in and an environment join token — captured at DEBUG from every
logger, uvicorn's access log included (a real server in a thread)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from gatehouse.domain import users
from gatehouse.domain.audit import Actor
from gatehouse.domain.crypto import EncryptionContext
from gatehouse.runtime import Runtime
from gatehouse.store.models import Session as SessionRow
from gatehouse.web.app import create_app
from helpers import ADMIN_PASSWORD, make_settings, serving
from idp.fixture import WEB_CLIENT_SECRET, free_port
from idp.plugin import IdPFactory
from idp_helpers import callback, configure_idp, id_token_for, start_location

pytestmark = pytest.mark.idp


@pytest.fixture
def debug_server(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[str, Runtime]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    rt = Runtime(make_settings(tmp_path, sqlite_url, public_url=url))
    rt.start()
    with rt.db.session() as db:
        users.create_user(
            db, Actor.system("test"), username="root", password=ADMIN_PASSWORD, local_admin=True
        )
        users.create_user(db, Actor.system("test"), username="alice", email="alice@example.com")
    # log_config=None: uvicorn's loggers propagate to the root logger, where caplog listens
    try:
        with serving(
            create_app(runtime=rt), port, log_config=None, log_level="debug", access_log=True
        ):
            yield url, rt
    finally:
        rt.close()


def test_no_password_secret_token_or_session_id_in_any_log_line(
    debug_server: tuple[str, Runtime], idp_factory: IdPFactory, caplog: pytest.LogCaptureFixture
) -> None:
    url, rt = debug_server
    caplog.set_level(logging.DEBUG)
    provider = idp_factory(web_redirect_uris=[f"{url}/auth/oidc/callback"])
    secrets: dict[str, str] = {"admin password": ADMIN_PASSWORD, "client secret": WEB_CLIENT_SECRET}
    with httpx.Client(base_url=url, trust_env=False) as admin:
        login = admin.post(
            "/api/v1/auth/local", json={"username": "root", "password": ADMIN_PASSWORD}
        )
        secrets["password-login access token"] = login.json()["access_token"]
        headers = {"Authorization": f"Bearer {secrets['password-login access token']}"}
        configure_idp(admin, headers, provider)
        created = admin.post(
            "/api/v1/tokens", json={"name": "ci", "scopes": ["read"]}, headers=headers
        )
        secrets["API token"] = created.json()["token"]
        used = admin.get("/api/v1/me", headers={"Authorization": f"Bearer {secrets['API token']}"})
        assert used.status_code == 200
        env = admin.post(
            "/api/v1/environments",
            json={"name": "dev", "base_url": "https://dev.example.com", "kind": "dev"},
            headers=headers,
        )
        assert env.status_code == 201, env.text
        secrets["join token"] = env.json()["join_token"]

    with httpx.Client(base_url=url, trust_env=False) as browser:
        location = provider.login(start_location(browser), "alice", "alice-password")
        secrets["IdP user password"] = "alice-password"
        query = parse_qs(urlsplit(location).query)
        secrets["authorization code"] = query["code"][0]
        secrets["state"] = query["state"][0]
        answer = callback(browser, location)
        assert answer.status_code == 303, answer.text
        secrets["session id"] = browser.cookies["gatehouse_session"]
        assert browser.get("/api/v1/me").json()["username"] == "alice"
        with rt.db.session() as db:
            row = db.query(SessionRow).filter(SessionRow.method == "oidc").one()
            assert row.refresh_token_enc is not None and row.id_token_enc is not None
            secrets["IdP refresh token"] = rt.box.decrypt_str(
                row.refresh_token_enc, context=EncryptionContext.SESSION_REFRESH_TOKEN
            )
            secrets["IdP ID token"] = rt.box.decrypt_str(
                row.id_token_enc, context=EncryptionContext.SESSION_ID_TOKEN
            )
        page = browser.get("/account")
        csrf = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        out = browser.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
        assert out.status_code == 303  # RP-initiated logout: the URL carries id_token_hint

    tokens = id_token_for(provider, "alice")
    secrets["native ID token"] = tokens["id_token"]
    secrets["IdP access token"] = tokens["access_token"]
    with httpx.Client(base_url=url, trust_env=False) as tool:
        exchanged = tool.post("/api/v1/auth/token", json={"id_token": tokens["id_token"]})
        assert exchanged.status_code == 200, exchanged.text
        secrets["exchanged access token"] = exchanged.json()["access_token"]
        assert (
            tool.get(
                "/api/v1/me",
                headers={"Authorization": f"Bearer {secrets['exchanged access token']}"},
            ).status_code
            == 200
        )
        # a mistaken token in a query string is redacted from the access log too
        tool.get("/api/v1/me", params={"access_token": secrets["exchanged access token"]})

    time.sleep(0.2)  # the server thread's last access-log lines
    # the server's threads only: this thread's records are the test's own HTTP clients
    here = threading.get_ident()
    lines = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.thread != here]
    assert any(line.startswith("httpx") for line in lines), "no outbound call to the IdP logged"
    assert any(line.startswith("uvicorn.access") for line in lines), "no access log captured"
    assert any("/auth/oidc/callback?code=[redacted]" in line for line in lines)
    for what, value in secrets.items():
        assert len(value) >= 8, what
        leaks = [line for line in lines if value in line]
        assert not leaks, f"the {what} appears in the logs: {leaks[:3]}"
